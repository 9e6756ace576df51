"""Apply statements to a live session, now or on the musical grid.

``Interpreter.run(text)`` parses the text and applies each statement at once; quantised statements
(``at next bar``, ``in 2 blocks``, ``every 4 bars``) go on a schedule that a hook, registered on
the session, works through before each block on the generation thread. ``run`` never raises on
performer input: every problem becomes one message starting with ``error:``.

The scheduler isolates what it runs: an entry whose time cannot be worked out, or a sketch that
fails, is reported once and dropped; the other entries, and the sketches, go on.

This module holds the ``Interpreter`` itself (its state, the hook, the scheduler, ``tempo`` and
the statements in musical time) and ``HANDLERS``, the table from statement type to handler; the
other handlers are grouped by topic and take the interpreter as their first argument:

- ``handlers_session.py``: the session's knobs, ``prompt``, ``reset``, ``status``, ``jam``,
  ``record``, ``scene`` and ``play``;
- ``handlers_sound.py``: ``sketch`` and ``delay``, and the sketches sent before every block;
- ``handlers_midi.py``: the ``midi`` statements and MIDI's part of the hook;
- ``context.py``: the ``Context`` a statement is applied in, and ``Refused``.

Threads: one lock guards the interpreter's own state (tempo, schedule, scenes, sketches). The
session is never called while that lock is held, so a session that holds its own lock while
calling hooks cannot deadlock with a REPL thread calling ``run``.

"Now" is the first block whose hook has not run yet: a statement typed during block 7's
generation applies from block 8, and bar boundaries are counted from there.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from lmdm_dsl import handlers_midi, handlers_session, handlers_sound
from lmdm_dsl import midi as m
from lmdm_dsl import values as v
from lmdm_dsl.clock import Clock, after_at, block_at_or_after, boundary_at, checked_seconds, inside, nudge
from lmdm_dsl.context import Context, Refused, one_line
from lmdm_dsl.errors import DSLError
from lmdm_dsl.parser import parse_located

MAX_MESSAGES = 256  # messages from the generation thread kept until drained
FALLBACK_FRAME_RATE = 25.0  # latent frames per second of lmdm's models, for a session that does not tell its own


class Session(Protocol):
    """The part of ``lmdm.LiveSession`` the interpreter uses (``set_sketch(kind, frames)``,
    ``set_delay(DelaySpec | None)`` and ``set_jam(bool)`` only when the session supports sketches,
    the delay or jamming; ``frame_rate``, latent frames per second, is the shortest time a statement
    may give, and is needed for sketches). A session with ``set_tempo(bpm, at_block=...)`` (LiveSession)
    is told every ``tempo``, so its one clock, and a model with a clock input, keep the set's tempo.
    A session with ``landing(fraction)`` (LiveSession) gets a scheduled statement due inside a block
    in that block, inside ``landing``: heard from its bar line's sample."""

    block_seconds: float
    block_index: int
    frame_rate: float

    def set_prompt(self, prompt: str | Sequence[tuple[str, float]], *, over_blocks: int = 0) -> None: ...
    def set_steps(self, n: int) -> None: ...
    def set_cfg(self, scale: float) -> None: ...
    def set_seed(self, seed: int) -> None: ...
    def set_regime(self, name: str) -> None: ...
    def reset(self) -> None: ...
    def add_hook(self, fn: Callable[[Session, int], None]) -> None: ...
    def remove_hook(self, fn: Callable[[Session, int], None]) -> None: ...
    def supports(self, feature: str) -> bool: ...


class Recorder(Protocol):
    def start(self, path: str) -> None: ...
    def stop(self) -> None: ...


@attrs.define(eq=False)  # entries are told apart by identity
class _Scheduled:
    block: int  # fire before this block
    order: int  # scheduling order breaks ties
    body: tuple
    every: v.Span | None = None  # set for repeating statements
    last_fired: int | None = None
    tag: str | None = None
    at: float | None = None  # where it is due, in blocks (between two block starts: a landing session fires it in the block before)

    def place(self, at: float) -> None:
        """Due at ``at`` (in blocks): fired before the first block starting there or after."""
        self.at, self.block = at, block_at_or_after(at)

    def fires_in(self, landing: bool) -> int:
        """The block it fires in: its block, or with a landing session and a time inside the block
        before, that one."""
        early = landing and self.at is not None and inside(self.at, self.block - 1) is not None
        return self.block - 1 if early else self.block


