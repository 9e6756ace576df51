"""MIDI in the language: what a controller, a keyboard or a clock hands the interpreter, and the
pure math from those numbers to a knob, a crossfade or a melody sketch.

Data flow (the ports themselves are ``lmdm/sync/midi.py``, the ``[midi]`` extra):

    a MIDI thread: control change, note on/off, a followed tempo, start/stop
      -> ``MidiBridge`` (a few numbers under its own lock; nothing else happens on that thread)
      -> before each block, on the generation thread, ``Interpreter`` takes a ``MidiSnapshot``
         and turns it into the session's setters, as statements would:
         a mapped controller's 0..127 -> ``position`` (0..1) -> ``smooth_step`` once per block
         -> ``knob_value`` (``cfg 1 .. 6``) or ``crossfade`` ((text, weight) pairs) or a loudness ramp;
         the keys held -> ``note_order`` -> ``note_frames`` (the melody sketch, one note per beat);
         a tempo -> ``tempo`` (bar 1 at that block), start/stop -> their ``midi start:`` bodies.

Conventions: a controller's position is its 7-bit value / 127, 0 to 1. Channels are 1 to 16, as
printed on the devices. Smoothing is a one-pole filter stepped once per block: a knob moves
``1 - exp(-block_seconds / smooth_seconds)`` of the way to the controller's position at each block,
and lands on it once it is within half a controller step.
"""

from __future__ import annotations

import math
import threading
from typing import Sequence

import attrs
import numpy as np

from lmdm_dsl.values import TEMPO_RANGE

CONTROL_STEPS = 127  # a 7-bit controller's largest value
SNAP = 0.5 / CONTROL_STEPS  # a smoothed knob this close to the controller's position lands on it
TEMPO_STEP_BPM = 0.5  # a followed MIDI clock changes the tempo only by at least this much
MAX_NOTES = 16  # keys that make one melody
EPS = 1e-9


# --- pure functions --------------------------------------------------------------------------------


