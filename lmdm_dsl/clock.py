"""Musical time on top of a stream of fixed-length blocks.

Block ``i`` starts at ``i * block_seconds`` seconds of stream time. A ``Clock`` holds the tempo and
where its bar grid starts: bar 0 (cycle 0 of every pattern) begins ``origin_block * block_seconds``
seconds into the stream. That is the start of the block at which the last ``tempo`` change took
effect (0 at the stream start), or a fraction of a block into one when the grid follows another
clock's bar lines (Ableton Link, lmdm/sync/link.py: its bar lines fall anywhere in a block). Bars
before the origin count negative. Everything here is a small pure function of those numbers.

Quantisation rule: a statement aimed at time ``t`` (``boundary_at``, ``after_at``: in blocks, a
fraction allowed) fires before the first block whose start time is at or after ``t``; with a session
that lands changes inside a block (``LiveSession.landing``), before the block that holds ``t``
(``inside``), heard from ``t``'s sample (lmdm_dsl/interpreter.py).
"""

from __future__ import annotations

import math
import numbers

import attrs
import numpy as np

from lmdm_dsl.mini import Pattern, render
from lmdm_dsl.values import MAX_SPAN, Span

EPS = 1e-9  # tolerance, in blocks or grid periods, for times that should land exactly on a boundary


def _finite(_: object, attribute: attrs.Attribute, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")


@attrs.frozen
class Clock:
    bpm: float = 120.0
    beats_per_bar: int = 4
    origin_block: float = attrs.field(default=0, validator=_finite)  # bar 0 starts here, in blocks (a fraction allowed)

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.bpm

    @property
    def bar_seconds(self) -> float:
        return self.beat_seconds * self.beats_per_bar

    def seconds(self, span: Span, block_seconds: float) -> float:
        """The length of ``span`` in seconds at this tempo."""
        unit = {"beat": self.beat_seconds, "bar": self.bar_seconds, "block": block_seconds}[span.unit]
        return span.amount * unit

    def blocks(self, span: Span, block_seconds: float) -> int:
        """Whole blocks needed to cover ``span`` (``prompt … over 4 bars`` -> over_blocks)."""
        return first_block_at_or_after(self.seconds(span, block_seconds), block_seconds)

    def cycle_at(self, block: float, block_seconds: float) -> float:
        """Position in bars (pattern cycles) of the start of ``block`` (0 at the origin, any fraction)."""
        return (block - self.origin_block) * block_seconds / self.bar_seconds


def nudge(old: Clock, new: Clock, block_seconds: float, within: float) -> float | None:
    """How far (seconds) ``new``'s bar lines lie after ``old``'s when ``new`` is ``old`` moved by less than
    ``within`` seconds (same tempo and meter: a grid following another clock's drift, Ableton Link), else None.
    A nudged grid keeps its bar numbers: what was scheduled on it stays where it is."""
    if new.bpm != old.bpm or new.beats_per_bar != old.beats_per_bar:
        return None
    shift = (new.origin_block - old.origin_block) * block_seconds
    return shift if abs(shift) < within else None


def checked_seconds(clock: Clock, span: Span, block_seconds: float, frame_seconds: float) -> float:
    """``span`` in seconds at this tempo; ValueError unless it is 0 or lasts at least one latent frame.

    The shortest musical time is what the model can tell apart: one frame of its latents. A
    ``Span`` is at most ``MAX_SPAN`` of its unit already, so the result is finite.
    """
    seconds = clock.seconds(span, block_seconds)
    if span.amount > 0 and not seconds >= frame_seconds * (1 - EPS):  # an amount so small its seconds round to 0 too
        at = "" if span.unit == "block" else f" at {clock.bpm:g} BPM"
        raise ValueError(
            f"a time must be 0 or from one latent frame ({frame_seconds * 1000:.3g} ms) to {MAX_SPAN:g} {span.unit}s; "
            f"{span.to_source()} is {seconds * 1000:.3g} ms{at}"
        )
    return seconds


def first_block_at_or_after(seconds: float, block_seconds: float) -> int:
    """The first block whose start time is at or after ``seconds``."""
    return block_at_or_after(seconds / block_seconds)


def boundary_at(clock: Clock, span: Span, block: float, block_seconds: float, *, strictly_after: bool = False) -> float:
    """Where the first boundary of a ``span`` grid at (or after) ``block``'s start falls, in blocks
    (a fraction of a block when bars and blocks do not meet).

    Bar and beat grids start at the clock's origin (a fraction of a block allowed), none before it;
    block grids at block 0. With ``strictly_after`` a boundary exactly at ``block`` does not count
    (used to re-arm ``every`` after firing).
    """
    period = clock.seconds(span, block_seconds)
    origin = 0.0 if span.unit == "block" else clock.origin_block * block_seconds
    phase = (block * block_seconds - origin) / period
    count = math.floor(phase + EPS) + 1 if strictly_after else math.ceil(phase - EPS)
    return (origin + max(count, 0) * period) / block_seconds


def after_at(clock: Clock, span: Span, block: int, block_seconds: float) -> float:
    """Where ``in <span>`` typed when ``block`` is next falls, in blocks."""
    return block + clock.seconds(span, block_seconds) / block_seconds


def block_at_or_after(at: float) -> int:
    """The first block starting at or after ``at`` (in blocks)."""
    return math.ceil(at - EPS)


def inside(at: float, block: int) -> float | None:
    """How far into ``block`` a time ``at`` (in blocks) falls, when strictly inside it (else None)."""
    fraction = at - block
    return fraction if EPS < fraction < 1 - EPS else None


def pattern_frames(
    pattern: Pattern, clock: Clock, block: int, block_seconds: float, frame_rate: float
) -> np.ndarray:
    """The per-frame sketch for one block: the pattern queried over the bars that block covers."""
    n_frames = round(block_seconds * frame_rate)
    return render(pattern, clock.bar_seconds * frame_rate, n_frames, clock.cycle_at(block, block_seconds))


def ramp_frames(
    start: float, end: float, total_seconds: float, elapsed_seconds: float, n_frames: int, frame_rate: float
) -> np.ndarray:
    """A straight line from ``start`` to ``end`` over ``total_seconds``, then ``end``; one block's frames.

    ``elapsed_seconds`` is the time from the ramp's start to the block's first frame.
    """
    t = elapsed_seconds + np.arange(n_frames, dtype=np.float64) / frame_rate
    progress = np.clip(t / total_seconds, 0.0, 1.0) if total_seconds > 0 else np.ones(n_frames)
    return (start + (end - start) * progress).astype(np.float32)