class Interpreter:
    def __init__(self, session: Session, *, recorder: Recorder | None = None, beats_per_bar: int = 4):
        lo, hi = v.METER_RANGE
        if isinstance(beats_per_bar, bool) or not isinstance(beats_per_bar, int) or not lo <= beats_per_bar <= hi:
            raise ValueError(f"beats_per_bar must be a whole number from {lo} to {hi}, got {beats_per_bar!r}")
        self.session = session
        self.recorder = recorder
        self._lock = threading.Lock()
        self._clock = Clock(beats_per_bar=beats_per_bar)
        # the session's clock as last seen (_follow_session_clock); a session with one sets ours
        theirs = getattr(session, "clock", None)
        self._session_clock: Clock | None = theirs if isinstance(theirs, Clock) else None
        if self._session_clock is not None:
            self._clock = self._session_clock
        self._schedule: list[_Scheduled] = []
        self._order = itertools.count()
        self._scenes: dict[str, tuple] = {}
        self._sketches: dict[str, handlers_sound._Active] = {}
        self._delay: v.Delay | None = None
        self._hooked: int | None = None  # the last block whose hook ran
        self._outbox: collections.deque[str] = collections.deque(maxlen=MAX_MESSAGES)
        # MIDI (lmdm_dsl/midi.py): a MIDI thread fills the bridge, the hook turns it into knobs (handlers_midi.py)
        self.midi = m.MidiBridge()
        self._knobs: dict[tuple[int | None, int], handlers_midi._Knob] = {}
        self._midi_notes: v.MidiNotes | None = None
        self._notes_sent = False  # the keyboard's melody is the session's melody sketch
        self._midi_bodies: dict[str, tuple] = {}  # "start" / "stop" -> body
        session.add_hook(self._on_block)

    # --- public ---------------------------------------------------------------------------------

    def run(self, text: str, *, tag: str | None = None) -> list[str]:
        """Parse and apply ``text``; the messages it produced, errors starting with ``error:``.

        A syntax or value error anywhere rejects the whole text (one error, nothing applied).
        Otherwise each statement is applied in turn and a statement that fails yields one error.
        With a ``tag`` (``watch_file`` passes the path) the repeating statements of the previous
        run with that tag are dropped first, so re-evaluating a file replaces its ``every``s.
        """
        try:
            located = parse_located(text)
        except DSLError as error:
            return [f"error: {error}"]
        except Exception as error:  # a parser bug must not stop the music either
            return [f"error: {type(error).__name__}: {one_line(error)}"]
        if tag is not None:
            with self._lock:
                self._schedule = [e for e in self._schedule if e.every is None or e.tag != tag]
        context = Context(now=self._now(), tag=tag)
        several_lines = "\n" in text.strip()
        messages = []
        for item in located:
            where = f"line {item.line}: " if several_lines else ""
            messages += self._apply(item.statement, context, where)
        return messages

    def messages(self) -> list[str]:
        """Drain what statements fired on the generation thread said (and their errors)."""
        drained = []
        while True:
            try:
                drained.append(self._outbox.popleft())
            except IndexError:
                return drained

    def close(self) -> None:
        """Stop listening to the session's blocks."""
        self.session.remove_hook(self._on_block)

    @property
    def clock(self) -> Clock:
        with self._lock:
            return self._clock

    @property
    def scenes(self) -> dict[str, tuple]:
        with self._lock:
            return dict(self._scenes)

    @property
    def scheduled(self) -> list[tuple[int, tuple]]:
        """(block, body) of everything queued or repeating, soonest first."""
        with self._lock:
            return [(e.block, e.body) for e in sorted(self._schedule, key=lambda e: (e.block, e.order))]

    # --- the hook: runs on the generation thread before each block ----------------------------

    def _on_block(self, session: Session, index: int) -> None:
        """Follow the session's clock, fire what is due, send the sketches; never raises. Each part
        fails on its own, and so does each entry and each sketch (``_fire``, ``handlers_sound.send_sketches``)."""
        try:
            block_seconds = float(session.block_seconds)
            with self._lock:
                if self._hooked is not None and index < self._hooked:  # the stream restarted its count
                    self._shift(index - (self._hooked + 1))
                self._hooked = index
                waiting = list(self._schedule)
        except Exception as error:  # never into the generation thread
            self._tell(index, f"error: {type(error).__name__}: {one_line(error)}")
            return
        try:
            self._follow_session_clock(session, index)
        except Exception as error:
            self._tell(index, f"error: following the session's tempo: {type(error).__name__}: {one_line(error)}")
        try:
            midi = self.midi.take()
            handlers_midi.follow_midi_clock(self, midi, index)  # before the schedule, which then fires on the new grid
        except Exception as error:
            midi = None
            self._tell(index, f"error: MIDI: {type(error).__name__}: {one_line(error)}")
        self._fire(waiting, index, block_seconds)
        handlers_sound.send_sketches(self, index, block_seconds)
        if midi is not None:  # after the sketches: a knob or the keys played win over a typed sketch
            handlers_midi.turn_knobs(self, midi, index, block_seconds)
            handlers_midi.play_keys(self, midi, index, block_seconds)

    def _fire(self, waiting: list[_Scheduled], index: int, block_seconds: float) -> None:
        """Run the entries of ``waiting`` (those scheduled before this block) that are due at ``index``.

        Soonest first, in rounds until none is due: an entry that a statement fired here moves
        onto this block (a ``tempo`` restarting the grid here) fires here too, not a block late.
        Each entry fires at most once per block. An entry that fails (its next time cannot be
        worked out, or running it raises) is reported once and dropped; the others go on.
        """
        fired: set[int] = set()
        landing = self._landing()
        while True:
            runs, failed = [], []
            with self._lock:
                live = {id(e) for e in self._schedule}
                due = sorted(
                    (e for e in waiting if id(e) in live and id(e) not in fired and e.fires_in(landing is not None) <= index),
                    key=lambda e: (e.block, e.order),
                )
                for entry in due:
                    fired.add(id(entry))
                    at = entry.at
                    if entry.every is None:
                        self._schedule.remove(entry)
                        runs.append((entry, at))
                        continue
                    # the next boundary after this block's start, or after this one when it landed inside the
                    # block (by more than a frame: a grid nudged by less, as Link's, moves the same bar a little)
                    landed = at is not None and at > index
                    after_ = at + self._frame_seconds() / block_seconds if landed else index
                    try:
                        entry.place(boundary_at(self._clock, entry.every, after_, block_seconds, strictly_after=True))
                    except Exception as error:
                        self._schedule.remove(entry)
                        failed.append((entry, error))
                        continue
                    entry.last_fired = index
                    runs.append((entry, at))
            if not due:
                return
            for entry, error in failed:
                self._tell(index, _dropped(entry, error))
            for entry, at in runs:
                fraction = None if landing is None or at is None else inside(at, index)
                try:
                    with contextlib.nullcontext() if fraction is None else landing(fraction):
                        for statement in entry.body:
                            for message in self._apply(statement, Context(now=index, tag=entry.tag, at=None if fraction is None else at)):
                                self._tell(index, message)
                except Exception as error:  # _apply does not raise; this is the last guard
                    with self._lock:
                        if entry in self._schedule:
                            self._schedule.remove(entry)
                    self._tell(index, _dropped(entry, error))

    def _landing(self) -> Callable[[float], contextlib.AbstractContextManager[None]] | None:
        """The session's ``landing`` (LiveSession: a change heard from a sample inside a block), if it has one."""
        landing = getattr(self.session, "landing", None)
        return landing if callable(landing) else None

    def _tell(self, index: int, message: str) -> None:
        """Keep a message from the generation thread for ``messages()``, marked with its block."""
        if message.startswith("error: "):
            self._outbox.append(f"error: [block {index}] {message[len('error: '):]}")
        else:
            self._outbox.append(f"[block {index}] {message}")

    def _shift(self, delta: int) -> None:
        """Move every block number the interpreter holds by ``delta`` (lock held)."""
        self._clock = attrs.evolve(self._clock, origin_block=self._clock.origin_block + delta)
        for entry in self._schedule:
            entry.block += delta
            if entry.last_fired is not None:
                entry.last_fired += delta
        self._sketches = {k: attrs.evolve(a, start_block=a.start_block + delta) for k, a in self._sketches.items()}

    # --- applying one statement ----------------------------------------------------------------

    def _now(self) -> int:
        index = self.session.block_index
        with self._lock:
            return index if self._hooked is None else self._hooked + 1

    def _apply(self, statement, context: Context, where: str = "") -> list[str]:
        try:
            result = HANDLERS[type(statement)](self, statement, context)
        except (Refused, ValueError) as error:
            return [f"error: {where}{one_line(error)}"]
        except Exception as error:
            return [f"error: {where}{type(error).__name__}: {one_line(error)}"]
        return result if isinstance(result, list) else [result]

    def _require(self, feature: str) -> None:
        if not self.session.supports(feature):
            raise Refused(f"{feature} is not available in this model")

    def _frame_seconds(self) -> float:
        """One latent frame of the session, in seconds: the shortest time a statement may give."""
        rate = getattr(self.session, "frame_rate", None)
        return 1.0 / float(rate) if rate else 1.0 / FALLBACK_FRAME_RATE

    def _seconds(self, span: v.Span, clock: Clock | None = None) -> float:
        """``span`` in seconds at the current (or ``clock``'s) tempo; ValueError if shorter than a frame."""
        return checked_seconds(self.clock if clock is None else clock, span, self.session.block_seconds, self._frame_seconds())

    def _tempo(self, s: v.Tempo, c: Context) -> list[str]:
        clock, problems = self._retime(s.bpm, c.now)
        set_tempo = getattr(self.session, "set_tempo", None)
        if callable(set_tempo):  # the session's clock: bar 1 at the same block as ours
            set_tempo(s.bpm, beats_per_bar=clock.beats_per_bar, at_block=c.now)
        return [f"tempo {v.num(s.bpm)} BPM; bar 1 starts at block {c.now}", *problems]

    def _retime(self, bpm: float, origin_block: float) -> tuple[Clock, list[str]]:
        """A new tempo with bar 1 at ``origin_block`` (a fraction of a block allowed: a bar 1 already
        passed fires at once): re-arm repeating entries, keep a delay in bars or beats in time.

        The tempo always changes. An entry that cannot be re-armed is dropped, and a delay that
        cannot follow (too long or too short at the new tempo) keeps its time in blocks; each
        gives one ``error:`` message, returned.
        """
        block_seconds = self.session.block_seconds
        landing = self._landing() is not None
        problems: list[str] = []
        with self._lock:
            self._clock = attrs.evolve(self._clock, bpm=bpm, origin_block=origin_block)
            for entry in list(self._schedule):
                if entry.every is None or entry.every.unit == "block":
                    continue
                try:
                    entry.place(boundary_at(self._clock, entry.every, origin_block, block_seconds))
                    if entry.last_fired is not None and entry.fires_in(landing) <= entry.last_fired:  # not twice in a block
                        entry.place(boundary_at(self._clock, entry.every, entry.last_fired + landing, block_seconds, strictly_after=not landing))
                except Exception as error:
                    self._schedule.remove(entry)
                    problems.append(_dropped(entry, error))
            delay, clock = self._delay, self._clock
        if delay is not None and delay.time.unit != "block":
            try:
                self.session.set_delay(handlers_sound.delay_spec(delay, clock, block_seconds, self._frame_seconds()))
            except (Refused, ValueError) as error:
                problems.append(f"error: the delay ({delay.time.to_source()}) keeps its time: {one_line(error)}")
        return clock, problems

    def _follow_session_clock(self, session: Session, index: int) -> None:
        """Adopt a tempo set on the session itself (a prompt naming one, ``set_tempo`` from Python, Ableton
        Link): one clock. A grid only nudged (moved by less than a latent frame: Link following the
        audio device's drift) is taken quietly, and what is scheduled on it stays where it is."""
        theirs = getattr(session, "clock", None)
        if not isinstance(theirs, Clock) or theirs == self._session_clock:
            return  # unchanged since the last block (our own `tempo` may still be queued there)
        self._session_clock = theirs
        with self._lock:
            ours = self._clock
        if theirs.bpm == ours.bpm and theirs.origin_block == ours.origin_block:
            return
        if nudge(ours, theirs, float(session.block_seconds), self._frame_seconds()) is not None:
            with self._lock:
                self._clock = attrs.evolve(self._clock, origin_block=theirs.origin_block)
            return
        _, problems = self._retime(theirs.bpm, theirs.origin_block)
        self._tell(index, f"tempo {v.num(theirs.bpm)} BPM (from the session); bar 1 at block {v.num(round(theirs.origin_block, 3))}")
        for message in problems:
            self._tell(index, message)

    # --- statements in musical time ------------------------------------------------------------

    def _at_next(self, s: v.AtNext, c: Context) -> str:
        self._seconds(s.span)
        return self._enqueue_at(boundary_at(self.clock, s.span, c.now, self.session.block_seconds), s.body, c)

    def _after(self, s: v.After, c: Context) -> str:
        self._seconds(s.span)
        return self._enqueue_at(after_at(self.clock, s.span, c.now, self.session.block_seconds), s.body, c)

    def _enqueue_at(self, at: float, body: tuple, c: Context) -> str:
        entry = _Scheduled(0, 0, body, tag=c.tag)
        entry.place(at)
        self._enqueue(entry)
        return f"at block {self._shown(entry)}: {v.body_source(body)}"

    def _shown(self, entry: _Scheduled) -> str:
        """The block an entry fires before; with a session that lands changes inside a block, and a
        time between two block starts, the block it lands in and how far in ("6 + 0.25")."""
        fires = entry.fires_in(self._landing() is not None)
        return str(entry.block) if fires == entry.block else f"{fires} + {v.num(round(entry.at - fires, 3))}"

    def _every(self, s: v.Every, c: Context) -> str:
        with self._lock:
            if any(e.every == s.span and e.body == s.body for e in self._schedule):
                return f"already running: {s.to_source()}"
        self._seconds(s.span)
        entry = _Scheduled(0, 0, s.body, every=s.span, tag=c.tag)
        entry.place(boundary_at(self.clock, s.span, c.now, self.session.block_seconds))
        self._enqueue(entry)
        return f"{s.to_source()} (first at block {self._shown(entry)})"

    def _enqueue(self, entry: _Scheduled) -> None:
        with self._lock:
            if len(self._schedule) >= v.MAX_SCHEDULED:
                raise Refused(f"too many scheduled statements (at most {v.MAX_SCHEDULED}); use cancel")
            entry.order = next(self._order)
            self._schedule.append(entry)

    def _cancel(self, s: v.Cancel, c: Context) -> str:
        with self._lock:
            count, self._schedule = len(self._schedule), []
        return f"cancelled {count} scheduled statement{'' if count == 1 else 's'}"


