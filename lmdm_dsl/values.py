"""The statements of the language as plain, frozen attrs values, all in one place to import.

The parser turns text into these; the interpreter applies them to a session. Each value checks its
own ranges when it is built (so a bad value never reaches the model) and can print itself back as
source text with ``to_source()``: ``parse(s.to_source()) == (s,)`` for every statement ``s``.

The values live by topic; this module gathers every public name of them, so that
``from lmdm_dsl import values as v`` reaches them all:

- ``values_base``: the ranges and limits, ``FieldError``, the shared validators and printers
  (``num``, ``quote``, ``body_source``) and ``Span``;
- ``values_session``: the session knobs, ``reset`` / ``status`` / ``cancel``, prompts, ``jam``, ``record``;
- ``values_sketch``: the ``sketch`` statements;
- ``values_delay``: the generative delay, its defaults and ``DelaySpec``;
- ``values_schedule``: ``at next``, ``in``, ``every``, ``scene`` and ``play``;
- ``values_midi``: the MIDI statements and their limits.

``Statement`` is the union of them all and a ``Program`` a tuple of them.
"""

from __future__ import annotations

from typing import Union

from lmdm_dsl.values_base import (
    AUDIO_EXTENSIONS,
    CFG_RANGE,
    MAX_DELAY_TURNS,
    MAX_NAME_CHARS,
    MAX_NESTING,
    MAX_PATH_CHARS,
    MAX_PLAY_DEPTH,
    MAX_PLAYED,
    MAX_PROMPT_CHARS,
    MAX_PROMPT_TERMS,
    MAX_SCENES,
    MAX_SCHEDULED,
    MAX_SPAN,
    MAX_TEXT_CHARS,
    MAX_WEIGHT,
    METER_RANGE,
    REGIMES,
    SEED_RANGE,
    STEPS_RANGE,
    TEMPO_RANGE,
    UNITS,
    FieldError,
    Span,
    body_source,
    num,
    prompt_shown,
    quote,
)
from lmdm_dsl.values_delay import DELAY_DEFAULTS, Delay, DelayOff, DelaySpec
from lmdm_dsl.values_midi import (
    MAX_MIDI_MAPS,
    MIDI_CHANNEL_RANGE,
    MIDI_CONTROL_RANGE,
    MIDI_KNOBS,
    MIDI_SMOOTH,
    MidiClock,
    MidiMap,
    MidiNotes,
    MidiOff,
    MidiTransport,
    MidiUnmap,
    knob_range,
)
from lmdm_dsl.values_schedule import After, AtNext, Every, Play, SceneDef
from lmdm_dsl.values_session import (
    JAM_FOLLOW,
    Cancel,
    Cfg,
    Jam,
    Prompt,
    PromptTerm,
    RecordStart,
    RecordStop,
    Regime,
    Reset,
    Seed,
    Status,
    Steps,
    Tempo,
)
from lmdm_dsl.values_sketch import SketchOff, SketchPattern, SketchRamp

Statement = Union[
    Tempo, Steps, Cfg, Seed, Regime, Reset, Status, Cancel, Prompt, SketchPattern, SketchRamp, SketchOff,
    Delay, DelayOff, Jam, RecordStart, RecordStop, AtNext, After, Every, SceneDef, Play,
    MidiMap, MidiUnmap, MidiNotes, MidiClock, MidiTransport, MidiOff,
]
Program = tuple  # tuple[Statement, ...]


def program_source(program: tuple) -> str:
    """A whole program as source text, one statement per line."""
    return "\n".join(s.to_source() for s in program)


__all__ = [
    "AUDIO_EXTENSIONS", "CFG_RANGE", "DELAY_DEFAULTS", "JAM_FOLLOW", "MAX_DELAY_TURNS", "MAX_MIDI_MAPS",
    "MAX_NAME_CHARS", "MAX_NESTING", "MAX_PATH_CHARS", "MAX_PLAYED", "MAX_PLAY_DEPTH", "MAX_PROMPT_CHARS",
    "MAX_PROMPT_TERMS", "MAX_SCENES", "MAX_SCHEDULED", "MAX_SPAN", "MAX_TEXT_CHARS", "MAX_WEIGHT", "METER_RANGE",
    "MIDI_CHANNEL_RANGE", "MIDI_CONTROL_RANGE", "MIDI_KNOBS", "MIDI_SMOOTH", "REGIMES", "SEED_RANGE",
    "STEPS_RANGE", "TEMPO_RANGE", "UNITS", "After", "AtNext", "Cancel", "Cfg", "Delay", "DelayOff", "DelaySpec",
    "Every", "FieldError", "Jam", "MidiClock", "MidiMap", "MidiNotes", "MidiOff", "MidiTransport", "MidiUnmap",
    "Play", "Program", "Prompt", "PromptTerm", "RecordStart", "RecordStop", "Regime", "Reset", "SceneDef", "Seed",
    "SketchOff", "SketchPattern", "SketchRamp", "Span", "Statement", "Status", "Steps", "Tempo", "body_source",
    "knob_range", "num", "program_source", "prompt_shown", "quote"
]
