"""MIDI clock out: the session's clock as 24 pulses a beat, with Start at its bar lines as heard.

    ``session.clock`` + the stream time being heard -> ``ClockOut``'s thread -> Start at the next bar
    line heard, 24 clock ticks per beat, Start again where the session's bar 1 moves, Stop
    -> ``send`` (a MIDI port's, ``lmdm.sync.midi.MidiOut``; only while the language says ``midi clock out``)

No MIDI library here: ``send`` writes the bytes. Pure parts: ``bar_one_at``, ``first_tick``.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from typing import Callable, Sequence

import attrs

from lmdm_dsl.clock import Clock, nudge

log = logging.getLogger(__name__)

TICKS_PER_BEAT = 24  # MIDI clock: 24 pulses per quarter note
START_LEAD_SECONDS = 0.05  # the clock out starts at a bar line at least this far ahead
POLL_SECONDS = 0.05  # how often the clock-out thread looks at the language and the session's clock
TIMING_KEPT = 4096  # (planned, sent) times of the last clock-out messages, for measuring

START, CONTINUE, STOP, TICK = (0xFA,), (0xFB,), (0xFC,), (0xF8,)


def bar_one_at(clock: Clock, block_seconds: float, heard_s: float, now: float) -> float:
    """When (on the ``now`` clock) the clock's bar 1 is heard (a fraction of a block into its block
    allowed), stream time ``heard_s`` being heard at ``now``."""
    return now + clock.origin_block * block_seconds - heard_s


def first_tick(anchor: float, tick_s: float, after: float, every: int = 1) -> int:
    """The first tick index k, a multiple of ``every``, with ``anchor + k * tick_s >= after``."""
    k = math.ceil((after - anchor) / tick_s - 1e-9)
    return -(-k // every) * every


@attrs.frozen
class _Grid:
    """A tempo grid in wall time: tick k at ``anchor + k * tick_s``; ``clock`` is the one it follows."""

    clock: Clock
    anchor: float
    tick_s: float


def _moved(grid: _Grid, clock: Clock, shift: float) -> _Grid:
    """``grid`` following ``clock``, its ticks ``shift`` seconds later."""
    return _Grid(clock, grid.anchor + shift, grid.tick_s)


class ClockOut:
    """MIDI clock from the session's clock, while ``enabled()`` (the language's ``midi clock out``).

    Start goes out at the first bar line heard at least ``START_LEAD_SECONDS`` ahead, then 24 ticks
    per beat. When the session's clock changes (a ``tempo``: bar 1 moves to a block not heard yet),
    the old grid ticks on until the new bar 1 is heard, then Start and the new grid (a bar 1 already
    heard, or one a fraction of a block in: its next bar line). A grid only nudged by less than half
    a tick (Ableton Link following the device's drift) ticks on, moved, with no Start. Stop goes out
    when ``enabled()`` turns false and at ``stop()``.
    ``heard()`` is the stream time (seconds) being heard now; ``send`` writes one message."""

    def __init__(self, send: Callable[[Sequence[int]], None], clock: Callable[[], Clock], block_seconds: float,
                 enabled: Callable[[], bool], heard: Callable[[], float], *,
                 now: Callable[[], float] = time.perf_counter) -> None:
        self.send = send
        self.clock = clock
        self.block_seconds = block_seconds
        self.enabled = enabled
        self.heard = heard
        self.now = now
        self.timing: collections.deque[tuple[float, float]] = collections.deque(maxlen=TIMING_KEPT)
        self.ticks = self.starts = self.late = 0
        self._sounding = False  # a Start went out and no Stop since
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ClockOut:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lmdm-midi-clock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    def _grid(self, clock: Clock) -> _Grid:
        now = self.now()
        return _Grid(clock, bar_one_at(clock, self.block_seconds, self.heard(), now), 60.0 / clock.bpm / TICKS_PER_BEAT)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # the music plays on without the clock
            log.warning("MIDI clock out stopped", exc_info=True)
        finally:
            self._send_stop()

    def _loop(self) -> None:
        playing: tuple[_Grid, int] | None = None  # the grid ticking and its next tick
        coming: tuple[_Grid, int] | None = None  # a grid waiting to start at its tick
        while not self._stop.is_set():
            if not self.enabled():
                self._send_stop()
                playing = coming = None
                self._stop.wait(POLL_SECONDS)
                continue
            clock = self.clock()
            latest = coming or playing
            if latest is not None and latest[0].clock != clock:
                shift = nudge(latest[0].clock, clock, self.block_seconds, latest[0].tick_s / 2)
                if shift is not None:  # the same grid nudged (Ableton Link following the device's drift): tick on, moved
                    playing = None if playing is None else (_moved(playing[0], clock, shift), playing[1])
                    coming = None if coming is None else (_moved(coming[0], clock, shift), coming[1])
                    latest = coming or playing
            if latest is None or latest[0].clock != clock:
                grid = self._grid(clock)
                bar = TICKS_PER_BEAT * clock.beats_per_bar
                coming = (grid, first_tick(grid.anchor, grid.tick_s, self.now() + START_LEAD_SECONDS, bar))
            # the next message: the coming grid's Start, or the playing grid's tick before it
            if coming is not None:
                start_at = coming[0].anchor + coming[1] * coming[0].tick_s
            if playing is not None:
                tick_at = playing[0].anchor + playing[1] * playing[0].tick_s
            if coming is not None and (playing is None or tick_at >= start_at - playing[0].tick_s / 2):
                if not self._wait_until(start_at):
                    continue
                self._send(START, start_at)
                self.starts += 1
                self._send(TICK, start_at)
                playing, coming = (coming[0], coming[1] + 1), None
            else:
                if not self._wait_until(tick_at):
                    continue
                grid, k = playing
                behind = self.now() - tick_at
                if behind > TICKS_PER_BEAT * grid.tick_s:  # stalled for a beat: catch up by the clock, not by a burst
                    self.late += 1
                    k = first_tick(grid.anchor, grid.tick_s, self.now())
                    tick_at = grid.anchor + k * grid.tick_s
                self._send(TICK, tick_at)
                playing = (grid, k + 1)

    def _wait_until(self, t: float) -> bool:
        """Sleep until ``t``; False if the language or the session's clock may have changed meanwhile
        (woken each ``POLL_SECONDS`` to look), or the clock is stopping."""
        while True:
            left = t - self.now()
            if left <= 0:
                return True
            if left > POLL_SECONDS:
                self._stop.wait(POLL_SECONDS)
                return False
            if self._stop.is_set():
                return False
            time.sleep(left)

    def _send(self, message: tuple[int, ...], planned: float) -> None:
        self.send(message)
        self.timing.append((planned, self.now()))
        if message == TICK:
            self.ticks += 1
        elif message == START:
            self._sounding = True

    def _send_stop(self) -> None:
        if not self._sounding:
            return
        self._sounding = False
        try:
            self.send(STOP)
        except Exception:
            log.debug("could not send MIDI stop", exc_info=True)


__all__ = ["CONTINUE", "START", "STOP", "TICK", "TICKS_PER_BEAT", "ClockOut", "bar_one_at", "first_tick"]
