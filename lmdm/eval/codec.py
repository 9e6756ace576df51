"""Held-out quality of a codec against the mel + Griffin-Lim baseline, plus spectrogram pictures.

    python -m lmdm.eval.codec --codec runs/codec --synthetic 20 --plot docs/img/codec
    python -m lmdm.eval.codec --codec runs/codec --data held_out_dir

The baseline keeps a mel spectrogram with n_mels = latent_dim bands at the codec's frame rate
(the same count of numbers per second as the latents, plus one frame) and rebuilds the audio with
Griffin-Lim. Lower is better for both metrics.

It also plays the codec steady tones (2 s notes: a fundamental and two weaker harmonics) and reports the frequency of the
strongest partial that comes back and its level change: a codec that moves a 440 Hz tone to 450 Hz
cannot carry a melody, whatever its spectral distances say (docs/codec.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

from lmdm.codec.audio import load_audio_dir
from lmdm.codec.checkpoint import load_codec
from lmdm.codec.conv import ConvCodec
from lmdm.codec.metrics import log_mel_l1, mel_griffin_lim_baseline, multires_stft_distance
from lmdm.codec.synthetic import synthetic_clips
from lmdm.plot import spectrogram_png


def reconstruct(codec: ConvCodec, audio: torch.Tensor) -> torch.Tensor:
    """audio [B, 1, T] -> decode(encode(audio)), T trimmed to whole frames."""
    audio = audio[..., : audio.shape[-1] // codec.hop * codec.hop]
    with torch.inference_mode():
        return codec.decode(codec.encode(audio))


def evaluate(codec: ConvCodec, clips: Sequence[np.ndarray], gl_iters: int = 64) -> dict[str, dict[str, float]]:
    """Mean metrics over clips for the codec and the baseline, and stats of the normalised latents."""
    scores: dict[str, list[tuple[float, float]]] = {"codec": [], "mel_griffin_lim": []}
    latents = []
    for clip in clips:
        x = torch.as_tensor(clip[: len(clip) // codec.hop * codec.hop], dtype=torch.float32)[None, None]  # [1, 1, T]
        with torch.inference_mode():
            z = codec.encode(x)
            y = codec.decode(z)
        latents.append(z[0])
        base = mel_griffin_lim_baseline(x, codec.sample_rate, codec.latent_dim, codec.hop, iters=gl_iters)
        for name, est in (("codec", y), ("mel_griffin_lim", base)):
            scores[name].append((multires_stft_distance(x, est), log_mel_l1(x, est, codec.sample_rate)))
    z = torch.cat(latents, dim=-1)  # [D, all frames]
    result = {name: {"mrstft": float(np.mean([s[0] for s in v])), "log_mel_l1": float(np.mean([s[1] for s in v]))}
              for name, v in scores.items()}
    result["latents"] = {"mean_abs_mean": float(z.mean(1).abs().mean()), "std_min": float(z.std(1).min()),
                         "std_max": float(z.std(1).max()), "abs_max": float(z.abs().max())}
    return result


STEADY_TONES_HZ = (110.0, 196.0, 261.63, 329.63, 440.0, 523.25, 659.26, 880.0)


def steady_tones(codec: ConvCodec, freqs: Sequence[float] = STEADY_TONES_HZ, seconds: float = 2.0) -> list[dict[str, float]]:
    """Per tone: the frequency of the strongest partial of decode(encode(tone)) (1 Hz resolution,
    the last second) and the level change in dB. The tone: the fundamental and 2 weaker harmonics."""
    n = round(seconds * codec.sample_rate) // codec.hop * codec.hop
    t = torch.arange(n) / codec.sample_rate
    tail = slice(n - codec.sample_rate, n)
    window = np.hanning(codec.sample_rate)
    out = []
    for hz in freqs:
        x = sum(a * torch.sin(2 * np.pi * k * hz * t) for k, a in ((1, 0.3), (2, 0.1), (3, 0.05)))[None, None]
        y = reconstruct(codec, x)[0, 0, tail].numpy()
        spectrum = np.abs(np.fft.rfft(y * window))
        level = 10 * np.log10((y**2).mean() / (x[0, 0, tail].numpy() ** 2).mean() + 1e-20)
        out.append({"hz": hz, "heard_hz": float(np.argmax(spectrum)), "level_db": float(level)})
    return out


def plot_examples(codec: ConvCodec, clips: Sequence[np.ndarray], prefix: str, count: int = 3) -> list[str]:
    """Write prefix_<i>.png: input (top), codec output (middle), mel + Griffin-Lim baseline (bottom)."""
    paths = []
    for i, clip in enumerate(clips[:count]):
        x = torch.as_tensor(clip[: len(clip) // codec.hop * codec.hop], dtype=torch.float32)[None, None]
        y = reconstruct(codec, x)
        base = mel_griffin_lim_baseline(x, codec.sample_rate, codec.latent_dim, codec.hop)
        path = f"{prefix}_{i}.png"
        spectrogram_png([x.flatten().numpy(), y.flatten().numpy(), base.flatten().numpy()], codec.sample_rate, path)
        paths.append(path)
    return paths


def corpus_clips(root: str, sample_rate: int, seconds: float, count: int, seed: int) -> list[np.ndarray]:
    """`count` random crops from the corpus's test split (never trained on): mixes, and every third a single stem."""
    from lmdm.codec.audio import load_corpus_split

    items = load_corpus_split(root, sample_rate, "test")  # per example: the mix, then its 4 stems
    mixes, stems = items[0::5], [a for i, (_, a) in enumerate(items) if i % 5 and np.abs(a).max() > 1e-3]
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    clips = []
    for i in range(count):
        pool = [a for _, a in mixes] if i % 3 else stems
        audio = pool[rng.integers(len(pool))]
        start = int(rng.integers(max(1, len(audio) - n)))
        clips.append(audio[start : start + n])
    return clips


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", required=True, help="checkpoint directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="directory of held-out wav/flac")
    src.add_argument("--corpus", help="a corpus directory: crops of its held-out (test split) mixes and stems")
    src.add_argument("--synthetic", type=int, metavar="N", help="N synthetic clips (seed 1000: not the training seed)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of synthetic clips and corpus crops")
    p.add_argument("--clips", type=int, default=24, help="--corpus: how many crops (2 of 3 mixes, 1 of 3 single stems)")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--plot", metavar="PREFIX", help="write PREFIX_<i>.png spectrograms of the first clips")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    codec = load_codec(args.codec)
    if args.corpus:
        clips = corpus_clips(args.corpus, codec.sample_rate, args.seconds, args.clips, args.seed)
    elif args.data:
        clips = [audio for _, audio in load_audio_dir(args.data, codec.sample_rate)]
    else:
        clips = synthetic_clips(args.synthetic, args.seconds, codec.sample_rate, seed=args.seed)
    r = evaluate(codec, clips)
    seconds = sum(len(c) for c in clips) / codec.sample_rate
    print(f"{len(clips)} clips, {seconds:.0f} s; {codec.latent_dim} x {codec.frame_rate:g} = "
          f"{codec.latent_dim * codec.frame_rate:g} numbers/s for both codec and baseline")
    print(f"{'':18}{'mrstft':>10}{'log_mel_l1':>12}")
    for name in ("codec", "mel_griffin_lim"):
        print(f"{name:18}{r[name]['mrstft']:10.3f}{r[name]['log_mel_l1']:12.3f}")
    print("normalised latents:", {k: round(v, 3) for k, v in r["latents"].items()})
    print("steady tones (Hz in -> strongest partial out, level change):")
    print("  " + ", ".join(f"{t['hz']:g} -> {t['heard_hz']:g} ({t['level_db']:+.0f} dB)" for t in steady_tones(codec)))
    if args.plot:
        for path in plot_examples(codec, clips, args.plot):
            print("wrote", path)


if __name__ == "__main__":
    main()
