"""Apply statements to a live session, now or on the musical grid.

``Interpreter.run(text)`` parses the text and applies each statement at once; quantised statements
(``at next bar``, ``in 2 blocks``, ``every 4 bars``) go on a schedule that a hook, registered on
the session, works through before each block on the generation thread. ``run`` never raises on
performer input: every problem becomes one message starting with ``error:``.

The scheduler isolates what it runs: an entry whose time cannot be worked out, or a sketch that
fails, is reported once and dropped; the other entries, and the sketches, go on.

Threads: one lock guards the interpreter's own state (tempo, schedule, scenes, sketches). The
session is never called while that lock is held, so a session that holds its own lock while
calling hooks cannot deadlock with a REPL thread calling ``run``.

"Now" is the first block whose hook has not run yet: a statement typed during block 7's
generation applies from block 8, and bar boundaries are counted from there.
"""

from __future__ import annotations

import collections
import difflib
import itertools
import os
import threading
from typing import Callable, Protocol, Sequence

import attrs

from lmdm_dsl.clock import (
    EPS, Clock, after, checked_seconds, first_block_at_or_after, next_boundary, nudge, pattern_frames, ramp_frames,
)
from lmdm_dsl import midi as m
from lmdm_dsl import values as v
from lmdm_dsl.errors import DSLError
from lmdm_dsl.mini import KINDS
from lmdm_dsl.parser import parse_located

MAX_MESSAGES = 256  # messages from the generation thread kept until drained
FALLBACK_FRAME_RATE = 25.0  # latent frames per second of lmdm's models, for a session that does not tell its own


class Session(Protocol):
    """The part of ``lmdm.LiveSession`` the interpreter uses (``set_sketch(kind, frames)``,
    ``set_delay(DelaySpec | None)`` and ``set_jam(bool)`` only when the session supports sketches,
    the delay or jamming; ``frame_rate``, latent frames per second, is the shortest time a statement
    may give, and is needed for sketches). A session with ``set_tempo(bpm, at_block=...)`` (LiveSession)
    is told every ``tempo``, so its one clock, and a model with a clock input, keep the set's tempo."""

    block_seconds: float
    block_index: int
    frame_rate: float

    def set_prompt(self, prompt: str | Sequence[tuple[str, float]], *, over_blocks: int = 0) -> None: ...
    def set_steps(self, n: int) -> None: ...
    def set_cfg(self, scale: float) -> None: ...
    def set_seed(self, seed: int) -> None: ...
    def set_regime(self, name: str) -> None: ...
    def reset(self) -> None: ...
    def add_hook(self, fn: Callable[["Session", int], None]) -> None: ...
    def remove_hook(self, fn: Callable[["Session", int], None]) -> None: ...
    def supports(self, feature: str) -> bool: ...


class Recorder(Protocol):
    def start(self, path: str) -> None: ...
    def stop(self) -> None: ...


class Refused(Exception):
    """A statement that parsed but cannot be applied here; becomes one ``error:`` message."""


@attrs.define(eq=False)  # entries are told apart by identity
class _Scheduled:
    block: int  # fire before this block
    order: int  # scheduling order breaks ties
    body: tuple
    every: v.Span | None = None  # set for repeating statements
    last_fired: int | None = None
    tag: str | None = None


@attrs.frozen
class _Active:
    """A sketch in force: rendered afresh for every block."""

    sketch: v.SketchPattern | v.SketchRamp
    start_block: int
    ramp_seconds: float = 0.0


@attrs.define(eq=False)
class _Knob:
    """A controller mapping in force, and where its knob stands (changed on the generation thread only)."""

    map: v.MidiMap
    armed: int  # the controller's change number when mapped: it turns the knob from the next change on
    pos: float | None = None  # the smoothed position, 0..1 (None: the controller has not moved yet)
    applied: float | None = None  # the position the session was last given
    level: float | None = None  # a loudness knob: the level its last frames ended at
    ramped: bool = False  # a loudness knob's last frames were a ramp (so the next block sends the level flat)


@attrs.define
class _Budget:
    """What is left of the statements one ``play`` may run (``MAX_PLAYED``), its scenes' plays included."""

    left: int = v.MAX_PLAYED
    told: bool = False  # the error has been given


