"""The MIDI statements applied, and MIDI's part of the hook before each block.

A MIDI thread only writes into the bridge (``interp.midi``, a ``midi.MidiBridge``). The statements
here say what its numbers mean: a ``midi cc`` mapping becomes a ``_Knob``, ``midi notes`` makes
the keys the melody sketch, ``midi clock`` / ``midi start:`` follow an external clock. Before each
block the hook takes a ``MidiSnapshot`` from the bridge and calls, in order,
``follow_midi_clock`` (before the schedule fires, so it fires on the new grid), then, after the
sketches are sent, ``turn_knobs`` and ``play_keys`` (so a knob or the keys win over a typed
sketch). The math (smoothing, crossfades, note frames) is in ``midi.py``.

Each function takes the ``Interpreter``; a mapping or the keys failing is reported once and
turned off, the rest goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from lmdm_dsl import handlers_sound
from lmdm_dsl import midi as m
from lmdm_dsl import values as v
from lmdm_dsl.context import Context, Refused, one_line

if TYPE_CHECKING:
    from lmdm_dsl.interpreter import Interpreter


@attrs.define(eq=False)
class _Knob:
    """A controller mapping in force, and where its knob stands (changed on the generation thread only)."""

    map: v.MidiMap
    armed: int  # the controller's change number when mapped: it turns the knob from the next change on
    pos: float | None = None  # the smoothed position, 0..1 (None: the controller has not moved yet)
    applied: float | None = None  # the position the session was last given
    level: float | None = None  # a loudness knob: the level its last frames ended at
    ramped: bool = False  # a loudness knob's last frames were a ramp (so the next block sends the level flat)


# --- the statements -------------------------------------------------------------------------------


def midi_map(interp: Interpreter, s: v.MidiMap, c: Context) -> str:
    """Map a controller to a knob. The same mapping again (a set file re-run) keeps the knob where
    it stands; a new one turns the knob from the controller's next move on."""
    if s.knob.startswith("delay "):
        interp._require("delay")
    if s.knob == "sketch loudness":
        interp._require("sketch")
        if not getattr(interp.session, "frame_rate", None):
            raise Refused("sketch needs the session's frame_rate")
    interp._seconds(s.smooth or v.MIDI_SMOOTH)
    armed = interp.midi.last_change(s.key)
    with interp._lock:
        old = interp._knobs.get(s.key)
        if old is not None and old.map == s:
            return f"{s.to_source()} (already mapped)"
        if old is None and len(interp._knobs) >= v.MAX_MIDI_MAPS:
            raise Refused(f"too many MIDI mappings (at most {v.MAX_MIDI_MAPS}); use midi cc N off")
        interp._knobs[s.key] = _Knob(s, armed)
    replaced = f" (was {old.map.to_source()})" if old is not None else ""
    return f"{s.to_source()}{replaced}; it turns when the controller moves"


def midi_unmap(interp: Interpreter, s: v.MidiUnmap, c: Context) -> str:
    with interp._lock:
        gone = interp._knobs.pop((s.channel, s.control), None)
    return s.to_source() + ("" if gone is not None else " (it was not mapped)")


def midi_notes_on(interp: Interpreter, s: v.MidiNotes, c: Context) -> str:
    if s.on:
        interp._require("sketch")
        if not getattr(interp.session, "frame_rate", None):
            raise Refused("sketch needs the session's frame_rate")
    with interp._lock:
        interp._midi_notes = s if s.on else None
    if not s.on:
        return s.to_source()
    return s.to_source() + " (the keys held and those pressed since the last block, one per beat)"


def midi_clock(interp: Interpreter, s: v.MidiClock, c: Context) -> str:
    if s.way in (None, "in"):
        interp.midi.clock_in = s.on
    if s.way in (None, "out"):
        interp.midi.clock_out = s.on
    if s.way == "in" and s.on:
        return s.to_source() + " (the tempo follows the external clock; its start puts bar 1 at the next block)"
    if s.way == "out" and s.on:
        return s.to_source() + " (24 ppqn and start/stop from the session's clock, to the MIDI output)"
    return s.to_source()


def midi_transport(interp: Interpreter, s: v.MidiTransport, c: Context) -> str:
    with interp._lock:
        interp._midi_bodies[s.event] = s.body
    count = len(s.body)
    return f"midi {s.event} plays {count} statement{'' if count == 1 else 's'}"


def midi_off(interp: Interpreter, s: v.MidiOff, c: Context) -> str:
    interp.midi.clock_in = interp.midi.clock_out = False
    with interp._lock:
        interp._knobs, interp._midi_notes, interp._midi_bodies = {}, None, {}
    return "midi off (mappings, notes, clock and start/stop bodies)"


def midi_status(interp: Interpreter) -> str:
    with interp._lock:
        knobs, notes = sorted(interp._knobs, key=lambda k: (k[1], k[0] or 0)), interp._midi_notes
    parts = [f"cc {control}" + ("" if channel is None else f"/{channel}") for channel, control in knobs]
    if notes is not None:
        parts.append("notes")
    parts += [f"clock {way}" for way, on in (("in", interp.midi.clock_in), ("out", interp.midi.clock_out)) if on]
    return ", ".join(parts)


