"""Train the probe on a procedural corpus: ``python -m lmdm.eval.train_probe --corpus data/corpus --out lmdm/weights/probe``.

1. Every example of the corpus is turned into features once (mel magnitudes + chroma, 50 frames/s)
   and per-frame labels: style, tempo bucket and key tonic of the song, and which instruments have
   a note sounding (from the score, so a 5 s window where the lead rests is not labelled "lead").
2. Each step draws a batch of random windows from the train split, with a random gain
   (-20 .. +3 dB) and SpecAugment (one band and one time span masked), and minimises the sum of
   the four head losses (AdamW, cosine learning rate).
3. At the end: accuracy per head on every window of the held-out splits (valid + test), the
   embedding mean/covariance of the train windows (the default reference of `lmdm eval`), and
   the Fréchet distances of held-out audio, white noise and silence to it (printed by `lmdm eval`
   as landmarks). Same seed, same weights (single-threaded CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
import torch
from torch import nn

from lmdm.corpus.reader import CorpusReader, Entry
from lmdm.eval.features import HOP, SAMPLE_RATE, probe_input, spectral_features, windows
from lmdm.eval.frechet import Gaussian, fit_gaussian, frechet_distance
from lmdm.analysis import tempo_bucket
from lmdm.eval.probe import Probe, ProbeConfig, ProbeNet, parameter_count, save_probe

FRAME_RATE = SAMPLE_RATE / HOP  # 50 frames/s


@attrs.frozen(eq=False)
class Song:
    """One corpus example as the probe sees it."""

    id: str
    mel: torch.Tensor  # [64, F] linear magnitudes
    chroma: torch.Tensor  # [12, F]
    style: int
    tempo: int  # bucket index
    key: int
    active: np.ndarray  # [instruments, F] bool: a note of that instrument sounds in the frame


def song_features(reader: CorpusReader, entry: Entry, config: ProbeConfig) -> Song:
    audio = reader.load_audio(entry)
    if reader.sample_rate != SAMPLE_RATE:
        raise ValueError(f"the probe is trained on {SAMPLE_RATE} Hz corpora, {reader.root} is {reader.sample_rate} Hz")
    mel, chroma = spectral_features(torch.from_numpy(audio)[None])
    frames = mel.shape[2]
    active = np.zeros((len(config.instruments), frames), dtype=bool)
    index = {name: i for i, name in enumerate(config.instruments)}
    for note in reader.load_notes(entry):
        if note.instrument in index:
            a = max(0, int(np.floor(note.start * FRAME_RATE)))
            b = min(frames, int(np.ceil((note.start + note.duration) * FRAME_RATE)))
            active[index[note.instrument], a:b] = True
    at = entry.attributes
    return Song(
        id=entry.id,
        mel=mel[0],
        chroma=chroma[0],
        style=config.styles.index(at.style),
        tempo=tempo_bucket(at.tempo, config.tempo_edges),
        key=config.keys.index(at.key),
        active=active,
    )


def load_songs(reader: CorpusReader, entries: Sequence[Entry], config: ProbeConfig) -> list[Song]:
    return [song_features(reader, e, config) for e in entries]


def input_stats(songs: Sequence[Song]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the probe input over all frames -> ([76], [76])."""
    x = torch.cat([probe_input(s.mel[None], s.chroma[None])[0] for s in songs], dim=1)  # [76, all frames]
    return x.mean(dim=1), x.std(dim=1).clamp_min(1e-3)


@attrs.frozen(eq=False)
class Batch:
    x: torch.Tensor  # [B, 76, window]
    style: torch.Tensor  # [B]
    instruments: torch.Tensor  # [B, I] 0/1
    tempo: torch.Tensor  # [B]
    key: torch.Tensor  # [B]


def make_batch(songs: Sequence[Song], picks: Sequence[tuple[int, int, int]], gains_db: np.ndarray | None = None) -> Batch:
    """picks: (song index, start frame, end frame) of equal length -> a batch, with optional per-item gain."""
    mel = torch.stack([songs[i].mel[:, a:b] for i, a, b in picks])
    chroma = torch.stack([songs[i].chroma[:, a:b] for i, a, b in picks])
    gain = torch.zeros(len(picks)) if gains_db is None else torch.from_numpy(gains_db).float()
    return Batch(
        x=probe_input(mel, chroma, gain),
        style=torch.tensor([songs[i].style for i, _, _ in picks]),
        instruments=torch.from_numpy(np.stack([songs[i].active[:, a:b].any(axis=1) for i, a, b in picks])).float(),
        tempo=torch.tensor([songs[i].tempo for i, _, _ in picks]),
        key=torch.tensor([songs[i].key for i, _, _ in picks]),
    )


