"""Ableton Link: the stream's tempo and bar lines shared with the other Link peers on the network
([link] extra: aalink).

Data flow in:

    a peer changes the tempo, or lmdm joins a session with its own beat timeline
      -> Link's threads (aalink) -> ``LinkPeer``'s thread, every ``POLL_SECONDS``: Link's beat and
         tempo at its host time, the number of peers, and the stream time being heard (``heard()``)
         -> ``LinkBridge`` (a few numbers under its own lock; nothing else happens on that thread)
      -> before each block, on the generation thread, ``LinkSync`` (a session hook): where Link's
         bar lines will be heard (``offset``: host time = stream time + offset) against the session's
         clock -> ``follow`` -> ``session.set_tempo(bpm, origin=...)`` when the tempo differs or the
         bar lines are more than ``PHASE_TOLERANCE_SECONDS`` apart: bar 1 on a Link bar line as heard
         at the output, a fraction of a block (lmdm_dsl.clock.Clock.origin_block)

and out:

    the stream changes its clock (the language's ``tempo``, ``set_tempo`` from Python)
      -> the hook hands a ``Proposal`` (Link's timeline as it should be) to the bridge
      -> the Link thread, when the first block of the new clock is heard, sets Link's tempo (the
         peers follow) and, alone in the session, puts Link's bar line where the stream's bar 1 is heard

Time: host time is Link's clock in seconds (``Link.time``: CLOCK_MONOTONIC_RAW on Linux); stream
time is seconds into the stream (block i starts at i * block_seconds). Link's bar lines are its beats
that are whole multiples of the quantum (the session's beats_per_bar unless ``--link-quantum``).
``heard()`` is the stream time reaching the listener now, never ahead of it: with an audio engine,
the frames the device took less one callback's worth and the device's output latency
(``engine_output``), which is exact just after each callback and late by up to a callback between
them; ``offset`` is therefore the smallest host - heard of the looks just after it moved, over the
last ``WINDOW_SECONDS`` (``lmdm.sync.heard.HeardOffset``).

Nothing here stops the music: no [link] extra is one ``LinkUnavailable`` line, no peers is "Link: 0
peers" (the stream plays at its own tempo, Link follows it), a session tempo outside the language's
TEMPO_RANGE is one line and not followed, and a hook or a look at Link that fails is logged and
skipped. The Link thread never calls the session; the hook never calls aalink.
Pure parts: ``Grid``, ``bar_line_near``, ``follow``, ``proposed``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from typing import Any, Callable

import attrs

from lmdm.osc.throttle import ThrottledLog
from lmdm.sync.heard import HeardOffset, wall_heard
from lmdm_dsl.clock import Clock
from lmdm_dsl.values import TEMPO_RANGE, num

log = logging.getLogger(__name__)

EXTRA = "Ableton Link needs the [link] extra: pip install 'lmdm[link]' (aalink)"
POLL_SECONDS = 0.005  # how often the Link thread looks at Link and at what is heard
SPIN_SECONDS = 0.002  # a proposal is waited for awake this last bit (a sleep wakes up to ~1 ms late)
PHASE_TOLERANCE_SECONDS = 0.0005  # bar lines further than this from Link's are moved onto them (8 samples at 16 kHz)
TEMPO_DECIMALS = 3  # a followed tempo, in BPM (Link keeps microseconds per beat: 130 reads 130.0000433)
KEPT_ASKED = 8  # clocks the hook asked the session for, told apart from the stream's own changes


class LinkUnavailable(RuntimeError):
    """aalink is missing: one line naming the extra."""


class LinkError(RuntimeError):
    """Link could not start (no network to join, ...): one line."""


def _module() -> Any:
    try:
        import aalink
    except ImportError as error:
        raise LinkUnavailable(f"{EXTRA} ({error})") from None
    return aalink


# --- pure parts ----------------------------------------------------------------------------------


@attrs.frozen
class Grid:
    """Link's beat timeline: beat ``beat`` at host time ``host`` (seconds), ``bpm`` beats a minute."""

    host: float
    beat: float
    bpm: float

    def beat_at(self, host: float) -> float:
        return self.beat + (host - self.host) * self.bpm / 60.0

    def host_at(self, beat: float) -> float:
        return self.host + (beat - self.beat) * 60.0 / self.bpm


def bar_line_near(grid: Grid, offset: float, quantum: float, block_seconds: float, near: float) -> float:
    """The block (a fraction of one) where the Link bar line nearest block ``near`` is heard; stream
    time s is heard at host time s + ``offset``."""
    beat = grid.beat_at(near * block_seconds + offset)
    return (grid.host_at(round(beat / quantum) * quantum) - offset) / block_seconds


