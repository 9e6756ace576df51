"""The numbers of the ARC-Forcing measurement (`lmdm.eval.arc`), as small pure functions.

    ProbeOutput per stream --scores_over_time--> SegmentScore per 15 s segment --slope_per_minute--> FD slope
    latents [D, F] --boundary_jumps--> jump per block boundary --jump_ratio--> the switch's jump
    audio --spectral_flux--> spectral change per boundary --jump_ratio--> the switch's spectral jump
    captions --choose_prompts--> prompts, every style in turn --switch_partner--> the prompt to switch to
    "arc@4" --Condition.parse--> Condition; results per condition --compare--> the issue's criteria

Nothing here renders or loads a model: `lmdm.eval.arc` does that and calls these.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from lmdm.eval.frechet import drift, fit_gaussian, frechet_distance
from lmdm.eval.prompt import parse_prompt

ISSUE_SLOPE_RATIO = 0.5  # ARC's FD slope must be <= half the stage-2 model's (issue 7)


# ----------------------------------------------------------------------------------------------
# Small pure pieces


def slope_per_minute(seconds: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values over time, per minute (NaN with < 2 finite points)."""
    x, y = np.asarray(seconds, float) / 60.0, np.asarray(values, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return float("nan")
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def segment_index(starts: np.ndarray, segment_seconds: float) -> np.ndarray:
    return np.floor(np.asarray(starts, float) / segment_seconds + 1e-9).astype(int)


@attrs.frozen
class SegmentScore:
    start: float
    end: float
    windows: int
    fd: float  # FD-probe of this segment's windows (all streams) vs the reference
    drift: float  # mean over windows of |embedding mean - reference mean|^2 / tr(reference cov): the mean term, more stable
    p_asked: float | None  # mean p(asked style)
    style_top1: float | None  # share of windows whose top style is the asked one


def scores_over_time(outputs: Sequence[Any], asked: Sequence[str | None], styles: Sequence[str], reference: Any, segment_seconds: float) -> list[SegmentScore]:
    """ProbeOutput per stream (+ the style each asks for) -> per-segment scores pooled over streams."""
    groups: dict[int, list[tuple[np.ndarray, np.ndarray, str | None]]] = {}
    for out, style in zip(outputs, asked):
        for k, e, p in zip(segment_index(out.starts, segment_seconds), out.embeddings, out.style):
            groups.setdefault(int(k), []).append((e, p, style))
    result = []
    for k in sorted(groups):
        rows = groups[k]
        emb = np.stack([e for e, _, _ in rows])
        judged = [(p, styles.index(s)) for _, p, s in rows if s in styles]
        result.append(SegmentScore(
            start=k * segment_seconds, end=(k + 1) * segment_seconds, windows=len(rows),
            fd=frechet_distance(fit_gaussian(emb), reference), drift=drift(emb, reference),
            p_asked=float(np.mean([p[i] for p, i in judged])) if judged else None,
            style_top1=float(np.mean([np.argmax(p) == i for p, i in judged])) if judged else None,
        ))
    return result


def last_seconds_fd(outputs: Sequence[Any], reference: Any, total: float, seconds: float = 60.0) -> float:
    """FD-probe of every window that starts in the last `seconds` of the streams."""
    emb = [e for out in outputs for s, e in zip(out.starts, out.embeddings) if s >= total - seconds - 1e-6]
    return frechet_distance(fit_gaussian(np.stack(emb)), reference) if emb else float("nan")


def first_seconds_fd(outputs: Sequence[Any], reference: Any, seconds: float = 60.0) -> float:
    """FD-probe of every window that starts in the first `seconds` of the streams."""
    emb = [e for out in outputs for s, e in zip(out.starts, out.embeddings) if s + 1e-6 < seconds]
    return frechet_distance(fit_gaussian(np.stack(emb)), reference) if emb else float("nan")


def boundary_jumps(latents: np.ndarray, block_frames: int) -> np.ndarray:
    """latents [D, F] -> [F // B - 1]: |first frame of block k - last frame of block k-1| for k = 1.."""
    starts = np.arange(block_frames, latents.shape[1] - block_frames + 1, block_frames)
    return np.linalg.norm(latents[:, starts] - latents[:, starts - 1], axis=0)


def spectral_flux(audio: np.ndarray, at: Sequence[int], size: int = 512) -> np.ndarray:
    """Log-magnitude spectral change between the `size` samples before and after each position."""
    window = np.hanning(size)
    out = []
    for p in at:
        if p - size < 0 or p + size > len(audio):
            out.append(np.nan)
            continue
        before = np.log1p(np.abs(np.fft.rfft(audio[p - size : p] * window)))
        after = np.log1p(np.abs(np.fft.rfft(audio[p : p + size] * window)))
        out.append(float(np.linalg.norm(after - before)))
    return np.asarray(out)


def jump_ratio(values: np.ndarray, index: int, skip: int = 1) -> float:
    """values[index] over the median of the others (the first `skip` excluded: the stream start)."""
    others = np.delete(values, index)[skip:]
    others = others[np.isfinite(others)]
    if not len(others) or not np.isfinite(values[index]) or np.median(others) == 0:
        return float("nan")
    return float(values[index] / np.median(others))


def choose_prompts(captions: Sequence[str], n: int) -> list[str]:
    """n captions taking the styles in turn (the order of first appearance), so every style is asked for."""
    by_style: dict[str, list[str]] = {}
    for c in dict.fromkeys(captions):
        by_style.setdefault(parse_prompt(c).style or "", []).append(c)
    queues = [v for k, v in by_style.items() if k] or list(by_style.values())
    chosen: list[str] = []
    while len(chosen) < n and any(queues):
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(q.pop(0))
    return chosen


def switch_partner(prompts: Sequence[str], i: int) -> str:
    """The next prompt (cyclically) that asks for another style than prompt i."""
    style = parse_prompt(prompts[i]).style
    for k in range(1, len(prompts)):
        other = prompts[(i + k) % len(prompts)]
        if parse_prompt(other).style != style:
            return other
    return prompts[(i + 1) % len(prompts)]


# ----------------------------------------------------------------------------------------------
# Conditions and the issue's criteria


@attrs.frozen
class Condition:
    kind: str  # "stage2" or "arc"
    steps: int
    cfg: float = 1.0  # the issue's protocol is CFG 1; "stage2@8cfg3" is the stage-2 model as it ships

    @property
    def name(self) -> str:
        return f"{self.kind}@{self.steps}" + ("" if self.cfg == 1.0 else f"cfg{self.cfg:g}")

    @classmethod
    def parse(cls, text: str) -> Condition:
        m = re.fullmatch(r"(stage2|arc)@([0-9]+)(?:cfg([0-9]+(?:\.[0-9]+)?))?", text)
        if m is None or int(m.group(2)) < 1:
            raise ValueError(f"a condition is stage2@STEPS or arc@STEPS, optionally with cfgSCALE (stage2@8cfg3), got {text!r}")
        return cls(m.group(1), int(m.group(2)), 1.0 if m.group(3) is None else float(m.group(3)))


def compare(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's criteria from one regime's conditions."""

    def get(name: str, key: str) -> float:
        v = results.get(name, {}).get(key)
        return float("nan") if v is None else float(v)

    def steps(name: str) -> int:
        return Condition.parse(name).steps

    stage2s = [n for n in results if n.startswith("stage2@")]
    plain = [n for n in stage2s if Condition.parse(n).cfg == 1.0]
    most = max(plain, key=steps, default=None)  # the stage-2 model at its best (most steps, CFG 1): the bar for ARC at fewer
    guided = [n for n in stage2s if Condition.parse(n).cfg != 1.0]  # as it ships (CFG > 1): the bar for replacing it
    out: dict[str, Any] = {}
    for arc in (n for n in results if n.startswith("arc@")):
        for stage2 in dict.fromkeys([f"stage2@{steps(arc)}", most, *guided]):
            if stage2 not in results:
                continue
            a, s = get(arc, "fd_slope_per_min"), get(stage2, "fd_slope_per_min")
            out[f"{arc} vs {stage2}"] = {
                "slope_ratio": a / s if s > 0 else None,  # None: the stage-2 model does not degrade, no ratio to take
                "slope_pass": bool(a <= ISSUE_SLOPE_RATIO * s) if np.isfinite(a) and np.isfinite(s) and s > 0 else None,
                "last_minute_fd": [get(arc, "last_minute_fd"), get(stage2, "last_minute_fd")],
                "last_minute_pass": get(arc, "last_minute_fd") < get(stage2, "last_minute_fd"),
                "fd_probe": [get(arc, "fd_probe"), get(stage2, "fd_probe")],
            }
    return out
