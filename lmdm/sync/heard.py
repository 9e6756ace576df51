"""Where the stream is heard: the stream time (seconds into the stream) reaching the listener now, as
the threads that play with others need it (Ableton Link's peer, MIDI clock out).

    wall_heard(session)     no audio engine: the blocks made so far, paced by the wall clock from now on
    engine_heard(engine)    what an ``lmdm.audio.AudioEngine``'s device took from its ring (or was paced)
    engine_output(engine)   that, less one callback's worth and the device's output latency: heard
    HeardOffset             host time - heard time, from looks at both (exact just after a callback)

Pure and thread-free: each is read on the thread that asks.
"""

from __future__ import annotations

import collections
import math
import time
from typing import Any, Callable

WINDOW_SECONDS = 4.0  # heard samples the offset is the smallest of
STALL_SECONDS = 0.6  # heard() still this long (longer than any device callback: 4096 frames at 8 kHz): stalled
LATER_SECONDS = 0.015  # a move heard this much later than the offset (three of Link's 5 ms looks: not a late look) ...
LATER_RUNS = 8  # ... this many times in a row: the output fell behind


def wall_heard(session: Any) -> Callable[[], float]:
    """Without an audio engine: the stream time heard now, taken as the blocks made so far paced by
    the wall clock from now on."""
    started = time.perf_counter() - session.block_index * session.block_seconds
    return lambda: time.perf_counter() - started


def engine_heard(engine: Any) -> float:
    """The stream time (seconds) an ``lmdm.audio.AudioEngine`` is playing now: the frames it took
    from its ring, heard or (with no device) paced, at the device's rate."""
    stats = engine.stats()
    return (stats.frames_played + stats.paced_frames) / stats.device_rate


def engine_output(engine: Any, latency: float | None = None) -> float:
    """The stream time (seconds) reaching the listener from an ``lmdm.audio.AudioEngine`` now: what the
    device took (``engine_heard``) less one callback's worth and the output ``latency`` (None: what
    the device reports). Exact just after a callback, late by up to one between callbacks."""
    stats = engine.stats()
    callback = stats.frames_played / stats.callbacks / stats.device_rate if stats.callbacks else 0.0
    return engine_heard(engine) - callback - (engine.output_latency() if latency is None else latency)



class HeardOffset:
    """host - stream time at the output, from (host, heard) looks: heard() is exact just after it moves
    (a device callback) and late by up to a callback until the next move, so the offset is the smallest
    host - heard of the looks just after a move, over the last ``window`` seconds.

    The output can only fall further behind (it starts, it runs dry, it is lost): ``runs`` moves in a
    row heard more than ``later`` seconds after the offset mean it did, and the older looks go; a
    heard() that stands still for ``stall`` seconds is not playing, and the offset is then the latest
    look's (heard now) until it moves again."""

    def __init__(self, window: float = WINDOW_SECONDS, stall: float = STALL_SECONDS, later: float = LATER_SECONDS,
                 runs: int = LATER_RUNS) -> None:
        self.window, self.stall, self.later, self.runs = window, stall, later, runs
        self._best: collections.deque[tuple[float, float]] = collections.deque()  # (host, offset), offsets rising: a sliding minimum
        self._run: list[tuple[float, float]] = []  # the last moves heard later than the offset
        self._latest: float | None = None
        self._heard: float | None = None
        self._moved = -math.inf  # host time heard() last moved
        self.behind = 0  # times the output fell behind (and the older looks went)

    def add(self, host: float, heard: float) -> None:
        self._latest = host - heard
        if self._heard is None:  # the first look: what moves is the next one
            self._heard, self._moved = heard, host
            return
        if heard == self._heard:
            if host - self._moved > self.stall:
                self._best.clear()
                self._run = []
            return
        self._heard, self._moved = heard, host
        look = (host, host - heard)
        if self._best and look[1] - self._best[0][1] > self.later:
            self._run.append(look)
            if len(self._run) >= self.runs:  # the output fell behind: these looks are the truth now
                self.behind += 1
                self._best.clear()
                for older in self._run[:-1]:
                    self._push(older)
                self._run = []
        else:
            self._run = []
        self._push(look)
        while self._best and self._best[0][0] < host - self.window:
            self._best.popleft()

    def _push(self, look: tuple[float, float]) -> None:
        while self._best and self._best[-1][1] >= look[1]:
            self._best.pop()
        self._best.append(look)

    def offset(self) -> float | None:
        return self._best[0][1] if self._best else self._latest


__all__ = ["HeardOffset", "engine_heard", "engine_output", "wall_heard"]