def follow(clock: Clock, grid: Grid, offset: float, quantum: float, block: int, block_seconds: float,
           tolerance: float = PHASE_TOLERANCE_SECONDS) -> Clock | None:
    """The clock the session should have from ``block`` on to play with Link, or None when ``clock``
    does already (or Link's tempo is outside TEMPO_RANGE: not followed).

    A new tempo puts bar 1 on the Link bar line nearest ``block``. At the same tempo, the stream's
    bar line nearest ``block`` that is a whole number of quanta from bar 1 is compared with Link's
    nearest it; more than ``tolerance`` seconds apart, bar 1 moves by the difference (the bars keep
    their numbers)."""
    bpm = round(grid.bpm, TEMPO_DECIMALS)
    if not TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
        return None
    if bpm != clock.bpm:
        return Clock(bpm, clock.beats_per_bar, bar_line_near(grid, offset, quantum, block_seconds, block))
    quantum_blocks = quantum * 60.0 / clock.bpm / block_seconds
    ours = clock.origin_block + round((block - clock.origin_block) / quantum_blocks) * quantum_blocks
    shift = bar_line_near(grid, offset, quantum, block_seconds, ours) - ours
    if abs(shift) * block_seconds <= tolerance:
        return None
    return Clock(clock.bpm, clock.beats_per_bar, clock.origin_block + shift)


def proposed(clock: Clock, grid: Grid, offset: float, quantum: float, block_seconds: float, due: float,
             alone: bool) -> Grid:
    """Link's timeline once the stream's ``clock`` is proposed at host time ``due``: its tempo from
    then on, and, ``alone`` in the session, a bar line where its bar 1 is heard (beats numbered near
    ``grid``'s); with peers the phase is the session's, continuous at ``due``."""
    if not alone:
        return Grid(due, grid.beat_at(due), clock.bpm)
    bar_one = clock.origin_block * block_seconds + offset
    return Grid(bar_one, round(grid.beat_at(bar_one) / quantum) * quantum, clock.bpm)


# --- the meeting point of the Link thread and the generation thread ---------------------------------


@attrs.frozen
class LinkState:
    grid: Grid  # Link's timeline (a proposal's while one waits)
    peers: int
    offset: float  # host time = stream time + offset


@attrs.frozen
class Proposal:
    grid: Grid  # Link's timeline as the stream would have it (``proposed``)
    due: float  # host time to set it: when the first block of the stream's new clock is heard
    alone: bool  # made with no peers: dropped if one joined before it is due


class LinkBridge:
    """The Link thread ``tell``s Link's timeline and the peers and ``hear``s the output; the hook
    ``look``s and ``propose``s; the Link thread takes a proposal when ``due`` and ``settle``s it.
    Each is a few assignments under the bridge's own lock."""

    def __init__(self, quantum: float) -> None:
        self._lock = threading.Lock()
        self.quantum = float(quantum)  # written by the hook, read by the Link thread
        self._grid: Grid | None = None
        self._peers = 0
        self._heard = HeardOffset()
        self._pending: Proposal | None = None

    def tell(self, grid: Grid, peers: int) -> None:
        with self._lock:
            self._grid, self._peers = grid, peers

    def hear(self, host: float, heard: float) -> None:
        with self._lock:
            self._heard.add(host, heard)

    def look(self) -> LinkState | None:
        """What the hook plays with: None until Link and the output have been seen."""
        with self._lock:
            offset = self._heard.offset()
            if self._grid is None or offset is None:
                return None
            grid = self._grid if self._pending is None else self._pending.grid
            return LinkState(grid, self._peers, offset)

    def propose(self, proposal: Proposal) -> None:
        with self._lock:
            self._pending = proposal

    def due(self, host: float) -> Proposal | None:
        with self._lock:
            p = self._pending
            return p if p is not None and p.due <= host else None

    def next_due(self) -> float | None:
        with self._lock:
            return None if self._pending is None else self._pending.due

    def settle(self, proposal: Proposal, grid: Grid, peers: int) -> None:
        """``proposal`` was applied (or dropped): Link's timeline is ``grid`` now."""
        with self._lock:
            if self._pending is proposal:
                self._pending = None
            self._grid, self._peers = grid, peers


# --- the Link thread ------------------------------------------------------------------------------------


