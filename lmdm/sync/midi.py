"""MIDI in and out on real ports: controllers, keyboards and clocks ([midi] extra: mido, python-rtmidi).

Data flow in:

    a controller, keyboard or sequencer -> a MIDI port (ALSA, JACK, CoreMIDI or WinMM, through rtmidi)
      -> rtmidi's thread: ``MidiIn.receive(bytes, time)`` -> ``decode`` (mido) -> an ``Event``
           control change, note on/off -> ``interpreter.midi`` (``lmdm_dsl.midi.MidiBridge``)
           clock tick                  -> ``ClockFollower`` (24 ppqn -> BPM) -> the bridge's tempo
           start / stop / continue     -> the bridge
      -> before each block, on the generation thread, the interpreter turns what the bridge holds into
         the session's setters, as the statements ``midi cc 7 -> ...`` asked (lmdm_dsl/handlers_midi.py)

and out:

    ``session.clock`` + the stream time being heard -> ``ClockOut``'s thread (lmdm/sync/midi_clock.py):
    Start at the next bar line heard, 24 ticks a beat -> ``MidiOut`` -> a MIDI port (only while the
    language says ``midi clock out``)

Nothing here calls the session's setters or model code: the MIDI threads write a few numbers into
the bridge and read ``session.clock``. Bad input never stops the music: a message that is not MIDI
is counted (``malformed``), one lmdm does not use is counted (``ignored``), a port that cannot open is
one ``MidiError`` line naming the ports there are, and no ``[midi]`` extra is one ``MidiUnavailable``.

Ports: ``--midi-in NAME`` connects to the input port whose name is ``NAME`` or contains it (any case);
``--midi-in virtual`` opens lmdm's own port (``lmdm:in`` under JACK) for others to connect to. The
MIDI system is the first of rtmidi's that answers (ALSA, then JACK on Linux) unless one is named.
Pure parts: ``decode``, ``find_port``, ``ticks_bpm``.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from typing import Any, Callable, Sequence

import attrs
import numpy as np

from lmdm.osc.throttle import ThrottledLog
from lmdm.sync.heard import wall_heard
from lmdm.sync.midi_clock import TICKS_PER_BEAT, ClockOut
from lmdm_dsl.midi import MidiBridge

log = logging.getLogger(__name__)

EXTRA = "MIDI needs the [midi] extra: pip install 'lmdm[midi]' (mido and python-rtmidi)"
VIRTUAL = "virtual"  # the port name that opens lmdm's own port instead of connecting to one
CLIENT = "lmdm"  # lmdm's MIDI client name
FOLLOW_TICKS = 96  # ticks (4 beats) the tempo of a followed clock is fitted over
MIN_TICKS = 48  # ticks (2 beats) before a followed tempo is told
GAP_SECONDS = 0.5  # no tick this long (longer than a tick at 20 BPM): the clock stopped; start afresh


class MidiUnavailable(RuntimeError):
    """mido or python-rtmidi is missing: one line naming the extra."""


class MidiError(RuntimeError):
    """A MIDI system or port could not open: one line."""


def _modules() -> tuple[Any, Any]:
    try:
        import mido
        import rtmidi
    except ImportError as error:
        raise MidiUnavailable(f"{EXTRA} ({error})") from None
    return mido, rtmidi


# --- pure parts ----------------------------------------------------------------------------------


@attrs.frozen
class Event:
    """One MIDI message lmdm uses: ``control`` (number, value), ``note`` (number, velocity; 0 = up),
    ``clock``, ``start``, ``stop`` or ``continue``. Channels are 1..16."""

    kind: str
    channel: int = 0
    number: int = 0
    value: int = 0


def decode(data: Sequence[int]) -> Event | None:
    """The bytes of one MIDI message as an ``Event``; None for a well-formed message lmdm does not
    use (pitch bend, aftertouch, sysex, ...); ValueError for bytes that are not one MIDI message."""
    mido, _ = _modules()
    try:
        message = mido.Message.from_bytes(list(data))
    except (IndexError, KeyError, TypeError) as error:  # mido's word for some short messages ([0xE0])
        raise ValueError(f"not one MIDI message: {list(data)[:8]} ({type(error).__name__})") from None
    kind = message.type
    if kind == "control_change":
        return Event("control", message.channel + 1, message.control, message.value)
    if kind in ("note_on", "note_off"):
        return Event("note", message.channel + 1, message.note, message.velocity if kind == "note_on" else 0)
    if kind in ("clock", "start", "stop", "continue"):
        return Event(kind)
    return None


def find_port(names: Sequence[str], wanted: str, what: str = "input") -> int:
    """The index of the port named ``wanted``, else of the one whose name contains it (any case);
    MidiError naming the ports there are when none or several match."""
    if wanted in names:
        return list(names).index(wanted)
    matches = [i for i, name in enumerate(names) if wanted.casefold() in name.casefold()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        several = ", ".join(repr(names[i]) for i in matches)
        raise MidiError(f"{wanted!r} matches several MIDI {what} ports ({several}); give more of the name")
    there = ", ".join(repr(n) for n in names) or "none"
    raise MidiError(f"no MIDI {what} port matches {wanted!r}; available: {there} (or '{VIRTUAL}' for lmdm's own port)")


def ticks_bpm(times: Sequence[float]) -> float:
    """The tempo of MIDI clock ticks at ``times`` (seconds, 2 or more): the least-squares tick
    interval, so that jitter in single ticks averages out."""
    t = np.asarray(times, dtype=np.float64)
    k = np.arange(len(t), dtype=np.float64) - (len(t) - 1) / 2
    interval = float(np.dot(k, t - t.mean()) / np.dot(k, k))
    return 60.0 / (TICKS_PER_BEAT * interval) if interval > 0 else math.inf


class ClockFollower:
    """An external MIDI clock's tempo: ``tick(time)`` -> BPM fitted over the last ``window`` ticks
    (None until ``min_ticks`` have come); a gap of ``gap`` seconds starts afresh."""

    def __init__(self, window: int = FOLLOW_TICKS, min_ticks: int = MIN_TICKS, gap: float = GAP_SECONDS) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=window)
        self.min_ticks = min_ticks
        self.gap = gap

    def tick(self, t: float) -> float | None:
        if self._times and not 0 <= t - self._times[-1] <= self.gap:
            self._times.clear()
        self._times.append(t)
        return ticks_bpm(self._times) if len(self._times) >= self.min_ticks else None

    def reset(self) -> None:
        self._times.clear()


# --- in ------------------------------------------------------------------------------------------------


@attrs.frozen
class MidiInStats:
    received: int  # messages that arrived
    used: int  # control changes, notes, clock and transport handed on
    ignored: int  # well-formed messages lmdm does not use
    malformed: int  # bytes that are not one MIDI message
    errors: int  # messages whose handling failed (logged; the port goes on)


def _open_client(direction: str, api: str | None, name: str = CLIENT) -> Any:
    """An rtmidi client of the named system (``alsa``, ``jack``, ...), or the first that answers."""
    _, rtmidi = _modules()
    compiled = {rtmidi.get_api_name(a): a for a in rtmidi.get_compiled_api()}
    if api is not None and api not in compiled:
        raise MidiError(f"no MIDI system {api!r} here; there is {', '.join(compiled) or 'none'}")
    kind = rtmidi.MidiIn if direction == "in" else rtmidi.MidiOut
    problems = []
    for system in [api] if api is not None else list(compiled):
        try:
            return kind(rtapi=compiled[system], name=name)
        except rtmidi.RtMidiError as error:
            problems.append(f"{system}: {_one_line(error)}")
    raise MidiError(f"no MIDI system answers ({'; '.join(problems) or 'none compiled in'})")


def _open_port(client: Any, port: str, direction: str) -> str:
    """Open ``port`` on ``client`` (``VIRTUAL``: lmdm's own); the name it is known by."""
    _, rtmidi = _modules()
    try:
        if port == VIRTUAL:
            client.open_virtual_port(direction)
            return f"{CLIENT}:{direction} (virtual)"
        names = client.get_ports()
        index = find_port(names, port, "input" if direction == "in" else "output")
        client.open_port(index, f"{direction}")
        return names[index]
    except rtmidi.RtMidiError as error:
        raise MidiError(f"cannot open the MIDI {direction}put {port!r}: {_one_line(error)}") from None


def _open(port: str, direction: str, api: str | None) -> tuple[Any, str]:
    """An rtmidi client with ``port`` open (``direction`` "in" or "out"), and the port's name."""
    client = _open_client(direction, api)
    try:
        return client, _open_port(client, port, direction)
    except MidiError:
        client.delete()
        raise


class MidiIn:
    """A MIDI input feeding ``bridge``: ``MidiIn(interpreter.midi, "nanoKONTROL").start()``.

    ``receive(data, t)`` is the whole of the work, on rtmidi's thread (tests call it directly);
    it never raises. ``clock`` stamps the messages (seconds)."""

    def __init__(self, bridge: MidiBridge, port: str, *, api: str | None = None,
                 clock: Callable[[], float] = time.perf_counter, on_change: Callable[[], None] | None = None) -> None:
        self.bridge = bridge
        self.on_change = on_change  # after a knob or a key: the session's nudge (a splicing engine makes the playing block again)
        self.port = port
        self.api = api
        self.clock = clock
        self.name = ""
        self._client: Any = None
        self._follower = ClockFollower()
        self._log = ThrottledLog(log)
        self._counts = collections.Counter()

    def start(self) -> MidiIn:
        client, self.name = _open(self.port, "in", self.api)
        client.ignore_types(sysex=False, timing=False, active_sense=False)  # all in: counted, not dropped unseen
        client.set_callback(self._callback)
        self._client = client
        log.info("MIDI in: %s", self.name)
        return self

    def stop(self) -> None:
        """Close the port; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            client.cancel_callback()
            client.close_port()
            client.delete()

    @property
    def stats(self) -> MidiInStats:
        c = self._counts
        return MidiInStats(c["received"], c["used"], c["ignored"], c["malformed"], c["errors"])

    def _callback(self, event: tuple[list[int], float], data: object = None) -> None:
        self.receive(event[0], self.clock())

    def receive(self, data: Sequence[int], t: float) -> None:
        """One message that arrived at ``t``: decoded and handed to the bridge; never raises."""
        self._counts["received"] += 1
        try:
            event = decode(data)
        except ValueError as error:
            self._counts["malformed"] += 1
            self._log.warning("ignoring malformed MIDI from %s: %s", self.name or self.port, error)
            return
        try:
            if event is None:
                self._counts["ignored"] += 1
                return
            self._hand_on(event, t)
            self._counts["used"] += 1
        except Exception:  # a bug here must not end the port
            self._counts["errors"] += 1
            self._log.warning("MIDI message %r crashed its handler", list(data)[:8], exc_info=True)

    def _hand_on(self, event: Event, t: float) -> None:
        if event.kind in ("control", "note"):
            if event.kind == "control":
                self.bridge.control(event.channel, event.number, event.value)
            else:
                self.bridge.note(event.channel, event.number, event.value)
            if self.on_change is not None:
                self.on_change()
        elif event.kind == "clock":
            bpm = self._follower.tick(t)
            if bpm is not None:
                self.bridge.tempo(bpm)
        else:  # start, stop, continue
            if event.kind != "continue":
                self._follower.reset()
            if event.kind == "stop":
                self.bridge.tempo(None)
            self.bridge.transport(event.kind)


# --- out -----------------------------------------------------------------------------------------------


class MidiOut:
    """A MIDI output: ``MidiOut("TR-8").start().send(bytes)``; ``send`` is safe from one thread."""

    def __init__(self, port: str, *, api: str | None = None) -> None:
        self.port = port
        self.api = api
        self.name = ""
        self._client: Any = None

    def start(self) -> MidiOut:
        client, self.name = _open(self.port, "out", self.api)
        self._client = client
        log.info("MIDI out: %s", self.name)
        return self

    def send(self, data: Sequence[int]) -> None:
        client = self._client
        if client is not None:
            client.send_message(list(data))

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close_port()
            client.delete()


# --- the whole: what `lmdm live --midi-in/--midi-out` starts -----------------------------------------------


def start_midi(interpreter: Any, session: Any, *, port_in: str | None = None, port_out: str | None = None,
               api: str | None = None, heard: Callable[[], float] | None = None,
               say: Callable[[str], None] = print) -> Callable[[], None]:
    """Open the MIDI input (into ``interpreter.midi``) and output (the session's clock, while
    ``midi clock out``) that were asked for, each on its own: one that cannot open is one line
    through ``say``, and the music plays on. Returns the function that closes them."""
    stops: list[Callable[[], None]] = []
    if port_in is not None:
        try:
            midi_in = MidiIn(interpreter.midi, port_in, api=api, on_change=getattr(session, "nudge", None)).start()
            stops.append(midi_in.stop)
            say(f"MIDI in: {midi_in.name}")
        except (MidiError, MidiUnavailable) as error:
            say(f"error: MIDI in: {error}; playing on without it")
    if port_out is not None:
        try:
            midi_out = MidiOut(port_out, api=api).start()
            if heard is None:
                heard = wall_heard(session)
            clock_out = ClockOut(midi_out.send, lambda: session.clock, session.block_seconds,
                                 lambda: interpreter.midi.clock_out, heard).start()
            stops += [midi_out.stop, clock_out.stop]  # run in reverse: the clock stops (sending Stop) first
            say(f"MIDI out: {midi_out.name} (`midi clock out` sends the session's clock)")
        except (MidiError, MidiUnavailable) as error:
            say(f"error: MIDI out: {error}; playing on without it")

    def stop() -> None:
        for fn in reversed(stops):
            try:
                fn()
            except Exception:
                log.debug("closing MIDI", exc_info=True)

    return stop


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


__all__ = [
    "CLIENT", "EXTRA", "VIRTUAL", "ClockFollower", "Event", "MidiError", "MidiIn", "MidiInStats", "MidiOut",
    "MidiUnavailable", "decode", "find_port", "start_midi", "ticks_bpm",
]
