"""Do a codec's latents carry pitch? A small classifier reads the lead's pitch class off them.

    python -m lmdm.eval.pitch_probe --codec default --corpus data/corpus
    python -m lmdm.eval.pitch_probe --codec runs/codec --corpus data/corpus --seconds 10
    python -m lmdm.eval.pitch_probe --codec runs/codec --round-trip   # the audio side, in seconds

A melody sketch can only come out of the model if the latents can hold a melody. This measures
that directly, without any transformer: the corpus songs are encoded, and a 2-layer MLP learns the
lead's annotated pitch class (12 classes, frames where the lead plays) from each latent frame and
its 2 neighbours on each side. Train songs come from the corpus's train split, test songs from its
test split. The score is held-out accuracy against chance (the most common class of the test
frames). A codec that keeps pitch scores far above chance; one that loses it scores near chance.

`--round-trip` measures the audio side instead: the main pitch class of test songs before and
after the codec (lmdm.eval.sketch.main_pitch_class against the annotated lead), which is
the ceiling of the melody-sketch score. It needs no classifier and takes seconds.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np
import torch

from lmdm.codec.base import Codec

NEIGHBOURS = 2  # latent frames on each side of the frame being classified


def frame_features(latents: torch.Tensor, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """latents [D, F] -> [F, (2 * neighbours + 1) * D]: each frame with its neighbours (zero-padded)."""
    z = latents.T.numpy()
    padded = np.pad(z, ((neighbours, neighbours), (0, 0)))
    return np.concatenate([padded[k : k + len(z)] for k in range(2 * neighbours + 1)], axis=1)


def open_corpus(codec: Codec, corpus: str):
    """A CorpusReader for `corpus`, which must be at the codec's sample rate."""
    from lmdm.corpus.reader import CorpusReader

    reader = CorpusReader(corpus)
    if reader.sample_rate != codec.sample_rate:
        raise ValueError(f"corpus {corpus} is {reader.sample_rate} Hz, the codec {codec.sample_rate} Hz")
    return reader


def long_songs(reader, split: str, frames: int) -> list:
    """The entries of `split` with at least `frames` frames (an error if there are none)."""
    pool = [e for e in reader.select(split) if e.frames >= frames]
    if not pool:
        raise ValueError(f"the corpus has no {split}-split example of {frames} frames or more")
    return pool


def song_frames(codec: Codec, reader, split: str, songs: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, K], pitch class [N]) of the voiced frames of `songs` crops from `split`."""
    from lmdm.train.latents import encode_audio

    pool = long_songs(reader, split, frames)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in rng.choice(len(pool), size=min(songs, len(pool)), replace=False):
        crop = reader.crop(pool[i], 0, frames, with_stems=False)
        audio = torch.as_tensor(np.asarray(crop.audio, dtype=np.float32)).reshape(1, 1, -1).repeat(1, codec.channels, 1)
        with torch.no_grad():
            z = encode_audio(codec, audio)  # [D, F]
        melody = np.asarray(crop.annotations.melody[: z.shape[1]])
        voiced = melody > 0
        xs.append(frame_features(z)[: len(melody)][voiced])
        ys.append(np.round(melody[voiced]).astype(int) % 12)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(y) == 0:
        raise ValueError(f"no frame of the {split}-split songs has a lead note to classify")
    return x, y


def train_classifier(x: np.ndarray, y: np.ndarray, *, hidden: int = 256, steps: int = 2000, batch: int = 512, seed: int = 0) -> torch.nn.Module:
    """A 2-layer MLP on standardised features (the standardisation is part of the returned module)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    mean, std = xt.mean(0), xt.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 12))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    for _ in range(steps):
        idx = torch.randint(0, len(yt), (batch,), generator=g)
        loss = torch.nn.functional.cross_entropy(net((xt[idx] - mean) / std), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    class Standardised(torch.nn.Module):
        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return net((v - mean) / std)

    return Standardised().eval()


def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.tensor(x, dtype=torch.float32)).argmax(1).numpy() == y).mean())