@attrs.frozen
class _Context:
    now: int  # the block the statement applies to
    tag: str | None = None
    playing: tuple[str, ...] = ()  # scenes being played, outermost first
    budget: _Budget | None = None  # shared by a `play` and the plays inside it


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
        self._sketches: dict[str, _Active] = {}
        self._delay: v.Delay | None = None
        self._hooked: int | None = None  # the last block whose hook ran
        self._outbox: collections.deque[str] = collections.deque(maxlen=MAX_MESSAGES)
        # MIDI (lmdm_dsl/midi.py): a MIDI thread fills the bridge, the hook turns it into knobs
        self.midi = m.MidiBridge()
        self._knobs: dict[tuple[int | None, int], _Knob] = {}
        self._midi_notes: v.MidiNotes | None = None
        self._notes_sent = False  # the keyboard's melody is the session's melody sketch
        self._midi_bodies: dict[str, tuple] = {}  # "start" / "stop" -> body
        self._handlers: dict[type, Callable] = {
            v.Tempo: self._tempo, v.Prompt: self._prompt, v.Steps: self._steps, v.Cfg: self._cfg,
            v.Seed: self._seed, v.Regime: self._regime, v.Reset: self._reset, v.Status: self._status,
            v.Cancel: self._cancel, v.RecordStart: self._record_start, v.RecordStop: self._record_stop,
            v.SketchPattern: self._sketch, v.SketchRamp: self._sketch, v.SketchOff: self._sketch_off,
            v.Delay: self._delay_on, v.DelayOff: self._delay_off, v.Jam: self._jam, v.AtNext: self._at_next,
            v.After: self._after, v.Every: self._every, v.SceneDef: self._scene, v.Play: self._play,
            v.MidiMap: self._midi_map, v.MidiUnmap: self._midi_unmap, v.MidiNotes: self._midi_notes_on,
            v.MidiClock: self._midi_clock, v.MidiTransport: self._midi_transport, v.MidiOff: self._midi_off,
        }
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
            return [f"error: {type(error).__name__}: {_one_line(error)}"]
        if tag is not None:
            with self._lock:
                self._schedule = [e for e in self._schedule if e.every is None or e.tag != tag]
        context = _Context(now=self._now(), tag=tag)
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
        fails on its own, and so does each entry and each sketch (``_fire``, ``_send_sketches``)."""
        try:
            block_seconds = float(session.block_seconds)
            with self._lock:
                if self._hooked is not None and index < self._hooked:  # the stream restarted its count
                    self._shift(index - (self._hooked + 1))
                self._hooked = index
                waiting = list(self._schedule)
        except Exception as error:  # never into the generation thread
            self._tell(index, f"error: {type(error).__name__}: {_one_line(error)}")
            return
        try:
            self._follow_session_clock(session, index)
        except Exception as error:
            self._tell(index, f"error: following the session's tempo: {type(error).__name__}: {_one_line(error)}")
        try:
            midi = self.midi.take()
            self._follow_midi_clock(midi, index)  # before the schedule, which then fires on the new grid
        except Exception as error:
            midi = None
            self._tell(index, f"error: MIDI: {type(error).__name__}: {_one_line(error)}")
        self._fire(waiting, index, block_seconds)
        self._send_sketches(index, block_seconds)
        if midi is not None:  # after the sketches: a knob or the keys played win over a typed sketch
            self._turn_knobs(midi, index, block_seconds)
            self._play_keys(midi, index, block_seconds)

    def _fire(self, waiting: list[_Scheduled], index: int, block_seconds: float) -> None:
        """Run the entries of ``waiting`` (those scheduled before this block) that are due at ``index``.

        Soonest first, in rounds until none is due: an entry that a statement fired here moves
        onto this block (a ``tempo`` restarting the grid here) fires here too, not a block late.
        Each entry fires at most once per block. An entry that fails (its next time cannot be
        worked out, or running it raises) is reported once and dropped; the others go on.
        """
        fired: set[int] = set()
        while True:
            runs, failed = [], []
            with self._lock:
                live = {id(e) for e in self._schedule}
                due = sorted(
                    (e for e in waiting if id(e) in live and id(e) not in fired and e.block <= index),
                    key=lambda e: (e.block, e.order),
                )
                for entry in due:
                    fired.add(id(entry))
                    if entry.every is None:
                        self._schedule.remove(entry)
                        runs.append(entry)
                        continue
                    try:
                        entry.block = next_boundary(self._clock, entry.every, index, block_seconds, strictly_after=True)
                    except Exception as error:
                        self._schedule.remove(entry)
                        failed.append((entry, error))
                        continue
                    entry.last_fired = index
                    runs.append(entry)
            if not due:
                return
            for entry, error in failed:
                self._tell(index, _dropped(entry, error))
            for entry in runs:
                try:
                    for statement in entry.body:
                        for message in self._apply(statement, _Context(now=index, tag=entry.tag)):
                            self._tell(index, message)
                except Exception as error:  # _apply does not raise; this is the last guard
                    with self._lock:
                        if entry in self._schedule:
                            self._schedule.remove(entry)
                    self._tell(index, _dropped(entry, error))

    def _tell(self, index: int, message: str) -> None:
        """Keep a message from the generation thread for ``messages()``, marked with its block."""
        if message.startswith("error: "):
            self._outbox.append(f"error: [block {index}] {message[len('error: '):]}")
        else:
            self._outbox.append(f"[block {index}] {message}")

    def _send_sketches(self, index: int, block_seconds: float) -> None:
        """Each sketch in force, rendered for this block; one that fails is reported once and turned off."""
        with self._lock:
            active, clock = dict(self._sketches), self._clock
        if not active:
            return
        try:
            frame_rate = float(self.session.frame_rate)
        except Exception as error:
            self._tell(index, f"error: sketches: {type(error).__name__}: {_one_line(error)}")
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
                self.session.set_sketch(kind, frames)
            except Exception as error:
                with self._lock:
                    if self._sketches.get(kind) is entry:
                        del self._sketches[kind]
                self._tell(index, f"error: sketch {kind}: {_one_line(error)}; that sketch is off")
                try:
                    self.session.set_sketch(kind, None)
                except Exception:
                    pass  # already said; the session keeps no frames from this block

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

    def _apply(self, statement, context: _Context, where: str = "") -> list[str]:
        try:
            result = self._handlers[type(statement)](statement, context)
        except (Refused, ValueError) as error:
            return [f"error: {where}{_one_line(error)}"]
        except Exception as error:
            return [f"error: {where}{type(error).__name__}: {_one_line(error)}"]
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

    def _tempo(self, s: v.Tempo, c: _Context) -> list[str]:
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
        problems: list[str] = []
        with self._lock:
            self._clock = attrs.evolve(self._clock, bpm=bpm, origin_block=origin_block)
            for entry in list(self._schedule):
                if entry.every is None or entry.every.unit == "block":
                    continue
                try:
                    entry.block = next_boundary(self._clock, entry.every, origin_block, block_seconds)
                    if entry.last_fired is not None and entry.block <= entry.last_fired:
                        entry.block = next_boundary(
                            self._clock, entry.every, entry.last_fired, block_seconds, strictly_after=True
                        )
                except Exception as error:
                    self._schedule.remove(entry)
                    problems.append(_dropped(entry, error))
            delay, clock = self._delay, self._clock
        if delay is not None and delay.time.unit != "block":
            try:
                self.session.set_delay(_delay_spec(delay, clock, block_seconds, self._frame_seconds()))
            except (Refused, ValueError) as error:
                problems.append(f"error: the delay ({delay.time.to_source()}) keeps its time: {_one_line(error)}")
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

    def _prompt(self, s: v.Prompt, c: _Context) -> str:
        over = 0 if s.over is None else first_block_at_or_after(self._seconds(s.over), self.session.block_seconds)
        self.session.set_prompt(s.session_prompt, over_blocks=over)
        return s.to_source() + (f" ({over} blocks)" if s.over is not None else "")

    def _steps(self, s: v.Steps, c: _Context) -> str:
        self.session.set_steps(s.n)
        return s.to_source()

    def _cfg(self, s: v.Cfg, c: _Context) -> str:
        self.session.set_cfg(s.scale)
        return s.to_source()

    def _seed(self, s: v.Seed, c: _Context) -> str:
        self.session.set_seed(s.seed)
        return s.to_source()

    def _regime(self, s: v.Regime, c: _Context) -> str:
        self.session.set_regime(s.name)
        return s.to_source()

    def _reset(self, s: v.Reset, c: _Context) -> str:
        self.session.reset()
        return "reset: history and KV cache cleared"

    def _status(self, s: v.Status, c: _Context) -> str:
        stats = self.session.stats
        with self._lock:
            clock, queued, scenes = self._clock, len(self._schedule), sorted(self._scenes)
            sketches, delay = sorted(self._sketches), self._delay
        bar = int(clock.cycle_at(c.now, self.session.block_seconds) + EPS) + 1
        parts = [
            f"block {stats.blocks}",
            f"rtf {stats.real_time_factor:.2f}",
            f"prompt {v.quote(str(stats.prompt))}",
            f"tempo {v.num(clock.bpm)} BPM (bar {bar})",
            f"regime {stats.regime}",
            f"steps {stats.steps}",
            f"cfg {v.num(stats.cfg)}",
            f"queued {queued}",
        ]
        if sketches:
            parts.append("sketch " + ", ".join(sketches))
        if delay is not None:
            parts.append(delay.to_source())
        if scenes:
            parts.append("scenes " + ", ".join(scenes))
        midi = self._midi_status()
        if midi:
            parts.append("midi " + midi)
        return "status: " + " | ".join(parts)

    def _cancel(self, s: v.Cancel, c: _Context) -> str:
        with self._lock:
            count, self._schedule = len(self._schedule), []
        return f"cancelled {count} scheduled statement{'' if count == 1 else 's'}"

    def _record_start(self, s: v.RecordStart, c: _Context) -> str:
        if self.recorder is None:
            raise Refused("recording is not available here")
        if os.path.exists(s.path):
            raise Refused(f"{s.path} already exists; record to a new file")
        self.recorder.start(s.path)
        return f"recording to {s.path}"

    def _record_stop(self, s: v.RecordStop, c: _Context) -> str:
        if self.recorder is None:
            raise Refused("recording is not available here")
        self.recorder.stop()
        return "recording stopped"

    def _sketch(self, s: v.SketchPattern | v.SketchRamp, c: _Context) -> str:
        self._require("sketch")
        if not getattr(self.session, "frame_rate", None):
            raise Refused("sketch needs the session's frame_rate")
        ramp = self._seconds(s.over) if isinstance(s, v.SketchRamp) else 0.0
        with self._lock:
            self._sketches[s.kind] = _Active(s, c.now, ramp)
        if isinstance(s, v.SketchRamp):
            return f"{s.to_source()} (from block {c.now})"
        cycles = s.pattern.period
        return f"{s.to_source()} (repeats every {cycles} bar{'' if cycles == 1 else 's'})"

    def _sketch_off(self, s: v.SketchOff, c: _Context) -> str:
        self._require("sketch")
        kinds = KINDS if s.kind is None else (s.kind,)
        with self._lock:
            for kind in kinds:
                self._sketches.pop(kind, None)
        for kind in kinds:
            self.session.set_sketch(kind, None)
        return s.to_source()

    def _delay_on(self, s: v.Delay, c: _Context) -> str:
        """Turn the delay on, or change the given fields of the one that is on (``delay mix 0.2``)."""
        self._require("delay")
        block_seconds = self.session.block_seconds
        with self._lock:
            delay, clock = s.updating(self._delay), self._clock
        spec = _delay_spec(delay, clock, block_seconds, self._frame_seconds())
        self.session.set_delay(spec)
        with self._lock:
            self._delay = delay
        return f"{delay.to_source()} ({v.num(round(spec.time_blocks, 3))} blocks)"

    def _delay_off(self, s: v.DelayOff, c: _Context) -> str:
        self._require("delay")
        self.session.set_delay(None)
        with self._lock:
            self._delay = None
        return "delay off"

    def _jam(self, s: v.Jam, c: _Context) -> str:
        follow = s.follow or getattr(self.session.stats, "jam_follow", "") or "listen"
        self._require("jam" if follow == "listen" else "sketch")
        self.session.set_jam(s.on, follow=s.follow)
        if not s.on:
            return s.to_source() + " (the input is not given to the model)"
        return s.to_source() + {"key": " (the model follows the input's beat and notes)", "beat": " (the model follows the input's beat)",
                                "listen": " (the model hears the input)"}.get(follow, "")

    def _at_next(self, s: v.AtNext, c: _Context) -> str:
        self._seconds(s.span)
        block = next_boundary(self.clock, s.span, c.now, self.session.block_seconds)
        self._enqueue(_Scheduled(block, 0, s.body, tag=c.tag))
        return f"at block {block}: {v.body_source(s.body)}"

    def _after(self, s: v.After, c: _Context) -> str:
        self._seconds(s.span)
        block = after(self.clock, s.span, c.now, self.session.block_seconds)
        self._enqueue(_Scheduled(block, 0, s.body, tag=c.tag))
        return f"at block {block}: {v.body_source(s.body)}"

    def _every(self, s: v.Every, c: _Context) -> str:
        with self._lock:
            if any(e.every == s.span and e.body == s.body for e in self._schedule):
                return f"already running: {s.to_source()}"
        self._seconds(s.span)
        block = next_boundary(self.clock, s.span, c.now, self.session.block_seconds)
        self._enqueue(_Scheduled(block, 0, s.body, every=s.span, tag=c.tag))
        return f"{s.to_source()} (first at block {block})"

    def _enqueue(self, entry: _Scheduled) -> None:
        with self._lock:
            if len(self._schedule) >= v.MAX_SCHEDULED:
                raise Refused(f"too many scheduled statements (at most {v.MAX_SCHEDULED}); use cancel")
            entry.order = next(self._order)
            self._schedule.append(entry)

    def _scene(self, s: v.SceneDef, c: _Context) -> str:
        with self._lock:
            if s.name not in self._scenes and len(self._scenes) >= v.MAX_SCENES:
                raise Refused(f"too many scenes (at most {v.MAX_SCENES}); define one again to replace it")
            self._scenes[s.name] = s.body
        count = len(s.body)
        return f"scene {s.name} defined ({count} statement{'' if count == 1 else 's'})"

    def _play(self, s: v.Play, c: _Context) -> list[str]:
        with self._lock:
            body, known = self._scenes.get(s.name), sorted(self._scenes)
        if body is None:
            close = difflib.get_close_matches(s.name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise Refused(f"no scene named '{s.name}'{hint}")
        if s.name in c.playing:
            raise Refused(f"scene '{s.name}' plays itself (via {' -> '.join(c.playing + (s.name,))})")
        if len(c.playing) >= v.MAX_PLAY_DEPTH:
            raise Refused(f"scenes play scenes at most {v.MAX_PLAY_DEPTH} deep")
        budget = _Budget() if c.budget is None else c.budget
        inner = attrs.evolve(c, playing=c.playing + (s.name,), budget=budget)
        messages = [f"play {s.name}"]
        for statement in body:
            if budget.left <= 0:
                if not budget.told:
                    budget.told = True
                    messages.append(
                        f"error: a play runs at most {v.MAX_PLAYED} statements, its scenes' included; "
                        f"the rest of scene '{s.name}' is skipped"
                    )
                break
            budget.left -= 1
            messages += self._apply(statement, inner)
        return messages

    # --- MIDI: the statements -------------------------------------------------------------------

    def _midi_map(self, s: v.MidiMap, c: _Context) -> str:
        """Map a controller to a knob. The same mapping again (a set file re-run) keeps the knob where
        it stands; a new one turns the knob from the controller's next move on."""
        if s.knob.startswith("delay "):
            self._require("delay")
        if s.knob == "sketch loudness":
            self._require("sketch")
            if not getattr(self.session, "frame_rate", None):
                raise Refused("sketch needs the session's frame_rate")
        self._seconds(s.smooth or v.MIDI_SMOOTH)
        armed = self.midi.last_change(s.key)
        with self._lock:
            old = self._knobs.get(s.key)
            if old is not None and old.map == s:
                return f"{s.to_source()} (already mapped)"
            if old is None and len(self._knobs) >= v.MAX_MIDI_MAPS:
                raise Refused(f"too many MIDI mappings (at most {v.MAX_MIDI_MAPS}); use midi cc N off")
            self._knobs[s.key] = _Knob(s, armed)
        replaced = f" (was {old.map.to_source()})" if old is not None else ""
        return f"{s.to_source()}{replaced}; it turns when the controller moves"

    def _midi_unmap(self, s: v.MidiUnmap, c: _Context) -> str:
        with self._lock:
            gone = self._knobs.pop((s.channel, s.control), None)
        return s.to_source() + ("" if gone is not None else " (it was not mapped)")

    def _midi_notes_on(self, s: v.MidiNotes, c: _Context) -> str:
        if s.on:
            self._require("sketch")
            if not getattr(self.session, "frame_rate", None):
                raise Refused("sketch needs the session's frame_rate")
        with self._lock:
            self._midi_notes = s if s.on else None
        if not s.on:
            return s.to_source()
        return s.to_source() + " (the keys held and those pressed since the last block, one per beat)"

    def _midi_clock(self, s: v.MidiClock, c: _Context) -> str:
        if s.way in (None, "in"):
            self.midi.clock_in = s.on
        if s.way in (None, "out"):
            self.midi.clock_out = s.on
        if s.way == "in" and s.on:
            return s.to_source() + " (the tempo follows the external clock; its start puts bar 1 at the next block)"
        if s.way == "out" and s.on:
            return s.to_source() + " (24 ppqn and start/stop from the session's clock, to the MIDI output)"
        return s.to_source()

    def _midi_transport(self, s: v.MidiTransport, c: _Context) -> str:
        with self._lock:
            self._midi_bodies[s.event] = s.body
        count = len(s.body)
        return f"midi {s.event} plays {count} statement{'' if count == 1 else 's'}"

    def _midi_off(self, s: v.MidiOff, c: _Context) -> str:
        self.midi.clock_in = self.midi.clock_out = False
        with self._lock:
            self._knobs, self._midi_notes, self._midi_bodies = {}, None, {}
        return "midi off (mappings, notes, clock and start/stop bodies)"

    def _midi_status(self) -> str:
        with self._lock:
            knobs, notes = sorted(self._knobs, key=lambda k: (k[1], k[0] or 0)), self._midi_notes
        parts = [f"cc {control}" + ("" if channel is None else f"/{channel}") for channel, control in knobs]
        if notes is not None:
            parts.append("notes")
        parts += [f"clock {way}" for way, on in (("in", self.midi.clock_in), ("out", self.midi.clock_out)) if on]
        return ", ".join(parts)

    # --- MIDI: the hook's part, on the generation thread -------------------------------------------

    def _follow_midi_clock(self, midi: m.MidiSnapshot, index: int) -> None:
        """An external clock's start/stop (and their ``midi start:`` bodies) and its tempo, as statements
        applied at this block: ``start`` (and a followed tempo that moved ``TEMPO_STEP_BPM``) puts bar 1 here."""
        context = _Context(now=index)
        with self._lock:
            bodies = dict(self._midi_bodies)
        for event in midi.transport:
            if event == "start" and self.midi.clock_in:
                bpm = self.clock.bpm if midi.tempo is None else round(midi.tempo, 1)
                for message in self._apply(v.Tempo(bpm), context):
                    self._tell(index, f"{message} (MIDI start)")
            elif event != "start":
                self._tell(index, f"MIDI {event}")
            for statement in bodies.get(event, ()):
                for message in self._apply(statement, context):
                    self._tell(index, message)
        if self.midi.clock_in:
            bpm = m.tempo_change(midi.tempo, self.clock.bpm)
            if bpm is not None:
                for message in self._apply(v.Tempo(bpm), context):
                    self._tell(index, f"{message} (MIDI clock)")

    def _turn_knobs(self, midi: m.MidiSnapshot, index: int, block_seconds: float) -> None:
        """Each mapped controller that moved, smoothed one block further, given to the session; a
        mapping that fails is reported once and dropped, the others go on."""
        with self._lock:
            knobs = list(self._knobs.values())
        for knob in knobs:
            change = midi.controls.get(knob.map.key)
            if change is None or (knob.pos is None and change[0] <= knob.armed):
                continue  # the controller has not moved since it was mapped
            try:
                alpha = m.smoothing(block_seconds, self._seconds(knob.map.smooth or v.MIDI_SMOOTH))
                knob.pos = m.smooth_step(knob.pos, change[1], alpha)
                if knob.pos != knob.applied or knob.ramped:
                    self._turn(knob, index, block_seconds)
                    knob.applied = knob.pos
            except Exception as error:
                with self._lock:
                    if self._knobs.get(knob.map.key) is knob:
                        del self._knobs[knob.map.key]
                self._tell(index, f"error: {knob.map.to_source()}: {_one_line(error)}; that mapping is off")

    def _turn(self, knob: _Knob, index: int, block_seconds: float) -> None:
        """Give the session the knob's value at its position, as the matching statement would."""
        s, pos = knob.map, knob.pos
        if s.knob == "prompt":
            self.session.set_prompt(m.crossfade(s.prompts[0], s.prompts[1], pos))
            return
        value = m.knob_value(pos, *s.span)
        if s.knob == "cfg":
            self.session.set_cfg(value)
        elif s.knob.startswith("delay "):
            with self._lock:
                on = self._delay is not None
            if on:  # a delay knob turns the delay in force; it does not turn one on
                self._delay_on(v.Delay(**{s.knob.split()[1]: value}), _Context(now=index))
        else:  # sketch loudness: a ramp from last block's level, then that level held
            start = value if knob.level is None else knob.level
            with self._lock:
                self._sketches.pop("loudness", None)  # the knob takes over from a typed loudness sketch
            frames = m.loudness_frames(start, value, round(block_seconds * float(self.session.frame_rate)))
            self.session.set_sketch("loudness", frames)
            knob.level, knob.ramped = value, start != value

    def _play_keys(self, midi: m.MidiSnapshot, index: int, block_seconds: float) -> None:
        """``midi notes -> melody``: the keys of this block as the melody sketch; when none are played,
        the melody goes back to a typed melody sketch, or off."""
        with self._lock:
            notes, clock, typed = self._midi_notes, self._clock, "melody" in self._sketches
        try:
            order: tuple[int, ...] = ()
            if notes is not None:
                held = {note: n for (channel, note), n in midi.held.items() if notes.channel in (None, channel)}
                pressed = [(n, note) for n, channel, note in midi.pressed if notes.channel in (None, channel)]
                order = m.note_order(held, pressed)
            if order:
                frame_rate = float(self.session.frame_rate)
                frames = m.note_frames(order, clock.bpm, clock.origin_block, index, block_seconds,
                                       round(block_seconds * frame_rate), frame_rate)
                self.session.set_sketch("melody", frames)
                self._notes_sent = True
            elif self._notes_sent:
                self._notes_sent = False
                if not typed:  # a typed melody was sent again this block (_send_sketches)
                    self.session.set_sketch("melody", None)
        except Exception as error:
            with self._lock:
                self._midi_notes = None
            self._tell(index, f"error: midi notes: {_one_line(error)}; midi notes off")


def _delay_spec(delay: v.Delay, clock: Clock, block_seconds: float, frame_seconds: float) -> v.DelaySpec:
    """The delay as the session takes it, its time at ``clock``'s tempo (ValueError if shorter than a frame)."""
    seconds = checked_seconds(clock, delay.time, block_seconds, frame_seconds)
    return v.DelaySpec(
        time_blocks=seconds / block_seconds, time_seconds=seconds,
        strength=delay.strength, feedback=delay.feedback, mix=delay.mix, prompts=delay.prompts or (),
    )


def _dropped(entry: _Scheduled, error: BaseException) -> str:
    """The one message for a scheduled entry that failed and is dropped."""
    try:
        what = v.Every(entry.every, entry.body).to_source() if entry.every is not None else v.body_source(entry.body)
    except Exception:  # the message must not fail too
        what = "a scheduled statement"
    return f"error: {what}: {type(error).__name__}: {_one_line(error)}; dropped from the schedule"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
