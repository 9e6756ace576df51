"""Measure ARC-Forcing against the stage-2 model (issue 7, docs/arc_forcing.md "Measurement").

    python -m lmdm.eval.arc --stage2 runs/lmdm-block-causal runs/lmdm-encdec \\
        --arc runs/arc-block-causal runs/arc-encdec --out runs/arc-measure

Models are paired by the regime in their config.json. For every regime and condition (model @
sampler steps; default stage2@8, stage2@4, arc@4, arc@8):

1. long streams: one LiveSession stream per prompt (>= 20 prompts, 3 minutes each, CFG 1,
   ping-pong), written as <out>/<regime>/<condition>/NN.wav with the prompt in NN.txt, so
   `lmdm eval DIR` reads them as they are; `lmdm.eval.evaluate` gives the whole-set FD-probe
   and adherence (eval.json, eval.png);
2. over time: the probe's 5 s windows of all streams, grouped by 15 s segment: FD-probe of each
   segment's windows against the probe's reference, the mean drift, p(asked style) and style
   top-1; the least-squares slope of FD (and drift) per minute; the FD of the last minute;
3. prompt switches: per prompt, a stream that switches to a prompt of another style after
   `--switch-before` seconds: the latent and spectral jump at the switch boundary relative to the
   stream's other block boundaries, p(new style) of the 5 s window starting 2 blocks after the
   switch, against its steady value, and the blocks until the new style is the probe's top-1.

Writes <out>/results.json and <out>/summary.md (the tables docs/arc_forcing.md wants). Rendering
is resumable: existing NN.wav (and NN.latents.safetensors) files are reused.

This module renders the streams and runs the command; the scores it takes of them (segments over
time, boundary jumps, the issue's criteria) are the pure functions of `lmdm.eval.arc_scores`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import soundfile as sf
import torch

from lmdm.eval import EvalInputError, ProbeError, evaluate, load_probe
from lmdm.eval.arc_scores import (
    Condition,
    boundary_jumps,
    choose_prompts,
    compare,
    first_seconds_fd,
    jump_ratio,
    last_seconds_fd,
    scores_over_time,
    slope_per_minute,
    spectral_flux,
    switch_partner,
)
from lmdm.eval.plot import Panel, Series, line_plots, report_png
from lmdm.eval.prompt import parse_prompt
from lmdm.eval.report import jsonable, reference_gaussian
from lmdm.plot import PlotUnavailable

DEFAULT_CONDITIONS = ("stage2@8", "stage2@4", "arc@4", "arc@8")
PROBE_RATE = 16000


# ----------------------------------------------------------------------------------------------
# Rendering


def mono16k(audio: np.ndarray, rate: int) -> np.ndarray:
    x = audio.mean(axis=1) if audio.ndim == 2 else audio
    if rate != PROBE_RATE:
        from lmdm.audio.resample import resample

        x = resample(x.astype(np.float64), rate, PROBE_RATE)
    return np.asarray(x, np.float32)


def render(model, regime: str, steps: int, prompts: Sequence[tuple[int, str]], seed: int, cfg: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """A stream through LiveSession: prompts [(from block, prompt), ...] -> (audio [T, ch], latents [D, F], compute s)."""
    from lmdm.session import LiveSession

    session = LiveSession(model, prompt=prompts[0][1], regime=regime, steps=steps, sampler="pingpong", cfg=cfg, seed=seed)
    changes = dict(prompts[1:])
    blocks = max(b for b, _ in prompts)
    audio, latents = [], []
    t0 = time.perf_counter()
    for k in range(blocks):
        if k in changes:
            session.set_prompt(changes[k])
        audio.append(session.next_block())
        latents.append(session.stream.history[0, :, -model.config.block_frames :].numpy().copy())
    return np.concatenate(audio), np.concatenate(latents, axis=1), time.perf_counter() - t0


def rendered(path: Path, model, regime: str, steps: int, prompts: Sequence[tuple[int, str]], seed: int, say, cfg: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
    """Render to path (.wav, .txt with the last prompt, .latents.safetensors) unless it is there already."""
    from lmdm.tensorfile import load_tensors, save_tensors

    lat = path.with_suffix(".latents.safetensors")
    if path.is_file() and lat.is_file():
        audio, _ = sf.read(path, dtype="float32", always_2d=True)
        return audio, load_tensors(lat)[0]["latents"].numpy()
    audio, latents, seconds = render(model, regime, steps, prompts, seed, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, model.sample_rate, subtype="FLOAT")  # read back bit-exact on a resumed run
    path.with_suffix(".txt").write_text(prompts[-1][1] + "\n")
    save_tensors(lat, {"latents": torch.from_numpy(latents).contiguous()})
    say(f"  {path}: {len(audio) / model.sample_rate:.0f} s in {seconds:.0f} s (real-time factor {seconds * model.sample_rate / len(audio):.2f})")
    return audio, latents


# ----------------------------------------------------------------------------------------------
# The measurement


def measure_condition(model, regime: str, cond: Condition, prompts: Sequence[str], args, probe, out: Path, say) -> dict[str, Any]:
    styles = list(probe.config.styles)
    block_s = model.config.block_seconds
    blocks = math.ceil(args.minutes * 60 / block_s)
    total = blocks * block_s
    folder = out / regime / cond.name
    say(f"{regime} {cond.name}: {len(prompts)} streams of {total:.0f} s")
    streams, outputs = [], []
    for i, p in enumerate(prompts):
        audio, _ = rendered(folder / f"{i:02d}.wav", model, regime, cond.steps, [(0, p), (blocks, p)], args.seed + i, say, cond.cfg)
        streams.append(mono16k(audio, model.sample_rate))
        outputs.append(probe.embed_audio(streams[-1]))
    report = evaluate(streams, reference=args.reference, prompts=list(prompts), probe=probe, segment_seconds=args.segment_seconds)
    (folder / "eval.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    try:
        report_png(report, folder / "eval.png")
    except PlotUnavailable as e:  # the measurement goes on without the picture
        say(f"  no eval.png: {e}")
    reference = reference_gaussian(args.reference, probe)[0]  # what `evaluate` compared with
    over_time = scores_over_time(outputs, [parse_prompt(p).style for p in prompts], styles, reference, args.segment_seconds)
    mids = [(s.start + s.end) / 2 for s in over_time]
    a = report.adherence
    result = {
        "fd_probe": report.fd_probe,
        "adherence": None if a is None else {"style_top1": a.style_accuracy, "p_asked_style": a.style_probability, "chance": a.style_chance,
                                             "tempo_4pct": a.tempo_accuracy, "key_tonic": a.key_accuracy},
        "segments": [attrs.asdict(s) for s in over_time],
        "fd_slope_per_min": slope_per_minute(mids, [s.fd for s in over_time]),
        "drift_slope_per_min": slope_per_minute(mids, [s.drift for s in over_time]),
        "p_asked_slope_per_min": slope_per_minute(mids, [np.nan if s.p_asked is None else s.p_asked for s in over_time]),
        "last_minute_fd": last_seconds_fd(outputs, reference, total),
        "first_minute_fd": first_seconds_fd(outputs, reference),
    }
    if args.switch_before > 0:
        result["switch"] = measure_switches(model, regime, cond, prompts, args, probe, folder / "switch", say)
    return result


def measure_switches(model, regime: str, cond: Condition, prompts: Sequence[str], args, probe, folder: Path, say) -> dict[str, Any]:
    styles = list(probe.config.styles)
    B, block_s, rate = model.config.block_frames, model.config.block_seconds, model.sample_rate
    s_block = max(2, round(args.switch_before / block_s))
    blocks = s_block + max(4, round(args.switch_after / block_s))
    window_blocks = math.ceil(probe.config.window_seconds / block_s)
    rows = []
    for i, a in enumerate(prompts):
        b = switch_partner(prompts, i)
        audio, latents = rendered(folder / f"{i:02d}.wav", model, regime, cond.steps, [(0, a), (s_block, b), (blocks, b)], args.seed + 1000 + i, say, cond.cfg)
        mono = mono16k(audio, rate)
        per_block = len(mono) / blocks
        jumps = boundary_jumps(latents, B)  # boundary k sits before block k + 1
        flux = spectral_flux(mono, [round(k * per_block) for k in range(1, blocks)])
        style = parse_prompt(b).style
        curve = []
        for m in range(blocks - s_block - window_blocks + 1):
            lo = round((s_block + m) * per_block)
            out = probe.embed_audio(mono[lo : lo + round(probe.config.window_seconds * PROBE_RATE)])
            curve.append(out.style[0])
        known = style in styles
        p_new = [float(c[styles.index(style)]) for c in curve] if known else []
        top1 = [int(np.argmax(c)) == styles.index(style) for c in curve] if known else []
        rows.append({
            "from": a, "to": b,
            "latent_jump_ratio": jump_ratio(jumps, s_block - 1),
            "flux_ratio": jump_ratio(flux, s_block - 1),
            "p_new_at_2_blocks": p_new[2] if len(p_new) > 2 else None,
            "p_new_steady": float(np.mean(p_new[-3:])) if p_new else None,
            "blocks_to_new_style": next((m for m, hit in enumerate(top1) if hit), None) if known else None,
        })

    def mean(key: str) -> float | None:
        v = [r[key] for r in rows if r[key] is not None and np.isfinite(r[key])]
        return float(np.mean(v)) if v else None

    reached = [r["blocks_to_new_style"] for r in rows if r["blocks_to_new_style"] is not None]
    return {
        "streams": rows, "switch_block": s_block, "blocks": blocks,
        "latent_jump_ratio": mean("latent_jump_ratio"), "flux_ratio": mean("flux_ratio"),
        "p_new_at_2_blocks": mean("p_new_at_2_blocks"), "p_new_steady": mean("p_new_steady"),
        "median_blocks_to_new_style": float(np.median(reached)) if reached else None,
        "reached_new_style": len(reached) / len(rows) if rows else None,
    }


# ----------------------------------------------------------------------------------------------
# The tables and the picture


def fmt(v: Any, spec: str = ".2f") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return format(v, spec)


def summary_markdown(results: dict[str, Any]) -> str:
    lines = [f"# ARC-Forcing measurement ({results['settings']['prompts']} prompts, {results['settings']['minutes']:g}-min streams)", ""]
    for regime, r in results["regimes"].items():
        conds = r["conditions"]
        lines += [f"## {regime}", "", "| condition | FD-probe | first min | last min | FD slope /min | drift slope /min | p(asked) | top-1 | p(asked) slope /min |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, c in conds.items():
            a = c.get("adherence") or {}
            lines.append(f"| {name} | {fmt(c['fd_probe'])} | {fmt(c['first_minute_fd'])} | {fmt(c['last_minute_fd'])} | {fmt(c['fd_slope_per_min'], '+.3f')} | "
                         f"{fmt(c['drift_slope_per_min'], '+.4f')} | {fmt(a.get('p_asked_style'))} | {fmt(a.get('style_top1'))} | {fmt(c['p_asked_slope_per_min'], '+.4f')} |")
        lines += ["", "| comparison | slope ratio (≤ 0.5) | pass | last-minute FD (ARC, stage 2) | pass |", "|---|---|---|---|---|"]
        for name, c in r["comparisons"].items():
            lines.append(f"| {name} | {fmt(c['slope_ratio'])} | {fmt(c['slope_pass'])} | {fmt(c['last_minute_fd'][0])}, {fmt(c['last_minute_fd'][1])} | {fmt(c['last_minute_pass'])} |")
        switch = {n: c["switch"] for n, c in conds.items() if "switch" in c}
        if switch:
            lines += ["", "| switch | latent jump (× other boundaries) | spectral jump (×) | p(new) at +2 blocks | p(new) steady | median blocks to new top-1 | reached |",
                      "|---|---|---|---|---|---|---|"]
            for name, s in switch.items():
                lines.append(f"| {name} | {fmt(s['latent_jump_ratio'])} | {fmt(s['flux_ratio'])} | {fmt(s['p_new_at_2_blocks'])} | {fmt(s['p_new_steady'])} | "
                             f"{fmt(s['median_blocks_to_new_style'], '.1f')} | {fmt(s['reached_new_style'])} |")
        lines.append("")
    return "\n".join(lines)


def condition_series(conditions: dict[str, Any], key: str) -> list[Series]:
    """One regime's conditions -> a Series of segment `key` (FD, p(asked)) over time per condition."""
    out = []
    for name, c in conditions.items():
        segs = c["segments"]
        mid = np.array([(s["start"] + s["end"]) / 2 for s in segs])
        c_ = Condition.parse(name)
        label = f"{c_.kind} {c_.steps} steps" + ("" if c_.cfg == 1.0 else f" cfg {c_.cfg:g}")
        out.append(Series(label, mid, np.array([np.nan if s[key] is None else s[key] for s in segs], float)))
    return out