# --- the hook's part, on the generation thread -----------------------------------------------------


def follow_midi_clock(interp: Interpreter, midi: m.MidiSnapshot, index: int) -> None:
    """An external clock's start/stop (and their ``midi start:`` bodies) and its tempo, as statements
    applied at this block: ``start`` (and a followed tempo that moved ``TEMPO_STEP_BPM``) puts bar 1 here."""
    context = Context(now=index)
    with interp._lock:
        bodies = dict(interp._midi_bodies)
    for event in midi.transport:
        if event == "start" and interp.midi.clock_in:
            bpm = interp.clock.bpm if midi.tempo is None else round(midi.tempo, 1)
            for message in interp._apply(v.Tempo(bpm), context):
                interp._tell(index, f"{message} (MIDI start)")
        elif event != "start":
            interp._tell(index, f"MIDI {event}")
        for statement in bodies.get(event, ()):
            for message in interp._apply(statement, context):
                interp._tell(index, message)
    if interp.midi.clock_in:
        bpm = m.tempo_change(midi.tempo, interp.clock.bpm)
        if bpm is not None:
            for message in interp._apply(v.Tempo(bpm), context):
                interp._tell(index, f"{message} (MIDI clock)")


def turn_knobs(interp: Interpreter, midi: m.MidiSnapshot, index: int, block_seconds: float) -> None:
    """Each mapped controller that moved, smoothed one block further, given to the session; a
    mapping that fails is reported once and dropped, the others go on."""
    with interp._lock:
        knobs = list(interp._knobs.values())
    for knob in knobs:
        change = midi.controls.get(knob.map.key)
        if change is None or (knob.pos is None and change[0] <= knob.armed):
            continue  # the controller has not moved since it was mapped
        try:
            alpha = m.smoothing(block_seconds, interp._seconds(knob.map.smooth or v.MIDI_SMOOTH))
            knob.pos = m.smooth_step(knob.pos, change[1], alpha)
            if knob.pos != knob.applied or knob.ramped:
                _turn(interp, knob, index, block_seconds)
                knob.applied = knob.pos
        except Exception as error:
            with interp._lock:
                if interp._knobs.get(knob.map.key) is knob:
                    del interp._knobs[knob.map.key]
            interp._tell(index, f"error: {knob.map.to_source()}: {one_line(error)}; that mapping is off")


def _turn(interp: Interpreter, knob: _Knob, index: int, block_seconds: float) -> None:
    """Give the session the knob's value at its position, as the matching statement would."""
    s, pos = knob.map, knob.pos
    if s.knob == "prompt":
        interp.session.set_prompt(m.crossfade(s.prompts[0], s.prompts[1], pos))
        return
    value = m.knob_value(pos, *s.span)
    if s.knob == "cfg":
        interp.session.set_cfg(value)
    elif s.knob.startswith("delay "):
        with interp._lock:
            on = interp._delay is not None
        if on:  # a delay knob turns the delay in force; it does not turn one on
            handlers_sound.delay_on(interp, v.Delay(**{s.knob.split()[1]: value}), Context(now=index))
    else:  # sketch loudness: a ramp from last block's level, then that level held
        start = value if knob.level is None else knob.level
        with interp._lock:
            interp._sketches.pop("loudness", None)  # the knob takes over from a typed loudness sketch
        frames = m.loudness_frames(start, value, round(block_seconds * float(interp.session.frame_rate)))
        interp.session.set_sketch("loudness", frames)
        knob.level, knob.ramped = value, start != value


def play_keys(interp: Interpreter, midi: m.MidiSnapshot, index: int, block_seconds: float) -> None:
    """``midi notes -> melody``: the keys of this block as the melody sketch; when none are played,
    the melody goes back to a typed melody sketch, or off."""
    with interp._lock:
        notes, clock, typed = interp._midi_notes, interp._clock, "melody" in interp._sketches
    try:
        order: tuple[int, ...] = ()
        if notes is not None:
            held = {note: n for (channel, note), n in midi.held.items() if notes.channel in (None, channel)}
            pressed = [(n, note) for n, channel, note in midi.pressed if notes.channel in (None, channel)]
            order = m.note_order(held, pressed)
        if order:
            frame_rate = float(interp.session.frame_rate)
            frames = m.note_frames(order, clock.bpm, clock.origin_block, index, block_seconds,
                                   round(block_seconds * frame_rate), frame_rate)
            interp.session.set_sketch("melody", frames)
            interp._notes_sent = True
        elif interp._notes_sent:
            interp._notes_sent = False
            if not typed:  # a typed melody was sent again this block (handlers_sound.send_sketches)
                interp.session.set_sketch("melody", None)
    except Exception as error:
        with interp._lock:
            interp._midi_notes = None
        interp._tell(index, f"error: midi notes: {one_line(error)}; midi notes off")