def losses(net: ProbeNet, batch: Batch) -> dict[str, torch.Tensor]:
    _, logits = net(batch.x)
    ce = nn.functional.cross_entropy
    return {
        "style": ce(logits["style"], batch.style),
        "instruments": nn.functional.binary_cross_entropy_with_logits(logits["instruments"], batch.instruments),
        "tempo": ce(logits["tempo"], batch.tempo),
        "key": ce(logits["key"], batch.key),
    }


def spec_augment(x: torch.Tensor, fill: torch.Tensor, rng: np.random.Generator, max_bands: int = 8, max_frames: int = 25) -> torch.Tensor:
    """SpecAugment: per item, one random band of up to `max_bands` channels and one span of up to
    `max_frames` frames set to the channel means `fill` [C] (a copy; x is [B, C, F])."""
    x = x.clone()
    channels, frames = x.shape[1], x.shape[2]
    for i in range(len(x)):
        width = int(rng.integers(max_bands + 1))
        lo = int(rng.integers(channels - width + 1))
        x[i, lo : lo + width] = fill[lo : lo + width, None]
        span = int(rng.integers(min(max_frames, frames) + 1))
        start = int(rng.integers(frames - span + 1))
        x[i, :, start : start + span] = fill[:, None]
    return x


def all_windows(songs: Sequence[Song], window: int) -> list[tuple[int, int, int]]:
    """Every non-overlapping full window of every song: (song, start, end)."""
    return [(i, a, b) for i, s in enumerate(songs) for a, b in windows(s.mel.shape[1], window) if b - a == window]


def evaluate_heads(probe: Probe, songs: Sequence[Song], batch: int = 64) -> dict[str, float]:
    """Accuracy per head over all windows of `songs` (instruments: per-label accuracy and micro F1
    at p > 0.5), with each head's majority-class rate as chance."""
    picks = all_windows(songs, probe.config.window_frames)
    rows: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(picks), batch):
        b = make_batch(songs, picks[i : i + batch])
        out = probe.run(b.x)
        for name in ("style", "tempo", "key"):
            rows.setdefault(name, []).append(out[name].argmax(dim=1) == getattr(b, name))
            rows.setdefault(f"{name}_true", []).append(getattr(b, name))
        rows.setdefault("inst_pred", []).append(out["instruments"] > 0.5)
        rows.setdefault("inst_true", []).append(b.instruments > 0.5)
    cat = {k: torch.cat(v) for k, v in rows.items()}
    result: dict[str, float] = {"windows": float(len(picks))}
    for name in ("style", "tempo", "key"):
        result[f"{name}_accuracy"] = float(cat[name].float().mean())
        counts = torch.bincount(cat[f"{name}_true"])
        result[f"{name}_chance"] = float(counts.max() / counts.sum())
    pred, true = cat["inst_pred"], cat["inst_true"]
    tp = float((pred & true).sum())
    result["instruments_accuracy"] = float((pred == true).float().mean())
    result["instruments_chance"] = float(torch.maximum(true.float().mean(0), 1 - true.float().mean(0)).mean())
    result["instruments_f1"] = 2 * tp / max(1.0, float(pred.sum() + true.sum()))
    return result


def embeddings_of(probe: Probe, songs: Sequence[Song], batch: int = 64) -> np.ndarray:
    picks = all_windows(songs, probe.config.window_frames)
    return np.concatenate([probe.run(make_batch(songs, picks[i : i + batch]).x)["embedding"].double().numpy() for i in range(0, len(picks), batch)])


def landmarks(probe: Probe, reference: Gaussian, held_out: np.ndarray, seed: int) -> dict[str, float]:
    """FD to the reference of: the held-out windows, and as many windows of white noise
    (-20 dBFS RMS) and of silence."""
    rng = np.random.default_rng(seed)
    samples = int(len(held_out) * probe.config.window_seconds * SAMPLE_RATE)
    noise = (0.1 * rng.standard_normal(samples)).astype(np.float32)
    silence = np.zeros(samples, np.float32)
    return {
        "held_out": frechet_distance(fit_gaussian(held_out), reference),
        "white_noise": frechet_distance(fit_gaussian(probe.embed_audio(noise).embeddings), reference),
        "silence": frechet_distance(fit_gaussian(probe.embed_audio(silence).embeddings), reference),
    }


