"""How good is a trained model? Streams for held-out prompts, scored with the probe against the corpus.

    python -m lmdm.eval.model_quality --model lmdm/weights/default --base runs/default-base \
        --corpus data/corpus --prompts 20 --seconds 60 --out runs/quality [--json]

1. prompts: the captions of `--prompts` held-out corpus examples (valid + test splits), so every
   prompt speaks the model's vocabulary and the real ceiling is measured on the same songs;
2. the model streams each prompt for `--seconds` through `LiveSession` (block_causal, cache on),
   written as NAME.wav + NAME.txt (the prompt) under OUT/streams;
3. with `--base`, the base model samples the same prompts offline, one independent window after
   another (it is not a streaming model), written under OUT/base;
4. `lmdm.eval.evaluate` scores each set against the corpus's train split (the probe's reference
   statistics): FD-probe, style adherence, checks (NaN, silence, clipping); the held-out real songs
   give the ceiling. Prints a table (or JSON) and writes OUT/summary.json;
5. with `--codec-ceiling`, the same real songs through the model's codec and back (OUT/codec):
   the best any stream of this model can score, since every stream is decoded by that codec.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from lmdm.eval.report import Report, evaluate
from lmdm.render import add_model_arguments, resolve_model


def held_out_prompts(corpus: str | Path, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """[(example id, caption)] of `count` held-out corpus examples (valid and test splits), spread over styles."""
    from lmdm.corpus.reader import CorpusReader

    entries = [e for e in CorpusReader(corpus) if e.split in ("valid", "test")]
    if len(entries) < count:
        raise ValueError(f"{corpus} has only {len(entries)} held-out examples, {count} asked")
    rng = np.random.default_rng(seed)
    by_style: dict[str, list] = {}
    for e in rng.permutation(np.array(entries, dtype=object)):
        by_style.setdefault(e.attributes.style, []).append(e)
    chosen: list = []
    while len(chosen) < count:  # round-robin over styles
        for style in sorted(by_style):
            if by_style[style] and len(chosen) < count:
                chosen.append(by_style[style].pop())
    return [(e.id, e.caption) for e in chosen]


def write(path: Path, audio: np.ndarray, sample_rate: int, prompt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate)
    path.with_suffix(".txt").write_text(prompt + "\n")


def render_streams(model, prompts: list[tuple[str, str]], seconds: float, out: Path, steps: int, regime: str, cfg: float = 1.0) -> float:
    """Stream every prompt; returns the mean real-time factor."""
    from lmdm.session import LiveSession

    rtf = []
    for name, prompt in prompts:
        session = LiveSession(model, prompt=prompt, regime=regime, steps=steps, cfg=cfg, seed=int(name) if name.isdigit() else 0)
        write(out / f"{name}.wav", session.render(seconds), model.sample_rate, prompt)
        rtf.append(session.stats.real_time_factor)
    return float(np.mean(rtf))


def render_base(base, prompts: list[tuple[str, str]], seconds: float, out: Path, steps: int) -> None:
    """The base model's offline generation: independent windows of its training length, end to end."""
    from lmdm.train.preview import base_sample

    frames = base.config.window_frames
    windows = math.ceil(seconds * base.config.frame_rate / frames)
    for name, prompt in prompts:
        seed = int(name) if name.isdigit() else 0
        audio = np.concatenate([base_sample(base, prompt, frames, steps, seed=seed * 100 + i) for i in range(windows)])
        write(out / f"{name}.wav", audio[: round(seconds * base.sample_rate)], base.sample_rate, prompt)


def render_codec_round_trip(model, corpus: str | Path, prompts: list[tuple[str, str]], out: Path) -> None:
    """The held-out songs through the model's codec, encoded and decoded whole: the codec's ceiling."""
    from lmdm.eval.sketch import codec_round_trip
    from lmdm.corpus.reader import CorpusReader

    reader = CorpusReader(corpus)
    if reader.sample_rate != model.sample_rate:
        raise ValueError(f"{corpus} is at {reader.sample_rate} Hz, the model's codec at {model.sample_rate} Hz")
    for name, prompt in prompts:
        write(out / f"{name}.wav", codec_round_trip(model.codec, reader.load_audio(name)), model.sample_rate, prompt)