def measure(codec: Codec, corpus: str, *, train_songs: int = 1000, test_songs: int = 200, seconds: float = 10.0,
            steps: int = 2000, seed: int = 0, train_split: str = "train", test_split: str = "test") -> dict[str, float]:
    reader = open_corpus(codec, corpus)
    frames = round(seconds * reader.frame_rate)
    x_train, y_train = song_frames(codec, reader, train_split, train_songs, frames, seed)
    x_test, y_test = song_frames(codec, reader, test_split, test_songs, frames, seed + 1)
    model = train_classifier(x_train, y_train, steps=steps, seed=seed)
    return {
        "train_frames": len(y_train), "test_frames": len(y_test),
        "train_accuracy": accuracy(model, x_train, y_train),
        "test_accuracy": accuracy(model, x_test, y_test),
        "chance": float(np.bincount(y_test, minlength=12).max() / len(y_test)),
    }


def round_trip(codec: Codec, corpus: str, *, songs: int = 40, seconds: float = 10.0, seed: int = 0,
               split: str = "test") -> dict[str, float]:
    """Pitch-class accuracy of the annotated lead, in the real mix and in the mix through the codec."""
    from lmdm.eval.sketch import codec_round_trip, main_pitch_class, pitch_class_hits

    reader = open_corpus(codec, corpus)
    sr, fr = reader.sample_rate, reader.frame_rate
    frames = round(seconds * fr)
    pool = long_songs(reader, split, frames)
    rng = np.random.default_rng(seed)
    real, coded = [], []
    for i in rng.permutation(len(pool))[:songs]:
        for start in range(0, pool[i].frames - frames + 1, frames):  # every whole SECONDS window of the song
            crop = reader.crop(pool[i], start, frames, with_stems=False)
            melody = np.asarray(crop.annotations.melody)
            if (melody > 0).sum() < frames // 4:  # the lead plays in under a quarter of it
                continue
            real.append(pitch_class_hits(main_pitch_class(crop.audio, sr, fr), melody))
            coded.append(pitch_class_hits(main_pitch_class(codec_round_trip(codec, crop.audio), sr, fr), melody))
    if not real:
        raise ValueError(f"no {split}-split song has a lead note to compare")
    return {"windows": len(real), "real": float(np.mean(real)), "round_trip": float(np.mean(coded))}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.eval.pitch_probe", description=__doc__.splitlines()[0])
    p.add_argument("--codec", default="default", help="'default' (the bundled model's codec) or a codec checkpoint directory")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--train-songs", type=int, default=1000, help="at most this many train-split songs")
    p.add_argument("--test-songs", type=int, default=200, help="at most this many test-split songs")
    p.add_argument("--seconds", type=float, default=10.0, help="the first SECONDS of each song")
    p.add_argument("--steps", type=int, default=2000, help="classifier training steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--round-trip", action="store_true",
                   help="measure the lead's pitch class in test mixes before and after the codec instead")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.codec == "default":
        import lmdm

        codec = lmdm.load_model().codec
    else:
        from lmdm.codec.checkpoint import load_codec

        codec = load_codec(a.codec)
    try:
        if a.round_trip:
            r = round_trip(codec, a.corpus, songs=a.test_songs, seconds=a.seconds, seed=a.seed)
        else:
            r = measure(codec, a.corpus, train_songs=a.train_songs, test_songs=a.test_songs, seconds=a.seconds, steps=a.steps, seed=a.seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.round_trip:
        print(f"pitch class of the lead in {r['windows']} {a.seconds:g}-s test-mix windows: real {r['real']:.3f}, "
              f"through the codec {r['round_trip']:.3f}")
        return 0
    print(f"pitch class of the lead from the latents: held-out accuracy {r['test_accuracy']:.3f} "
          f"(chance {r['chance']:.3f}; train {r['train_accuracy']:.3f}; {r['train_frames']} train / {r['test_frames']} test frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