class LinkPeer:
    """lmdm's Link peer: an asyncio loop on its own thread ("lmdm-link") that owns the aalink ``Link``,
    looks at it every ``POLL_SECONDS`` into ``bridge`` with ``heard()`` (the stream time heard now),
    and applies the proposals. ``say`` gets its lines (peers joining and leaving, a tempo not followed)."""

    def __init__(self, bridge: LinkBridge, bpm: float, heard: Callable[[], float], *,
                 say: Callable[[str], None] = print) -> None:
        self.bridge = bridge
        self.bpm = bpm
        self.heard = heard
        self.say = say
        self.looks = self.errors = self.applied = self.dropped = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._log = ThrottledLog(log)
        self._peers = 0
        self._out_of_range: float | None = None  # the session tempo last said not followed
        self._failure = ""

    def start(self) -> LinkPeer:
        """Join the session (LinkUnavailable without aalink, LinkError if Link cannot start)."""
        aalink = _module()
        self._stop.clear()
        self._ready.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run(aalink)), name="lmdm-link", daemon=True)
        self._thread.start()
        if not self._ready.wait(5.0):
            self._failure = "no answer in 5 s"
        if self._failure:
            self.stop()
            raise LinkError(f"Ableton Link could not start: {self._failure}")
        return self

    def stop(self) -> None:
        """Leave the session; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    async def _run(self, aalink: Any) -> None:
        try:
            link = aalink.Link(self.bpm)  # needs the running loop: its callbacks are scheduled on it
            link.quantum = self.bridge.quantum
            link.enabled = True
        except Exception as error:
            self._failure = " ".join(str(error).split()) or type(error).__name__
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                wait = POLL_SECONDS
                try:
                    now = self._look(link)
                    due = self.bridge.next_due()
                    if due is not None and due - now < SPIN_SECONDS:  # Link's tempo changes when set: be on time
                        while _host(link) < due:  # blocking this loop (it only carries aalink's callbacks) for 2 ms at most
                            time.sleep(0.0001)  # noqa: ASYNC251
                        now = self._look(link)
                    elif due is not None:
                        wait = min(wait, due - now - SPIN_SECONDS)
                except Exception:  # a look that fails is skipped; the next one may work
                    self.errors += 1
                    self._log.warning("Link: a look at the session failed", exc_info=True)
                await asyncio.sleep(wait)
        finally:
            link.enabled = False

    def _look(self, link: Any) -> float:
        """One look: Link's timeline and the heard stream into the bridge, a due proposal applied,
        a line for peers coming and going; returns the host time."""
        if link.quantum != self.bridge.quantum:
            link.quantum = self.bridge.quantum
        grid, peers = _read(link)
        heard = self.heard()
        host = _host(link)
        self.bridge.tell(grid, peers)
        self.bridge.hear(host, heard)
        self.looks += 1
        proposal = self.bridge.due(host)
        if proposal is not None:
            self._apply(link, proposal, peers)
        self._tell_changes(link, peers)
        return host

    def _apply(self, link: Any, proposal: Proposal, peers: int) -> None:
        if proposal.alone and peers > 0:  # a peer joined meanwhile: its session's tempo and phase win
            self.dropped += 1
        else:
            link.tempo = proposal.grid.bpm
            if peers == 0:
                link.request_beat(proposal.grid.beat_at(_host(link)))
            self.applied += 1
        grid, peers = _read(link)
        self.bridge.settle(proposal, grid, peers)

    def _tell_changes(self, link: Any, peers: int) -> None:
        if peers != self._peers:
            self._peers = peers
            self.say(f"Link: {peers} peer{'' if peers == 1 else 's'}" + (": playing at its own tempo" if peers == 0 else ""))
        bpm = round(link.tempo, TEMPO_DECIMALS)
        if TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
            self._out_of_range = None
        elif bpm != self._out_of_range:
            self._out_of_range = bpm
            self.say(f"Link: the session's tempo {num(round(bpm, 2))} BPM is outside {num(TEMPO_RANGE[0])}-{num(TEMPO_RANGE[1])} BPM; "
                     "not followed, playing on at the stream's own")


def _host(link: Any) -> float:
    return link.time.total_seconds()


def _read(link: Any) -> tuple[Grid, int]:
    """Link's timeline now: its beat between two readings of its clock, its tempo, its peers."""
    before = _host(link)
    beat = link.beat
    after = _host(link)
    return Grid((before + after) / 2, beat, link.tempo), link.num_peers


# --- the generation thread's part: a session hook ------------------------------------------------------------


def _on(clock: Clock, grid: Grid, offset: float, quantum: float, block: int, block_seconds: float, tolerance: float) -> bool:
    """Whether ``clock`` plays with Link's ``grid`` at ``block``: its tempo, bar lines within ``tolerance``."""
    return round(grid.bpm, TEMPO_DECIMALS) == clock.bpm and follow(clock, grid, offset, quantum, block, block_seconds, tolerance) is None