def train(
    corpus: str | Path,
    out: str | Path | None,
    *,
    config: ProbeConfig = ProbeConfig(),
    steps: int = 600,
    batch: int = 32,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    log_every: int = 50,
    log=print,
) -> Probe:
    """Train a probe on `corpus` and save it to `out` (if given). Held-out = valid + test splits
    (the train split itself if the corpus has none)."""
    started = time.monotonic()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    reader = CorpusReader(corpus)
    train_songs = load_songs(reader, reader.select("train"), config)
    held_entries = reader.select("valid") + reader.select("test")
    held_songs = load_songs(reader, held_entries, config) if held_entries else train_songs
    if not train_songs:
        raise ValueError(f"{corpus} has no train examples")
    window = config.window_frames
    lengths = np.array([s.mel.shape[1] for s in train_songs])
    if lengths.min() < window:
        raise ValueError(f"every example must be at least {config.window_seconds} s long for this probe")
    log(f"features of {len(train_songs)} train + {len(held_entries)} held-out examples in {time.monotonic() - started:.1f} s")

    net = ProbeNet(config)
    mean, std = input_stats(train_songs)
    net.input_mean.copy_(mean)
    net.input_std.copy_(std)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + np.cos(np.pi * s / steps)))
    log(f"probe: {parameter_count(net) / 1e6:.2f} M parameters, {steps} steps of {batch} x {config.window_seconds:g} s windows")
    net.train()
    running: dict[str, float] = {}
    for step in range(1, steps + 1):
        song_ids = rng.integers(len(train_songs), size=batch)
        starts = rng.integers(lengths[song_ids] - window + 1)
        gains = rng.uniform(-20.0, 3.0, size=batch)
        b = make_batch(train_songs, [(int(i), int(a), int(a) + window) for i, a in zip(song_ids, starts)], gains)
        b = attrs.evolve(b, x=spec_augment(b.x, mean, rng))
        parts = losses(net, b)
        loss = sum(parts.values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        for k, v in {"loss": loss, **parts}.items():
            running[k] = running.get(k, 0.0) + v.item() / log_every
        if step % log_every == 0 or step == steps:
            detail = " ".join(f"{k} {v:.3f}" for k, v in running.items() if k != "loss")
            log(f"step {step}/{steps} loss {running['loss']:.3f} ({detail}) {time.monotonic() - started:.0f} s")
            running = {}
    probe = Probe(net.eval())
    heads = evaluate_heads(probe, held_songs)
    log("held-out: " + " ".join(f"{k} {v:.3f}" for k, v in heads.items()))
    reference = fit_gaussian(embeddings_of(probe, train_songs))
    marks = landmarks(probe, reference, embeddings_of(probe, held_songs), seed)
    log("FD-probe to the train reference: " + " ".join(f"{k} {v:.2f}" for k, v in marks.items()))
    info = {
        "trained_on": str(corpus),
        "reference": f"{Path(corpus).name} train split, {reference.count} windows of {config.window_seconds:g} s",
        "held_out": heads,
        "held_out_files": len(held_songs),
        "landmarks": marks,
        "training": {"steps": steps, "batch": batch, "lr": lr, "weight_decay": weight_decay, "seed": seed, "parameters": parameter_count(net), "wall_seconds": round(time.monotonic() - started, 1)},
    }
    probe = Probe(net, reference, info, Path(out) if out else None)
    if out is not None:
        save_probe(out, net, reference, info)
        log(f"saved {out}")
    return probe


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.eval.train_probe", description="Train the evaluation probe on a procedural corpus.")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--out", default="lmdm/weights/probe")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50, help="print the mean losses every N steps")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: deterministic and leaves cores free)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        train(a.corpus, a.out, steps=a.steps, batch=a.batch, lr=a.lr, weight_decay=a.weight_decay, seed=a.seed, log_every=a.log_every, log=lambda s: print(s, file=sys.stderr, flush=True))
    except (FileNotFoundError, ValueError) as e:
        print(f"train_probe: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
