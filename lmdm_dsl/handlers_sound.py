"""The sketch and delay statements applied: what shapes the sound, kept by the interpreter.

``sketch`` keeps the sketch in force (an ``_Active``); before every block the hook calls
``send_sketches``, which renders each one for that block (``clock.pattern_frames`` /
``clock.ramp_frames``) and hands the frames to ``session.set_sketch``; a sketch that fails is
reported once and turned off. ``delay`` turns the generative delay on or changes it: ``delay_spec``
resolves its time at the current tempo into the ``DelaySpec`` that ``session.set_delay`` takes
(``Interpreter._retime`` calls it again when the tempo changes).

Each handler takes the ``Interpreter``, its statement and its ``Context``, and touches the
interpreter's state only under its lock, never calling the session while it holds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from lmdm_dsl import values as v
from lmdm_dsl.clock import Clock, checked_seconds, pattern_frames, ramp_frames
from lmdm_dsl.context import Context, Refused, one_line
from lmdm_dsl.mini import KINDS

if TYPE_CHECKING:
    from lmdm_dsl.interpreter import Interpreter


@attrs.frozen
class _Active:
    """A sketch in force: rendered afresh for every block."""

    sketch: v.SketchPattern | v.SketchRamp
    start_block: int
    ramp_seconds: float = 0.0


def sketch(interp: Interpreter, s: v.SketchPattern | v.SketchRamp, c: Context) -> str:
    interp._require("sketch")
    if not getattr(interp.session, "frame_rate", None):
        raise Refused("sketch needs the session's frame_rate")
    ramp = interp._seconds(s.over) if isinstance(s, v.SketchRamp) else 0.0
    with interp._lock:
        interp._sketches[s.kind] = _Active(s, c.now, ramp)
    if isinstance(s, v.SketchRamp):
        return f"{s.to_source()} (from block {c.now})"
    cycles = s.pattern.period
    return f"{s.to_source()} (repeats every {cycles} bar{'' if cycles == 1 else 's'})"


def sketch_off(interp: Interpreter, s: v.SketchOff, c: Context) -> str:
    interp._require("sketch")
    kinds = KINDS if s.kind is None else (s.kind,)
    with interp._lock:
        for kind in kinds:
            interp._sketches.pop(kind, None)
    for kind in kinds:
        interp.session.set_sketch(kind, None)
    return s.to_source()


def send_sketches(interp: Interpreter, index: int, block_seconds: float) -> None:
    """Each sketch in force, rendered for this block; one that fails is reported once and turned off."""
    with interp._lock:
        active, clock = dict(interp._sketches), interp._clock
    if not active:
        return
    try:
        frame_rate = float(interp.session.frame_rate)
    except Exception as error:
        interp._tell(index, f"error: sketches: {type(error).__name__}: {one_line(error)}")
        return
    for kind, entry in active.items():
        try:
            sketch = entry.sketch
            if isinstance(sketch, v.SketchPattern):
                frames = pattern_frames(sketch.pattern, clock, index, block_seconds, frame_rate)
            else:
                frames = ramp_frames(
                    sketch.start, sketch.end, entry.ramp_seconds,
                    (index - entry.start_block) * block_seconds,
                    round(block_seconds * frame_rate), frame_rate,
                )
            interp.session.set_sketch(kind, frames)
        except Exception as error:
            with interp._lock:
                if interp._sketches.get(kind) is entry:
                    del interp._sketches[kind]
            interp._tell(index, f"error: sketch {kind}: {one_line(error)}; that sketch is off")
            try:
                interp.session.set_sketch(kind, None)
            except Exception:
                pass  # already said; the session keeps no frames from this block


def delay_on(interp: Interpreter, s: v.Delay, c: Context) -> str:
    """Turn the delay on, or change the given fields of the one that is on (``delay mix 0.2``)."""
    interp._require("delay")
    block_seconds = interp.session.block_seconds
    with interp._lock:
        delay, clock = s.updating(interp._delay), interp._clock
    spec = delay_spec(delay, clock, block_seconds, interp._frame_seconds())
    interp.session.set_delay(spec)
    with interp._lock:
        interp._delay = delay
    return f"{delay.to_source()} ({v.num(round(spec.time_blocks, 3))} blocks)"


def delay_off(interp: Interpreter, s: v.DelayOff, c: Context) -> str:
    interp._require("delay")
    interp.session.set_delay(None)
    with interp._lock:
        interp._delay = None
    return "delay off"


def delay_spec(delay: v.Delay, clock: Clock, block_seconds: float, frame_seconds: float) -> v.DelaySpec:
    """The delay as the session takes it, its time at ``clock``'s tempo (ValueError if shorter than a frame)."""
    seconds = checked_seconds(clock, delay.time, block_seconds, frame_seconds)
    return v.DelaySpec(
        time_blocks=seconds / block_seconds, time_seconds=seconds,
        strength=delay.strength, feedback=delay.feedback, mix=delay.mix, prompts=delay.prompts or (),
    )