def summary(report: Report) -> dict[str, float | int | None]:
    a = report.adherence
    return {
        "files": len(report.files),
        "fd_probe": report.fd_probe,
        "style_accuracy": None if a is None else a.style_accuracy,
        "style_probability": None if a is None else a.style_probability,
        "style_chance": None if a is None else a.style_chance,
        "tempo_accuracy_octave": None if a is None else a.tempo_accuracy_octave,
        "nan_files": sum("nan" in f.checks.flags for f in report.files),
        "silent_files": sum(bool({"silent", "mostly_silent"} & set(f.checks.flags)) for f in report.files),
        "clipped_files": sum("clipping" in f.checks.flags for f in report.files),
        "drift_median": float(np.median([f.drift for f in report.files])),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.eval.model_quality", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="'default' or a checkpoint directory")
    p.add_argument("--base", help="the base model's run or checkpoint, for the offline comparison")
    p.add_argument("--corpus", default="data/corpus")
    p.add_argument("--prompts", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--base-steps", type=int, default=16)
    p.add_argument("--cfg", type=float, default=1.0, help="classifier-free guidance scale of the streams")
    p.add_argument("--skip-real", action="store_true", help="do not score the real held-out songs again")
    p.add_argument("--codec-ceiling", action="store_true", help="also score the real held-out songs through the model's codec")
    p.add_argument("--skip-streams", action="store_true", help="do not render and score the model's streams")
    p.add_argument("--regime", default="block_causal", choices=["block_causal", "encdec"])
    p.add_argument("--out", type=Path, default=Path("runs/quality"))
    p.add_argument("--threads", type=int, default=None)
    add_model_arguments(p)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    import lmdm

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    model = resolve_model(a.model, a.block_frames)
    prompts = held_out_prompts(a.corpus, a.prompts)
    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    if not a.skip_streams:
        rtf = render_streams(model, prompts, a.seconds, a.out / "streams", a.steps, a.regime, a.cfg)
        results["streams"] = {**summary(evaluate(a.out / "streams")), "real_time_factor": rtf, "wall_s": time.perf_counter() - t0}
    if a.base:
        t0 = time.perf_counter()
        render_base(lmdm.load_model(a.base), prompts, a.seconds, a.out / "base", a.base_steps)
        results["base_offline"] = {**summary(evaluate(a.out / "base")), "wall_s": time.perf_counter() - t0}
    ids = {name for name, _ in prompts}
    real = [Path(a.corpus) / f"{name}.flac" for name in sorted(ids)]
    captions = {f"{n}.flac": c for n, c in prompts} | {n: c for n, c in prompts}
    if not a.skip_real:
        results["real_held_out"] = summary(evaluate(real, prompts=captions))
        results["real_held_out_shuffled_prompts"] = summary(evaluate(real, prompts=captions, shuffle_prompts=0))
    if a.codec_ceiling:
        render_codec_round_trip(model, a.corpus, prompts, a.out / "codec")
        results["real_through_codec"] = summary(evaluate(a.out / "codec"))
    (a.out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    if a.json:
        print(json.dumps(results, indent=2))
        return 0
    cols = ["files", "fd_probe", "style_accuracy", "style_probability", "style_chance", "tempo_accuracy_octave",
            "nan_files", "silent_files", "clipped_files", "drift_median"]
    print(f"{'set':<32}" + "".join(f"{c[:14]:>15}" for c in cols))
    for name, r in results.items():
        print(f"{name:<32}" + "".join(f"{(r[c] if r[c] is not None else float('nan')):>15.3f}" if isinstance(r[c], float) else f"{str(r[c]):>15}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