def over_time_png(results: dict[str, Any], path: Path) -> None:
    panels = []
    for regime, r in results["regimes"].items():
        panels += [Panel(f"{regime}: FD-probe per 15 s segment", condition_series(r["conditions"], "fd"), unit="FD-probe", bottom=0.0),
                   Panel(f"{regime}: p(asked style)", condition_series(r["conditions"], "p_asked"), (0.0, 1.0), unit="probability")]
    end = max((s["end"] for r in results["regimes"].values() for c in r["conditions"].values() for s in c["segments"]), default=1.0)
    line_plots(panels, path, x_range=(0.0, end))


# ----------------------------------------------------------------------------------------------
# The command


def load_pairs(stage2: Sequence[str], arc: Sequence[str]) -> dict[str, dict[str, Path]]:
    from lmdm.checkpoint import read_config, resolve

    pairs: dict[str, dict[str, Path]] = {}
    for kind, dirs in (("stage2", stage2), ("arc", arc)):
        for d in dirs:
            path = resolve(d)
            regime = read_config(path).get("regime")
            if regime is None:
                raise ValueError(f"{path} names no regime: not a live model")
            if kind in pairs.setdefault(regime, {}):
                raise ValueError(f"two {kind} models in regime {regime}: {pairs[regime][kind]} and {path}")
            pairs[regime][kind] = path
    for regime, p in pairs.items():
        if set(p) != {"stage2", "arc"}:
            raise ValueError(f"regime {regime}: need a stage-2 and an ARC model, got only {', '.join(p)}")
    return pairs