# the table from statement type to handler: each is called with the interpreter, the statement and its Context
HANDLERS: dict[type, Callable[..., str | list[str]]] = {
    v.Tempo: Interpreter._tempo, v.Cancel: Interpreter._cancel,
    v.AtNext: Interpreter._at_next, v.After: Interpreter._after, v.Every: Interpreter._every,
    v.Prompt: handlers_session.prompt, v.Steps: handlers_session.steps, v.Cfg: handlers_session.cfg,
    v.Seed: handlers_session.seed, v.Regime: handlers_session.regime, v.Reset: handlers_session.reset,
    v.Status: handlers_session.status, v.Jam: handlers_session.jam,
    v.RecordStart: handlers_session.record_start, v.RecordStop: handlers_session.record_stop,
    v.SceneDef: handlers_session.scene, v.Play: handlers_session.play,
    v.SketchPattern: handlers_sound.sketch, v.SketchRamp: handlers_sound.sketch, v.SketchOff: handlers_sound.sketch_off,
    v.Delay: handlers_sound.delay_on, v.DelayOff: handlers_sound.delay_off,
    v.MidiMap: handlers_midi.midi_map, v.MidiUnmap: handlers_midi.midi_unmap, v.MidiNotes: handlers_midi.midi_notes_on,
    v.MidiClock: handlers_midi.midi_clock, v.MidiTransport: handlers_midi.midi_transport, v.MidiOff: handlers_midi.midi_off,
}


def _dropped(entry: _Scheduled, error: BaseException) -> str:
    """The one message for a scheduled entry that failed and is dropped."""
    try:
        what = v.Every(entry.every, entry.body).to_source() if entry.every is not None else v.body_source(entry.body)
    except Exception:  # the message must not fail too
        what = "a scheduled statement"
    return f"error: {what}: {type(error).__name__}: {one_line(error)}; dropped from the schedule"