def position(value: int) -> float:
    """A 7-bit controller value (0..127) as a position from 0 to 1; ValueError outside 0..127."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= CONTROL_STEPS:
        raise ValueError(f"a MIDI controller value must be a whole number from 0 to {CONTROL_STEPS}, got {value!r}")
    return value / CONTROL_STEPS


def knob_value(pos: float, low: float, high: float) -> float:
    """The knob's value at position ``pos`` (0..1) of a controller mapped ``low .. high``, to 6 decimals
    (far finer than a controller's 127 steps, and ``0.2 .. 0.8`` at 127 is 0.8, not 0.8000000000000002)."""
    return round(low + (high - low) * pos, 6)


def smoothing(block_seconds: float, smooth_seconds: float) -> float:
    """How far (0..1] a knob moves towards its controller in one block: 1 when not smoothed."""
    if smooth_seconds <= 0:
        return 1.0
    return 1.0 - math.exp(-block_seconds / smooth_seconds)


def smooth_step(current: float | None, target: float, alpha: float) -> float:
    """One block of smoothing: ``current`` moved ``alpha`` of the way to ``target``; the target
    itself once within ``SNAP`` (or when there is no current value yet)."""
    if current is None:
        return target
    moved = current + (target - current) * alpha
    return target if abs(target - moved) <= SNAP else moved


def crossfade(first: str, second: str, pos: float) -> tuple[tuple[str, float], tuple[str, float]]:
    """A prompt crossfader at ``pos``: (text, weight) pairs for ``LiveSession.set_prompt``."""
    return (first, 1.0 - pos), (second, pos)


def note_order(held: dict[int, int], pressed: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """The melody's notes: the keys held and those pressed since the last block, in the order they
    were pressed, each once, the last ``MAX_NOTES``. ``held``: note -> press number; ``pressed``:
    (press number, note) pairs."""
    first: dict[int, int] = {}
    for order, note in [*((o, n) for n, o in held.items()), *pressed]:
        if note not in first or order < first[note]:
            first[note] = order
    return tuple(sorted(first, key=first.__getitem__))[-MAX_NOTES:]


def note_frames(
    notes: Sequence[int], bpm: float, origin_block: float, block: int, block_seconds: float, n_frames: int, frame_rate: float
) -> np.ndarray:
    """The melody sketch [n_frames] (MIDI numbers) of ``block``: ``notes`` one per beat in turn, beats
    counted from ``origin_block`` (the clock's bar 1, a fraction of a block allowed), so one held key
    fills the block."""
    if not notes:
        return np.zeros(n_frames, dtype=np.float32)
    t = (block - origin_block) * block_seconds + np.arange(n_frames) / frame_rate
    beats = np.floor(t * bpm / 60.0 + EPS).astype(np.int64)
    return np.asarray(notes, dtype=np.float32)[beats % len(notes)]


def loudness_frames(start: float, end: float, n_frames: int) -> np.ndarray:
    """A loudness knob's frames for one block: a straight line from last block's level to this one's."""
    return np.linspace(start, end, max(n_frames, 0), endpoint=False).astype(np.float32)


def tempo_change(followed: float | None, current: float) -> float | None:
    """The tempo to set for a followed clock: ``followed`` rounded to 0.1 BPM when it is at least
    ``TEMPO_STEP_BPM`` from ``current``, else None (so jitter does not restart the bar grid)."""
    if followed is None or abs(followed - current) < TEMPO_STEP_BPM:
        return None
    return round(followed, 1)


# --- what a MIDI thread hands over ------------------------------------------------------------------


@attrs.frozen
class MidiSnapshot:
    """What the bridge held at the start of a block."""

    controls: dict[tuple[int | None, int], tuple[int, float]]  # (channel or None, control) -> (change number, position)
    held: dict[tuple[int, int], int]  # (channel, note) -> press number, the keys down now
    pressed: tuple[tuple[int, int, int], ...]  # (press number, channel, note) since the last block
    tempo: float | None  # the latest followed tempo, BPM (None: no clock, or it stopped)
    transport: tuple[str, ...]  # "start", "stop", "continue" since the last block, in order
    changes: int  # control changes so far


class MidiBridge:
    """The meeting point of a MIDI thread and the interpreter: the MIDI thread calls ``control``,
    ``note``, ``tempo`` and ``transport``, each a few assignments under the bridge's own lock (never
    the interpreter's or the session's); the interpreter ``take``s it all before each block.
    ``clock_out`` says whether ``midi clock out`` is in force, for a clock-out thread to read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._controls: dict[tuple[int | None, int], tuple[int, float]] = {}
        self._held: dict[tuple[int, int], int] = {}
        self._pressed: list[tuple[int, int, int]] = []
        self._tempo: float | None = None
        self._transport: list[str] = []
        self._count = 0  # control changes and presses, numbered in arrival order
        self.clock_out = False
        self.clock_in = False

    def control(self, channel: int, control: int, value: int) -> None:
        """A control change (channel 1..16, control 0..127, value 0..127)."""
        pos = position(value)
        with self._lock:
            self._count += 1
            self._controls[(channel, control)] = self._controls[(None, control)] = (self._count, pos)

    def note(self, channel: int, note: int, velocity: int) -> None:
        """A key down (velocity > 0) or up (velocity 0)."""
        with self._lock:
            if velocity > 0:
                self._count += 1
                self._held[(channel, note)] = self._count
                self._pressed.append((self._count, channel, note))
                del self._pressed[:-4 * MAX_NOTES]
            else:
                self._held.pop((channel, note), None)

    def tempo(self, bpm: float | None) -> None:
        """The external clock's tempo (None: it stopped); one outside the language's range is ignored."""
        if bpm is not None and not TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
            return
        with self._lock:
            self._tempo = bpm

    def transport(self, event: str) -> None:
        """"start", "stop" or "continue" from the external clock."""
        with self._lock:
            self._transport = [*self._transport[-7:], event]

    def last_change(self, key: tuple[int | None, int]) -> int:
        """The number of the last change of controller ``key`` (0: none yet)."""
        with self._lock:
            return self._controls.get(key, (0, 0.0))[0]

    def take(self) -> MidiSnapshot:
        """Everything held now; the presses and transport events since the last call are used up."""
        with self._lock:
            pressed, self._pressed = tuple(self._pressed), []
            transport, self._transport = tuple(self._transport), []
            return MidiSnapshot(dict(self._controls), dict(self._held), pressed, self._tempo, transport, self._count)


__all__ = [
    "CONTROL_STEPS", "MAX_NOTES", "SNAP", "TEMPO_STEP_BPM", "MidiBridge", "MidiSnapshot", "crossfade", "knob_value",
    "loudness_frames", "note_frames", "note_order", "position", "smooth_step", "smoothing", "tempo_change",
]