def prompts_for(args, stage2_dir: Path) -> list[str]:
    from lmdm.checkpoint import read_config
    from lmdm.train.latents import read_index

    if args.prompt_file:
        prompts = [line.strip() for line in Path(args.prompt_file).read_text().splitlines() if line.strip()]
    else:
        latents = read_config(stage2_dir).get("latents")
        index = read_index(latents) if latents else []
        if not index:
            raise ValueError(f"{stage2_dir} names no latents with captions to take prompts from: pass --prompt-file")
        for split in ("test", "valid", None):
            captions = [r["caption"] for r in sorted(index, key=lambda r: r["id"]) if split is None or r["split"] == split]
            if len(set(captions)) >= args.prompts:
                break
        prompts = choose_prompts(captions, args.prompts)
    if len(prompts) < args.prompts:
        raise ValueError(f"only {len(prompts)} prompts, --prompts asks for {args.prompts}")
    return prompts[: args.prompts]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.eval.arc", description=__doc__.split("\n\n")[0])
    p.add_argument("--stage2", nargs="+", required=True, help="stage-2 live models (checkpoint or run directories), one per regime")
    p.add_argument("--arc", nargs="+", required=True, help="their ARC-forced versions, one per regime")
    p.add_argument("--out", required=True, help="output directory (audio, eval reports, results.json, summary.md)")
    p.add_argument("--prompts", type=int, default=20, help="number of prompts (default 20)")
    p.add_argument("--prompt-file", help="prompts, one per line (default: captions of the stage-2 model's test split, every style in turn)")
    p.add_argument("--minutes", type=float, default=3.0, help="length of the long streams (default 3)")
    p.add_argument("--segment-seconds", type=float, default=15.0)
    p.add_argument("--conditions", default=",".join(DEFAULT_CONDITIONS), help="model@steps list (default %(default)s)")
    p.add_argument("--switch-before", type=float, default=30.0, help="seconds before the prompt switch (0: no switch streams)")
    p.add_argument("--switch-after", type=float, default=30.0, help="seconds after it")
    p.add_argument("--probe", help="probe directory (default: the shipped one)")
    p.add_argument("--reference", help="reference audio for FD (default: the probe's corpus statistics)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if args.threads:
        torch.set_num_threads(args.threads)

    from lmdm.checkpoint import CheckpointError
    from lmdm.loading import load_model

    try:
        conditions = [Condition.parse(c.strip()) for c in args.conditions.split(",") if c.strip()]
        pairs = load_pairs(args.stage2, args.arc)
        probe = load_probe(args.probe)
        out = Path(args.out)
        results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k not in ("quiet", "threads")}, "regimes": {}}
        results["settings"]["models"] = {r: {k: str(v) for k, v in p_.items()} for r, p_ in pairs.items()}
        for regime, dirs in pairs.items():
            prompts = prompts_for(args, dirs["stage2"])
            models = {kind: load_model(path) for kind, path in dirs.items()}
            conds = {c.name: measure_condition(models[c.kind], regime, c, prompts, args, probe, out, say) for c in conditions}
            results["regimes"][regime] = {"prompts": prompts, "conditions": conds, "comparisons": compare(conds)}
            out.mkdir(parents=True, exist_ok=True)
            (out / "results.json").write_text(json.dumps(jsonable(results), indent=1) + "\n")
        (out / "summary.md").write_text(summary_markdown(results))
        try:
            over_time_png(results, out / "fd_over_time.png")
        except PlotUnavailable as e:  # results.json and summary.md are written already
            say(f"no fd_over_time.png: {e}")
    except (ValueError, FileNotFoundError, CheckpointError, EvalInputError, ProbeError) as e:
        print(f"lmdm.eval.arc: {e}", file=sys.stderr)
        return 2
    say(f"lmdm.eval.arc: {out / 'summary.md'}, {out / 'results.json'}, {out / 'fd_over_time.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