class LinkSync:
    """The session hook that plays the stream with Link: ``session.add_hook(LinkSync(bridge))``.

    Before each block it looks at the bridge. With peers, a clock the stream changed itself is proposed
    to Link (not on joining: the session's tempo wins), then the session is given the clock that plays
    with Link (``follow``). Alone, Link follows the stream: its clock is proposed whenever it changed
    or Link's timeline is not the stream's. ``clock()`` is the stream's
    clock as the performer set it (the interpreter's, which sees a ``tempo`` typed this block; default
    the session's); ``quantum`` is Link's (None: the clock's beats_per_bar). Never raises."""

    def __init__(self, bridge: LinkBridge, *, clock: Callable[[], Clock] | None = None, quantum: float | None = None,
                 tolerance: float = PHASE_TOLERANCE_SECONDS) -> None:
        self.bridge = bridge
        self.clock = clock
        self.quantum = quantum
        self.tolerance = tolerance
        self.proposals = self.follows = self.errors = 0
        self._seen: Clock | None = None  # the stream's clock at the last block
        self._asked: collections.deque[Clock] = collections.deque(maxlen=KEPT_ASKED)
        self._log = ThrottledLog(log)

    def __call__(self, session: Any, index: int) -> None:
        try:
            self._play(session, index)
        except Exception:  # never into the generation thread
            self.errors += 1
            self._log.warning("Link: following the session failed at a block", exc_info=True)

    def _play(self, session: Any, index: int) -> None:
        clock = session.clock if self.clock is None else self.clock()
        quantum = float(self.quantum or clock.beats_per_bar)
        self.bridge.quantum = quantum
        state = self.bridge.look()
        if state is None:
            return  # Link or the output not seen yet
        block_seconds = float(session.block_seconds)
        alone = state.peers == 0
        changed = clock != self._seen and clock not in self._asked
        if alone:  # Link follows the stream: its changes, and a timeline not the stream's (peers gone at theirs)
            lead = changed or not _on(clock, state.grid, state.offset, quantum, index, block_seconds, self.tolerance)
        else:  # the stream follows Link and proposes its own changes, but joining a session, the session's win
            lead = changed and self._seen is not None
        if lead:
            due = index * block_seconds + state.offset
            grid = proposed(clock, state.grid, state.offset, quantum, block_seconds, due, alone)
            self.bridge.propose(Proposal(grid, due, alone))
            state = attrs.evolve(state, grid=grid)
            self.proposals += 1
        self._seen = clock
        new = follow(clock, state.grid, state.offset, quantum, index, block_seconds, self.tolerance)
        if new is None and not getattr(session, "tempo_asked", True):
            new = clock  # with Link the model plays its tempo, asked or not
        if new is not None:
            session.set_tempo(new.bpm, beats_per_bar=new.beats_per_bar, origin=new.origin_block)
            self._asked.append(new)
            self._seen = new
            self.follows += 1


# --- what `lmdm live --link` starts ---------------------------------------------------------------------


def start_link(session: Any, *, clock: Callable[[], Clock] | None = None, heard: Callable[[], float] | None = None,
               quantum: float | None = None, say: Callable[[str], None] = print) -> Callable[[], None]:
    """Join (or start) the Link session on this network: the stream's tempo and bar lines follow it, its
    own tempo changes are proposed to it. ``clock``: the stream's clock as set (``lambda:
    interpreter.clock`` with the language; default the session's); ``heard()``: the stream time reaching
    the listener now (``engine_output``; default: the blocks made, paced by the wall clock); ``quantum``:
    Link's, in beats (default the clock's beats_per_bar). No [link] extra is one line through ``say``,
    and the music plays on. Returns the function that leaves the session."""
    if heard is None:
        heard = wall_heard(session)
    now = session.clock if clock is None else clock()
    bridge = LinkBridge(quantum or now.beats_per_bar)
    try:
        peer = LinkPeer(bridge, now.bpm, heard, say=say).start()
    except (LinkUnavailable, LinkError) as error:
        say(f"error: Link: {error}; playing on without it")
        return lambda: None
    sync = LinkSync(bridge, clock=clock, quantum=quantum)
    session.add_hook(sync)
    say(f"Link: on, quantum {num(bridge.quantum)} beats; 0 peers: playing at its own tempo ({num(now.bpm)} BPM) until one joins")

    def stop() -> None:
        session.remove_hook(sync)
        peer.stop()

    return stop


__all__ = [
    "EXTRA", "Grid", "LinkBridge", "LinkError", "LinkPeer", "LinkState", "LinkSync", "LinkUnavailable", "Proposal",
    "bar_line_near", "follow", "proposed", "start_link",
]
