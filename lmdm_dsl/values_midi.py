"""The MIDI statements as values: controller mappings (``midi cc``), the keyboard as the melody
sketch (``midi notes``), the clock in and out, the start/stop bodies and ``midi off``, with the
MIDI ranges and limits.

The interpreter applies them (``handlers_midi.py``); the bridge and its math are ``midi.py``, the
ports ``lmdm/sync/midi.py``.
"""

from __future__ import annotations

import attrs

from lmdm_dsl.values_base import (
    CFG_RANGE,
    FieldError,
    Span,
    _one_of,
    _program,
    _prompt_text,
    _to_float,
    _whole,
    body_source,
    num,
    quote,
)

# --- MIDI: controllers, keyboards and clocks (lmdm_dsl/midi.py; the ports are lmdm/sync/midi.py) ----

MIDI_CONTROL_RANGE = (0, 127)  # a control change number
MIDI_CHANNEL_RANGE = (1, 16)  # as printed on the devices; the wire's 0-15
MIDI_KNOBS = ("cfg", "delay strength", "delay feedback", "delay mix", "prompt", "sketch loudness")
MAX_MIDI_MAPS = 128  # controller mappings held at once
MIDI_SMOOTH = Span(1, "beat")  # how long a knob takes to move 63% of the way to a new controller value


def knob_range(knob: str) -> tuple[float, float]:
    """The values a knob can take: a mapping's ``lo .. hi`` must lie inside (the crossfader: 0 .. 1)."""
    return CFG_RANGE if knob == "cfg" else (0.0, 1.0)


def _knob_level(instance, attribute, value: float | None) -> None:
    if value is None:
        return
    if instance.knob == "prompt":
        raise FieldError(attribute.name, "a prompt crossfade takes no range; it runs from the first text to the second")
    lo, hi = knob_range(instance.knob)
    if not (lo <= value <= hi):
        raise FieldError(attribute.name, f"{instance.knob} must be between {num(lo)} and {num(hi)}, got {num(value)}")


def _both_ends(instance, attribute, value: float | None) -> None:
    _knob_level(instance, attribute, value)
    if (instance.low is None) != (value is None):
        raise FieldError(attribute.name, "a knob's range gives both ends: low .. high")


def _crossfade(instance, attribute, value: tuple[str, ...] | None) -> None:
    if (instance.knob == "prompt") != (value is not None):
        raise FieldError(attribute.name, 'a prompt crossfade names two texts: prompt "a" .. "b"')
    if value is not None:
        if len(value) != 2:
            raise FieldError(attribute.name, f'a prompt crossfade names two texts, got {len(value)}')
        for text in value:
            _prompt_text(instance, attribute, text)


def _midi_channel():
    return attrs.field(default=None, validator=attrs.validators.optional(_whole(*MIDI_CHANNEL_RANGE, "a MIDI channel")))


def _channel_source(channel: int | None) -> str:
    return "" if channel is None else f" channel {channel}"


@attrs.frozen
class MidiMap:
    """``midi cc 1 -> cfg 1 .. 6``, ``midi cc 7 channel 2 -> prompt "dub" .. "ambient"``,
    ``midi cc 74 -> delay mix smooth 2 beats``: a controller turns a knob.

    The controller's 0..127 runs the knob from ``low`` to ``high`` (the knob's whole range when
    left out; ``high`` may be below ``low``), smoothed over ``smooth`` (``MIDI_SMOOTH`` when left
    out), once per block. ``channel`` None listens on every channel."""

    control: int = attrs.field(validator=_whole(*MIDI_CONTROL_RANGE, "a MIDI control number"))
    knob: str = attrs.field(validator=_one_of(MIDI_KNOBS, "a MIDI knob"))
    low: float | None = attrs.field(default=None, converter=attrs.converters.optional(_to_float), validator=_knob_level)
    high: float | None = attrs.field(default=None, converter=attrs.converters.optional(_to_float), validator=_both_ends)
    prompts: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple), validator=_crossfade
    )
    channel: int | None = _midi_channel()
    smooth: Span | None = None

    @property
    def key(self) -> tuple[int | None, int]:
        """What the mapping listens to: (channel or None for any, control number)."""
        return self.channel, self.control

    @property
    def span(self) -> tuple[float, float]:
        """(value at controller 0, value at 127)."""
        lo, hi = knob_range(self.knob)
        return (lo if self.low is None else self.low), (hi if self.high is None else self.high)

    def to_source(self) -> str:
        words = [f"midi cc {self.control}{_channel_source(self.channel)} ->"]
        if self.knob == "prompt":
            words.append(f"prompt {quote(self.prompts[0])} .. {quote(self.prompts[1])}")
        else:
            words.append(self.knob)
        if self.low is not None or self.high is not None:
            lo, hi = self.span
            words.append(f"{num(lo)} .. {num(hi)}")
        if self.smooth is not None:
            words.append(f"smooth {self.smooth.to_source()}")
        return " ".join(words)


@attrs.frozen
class MidiUnmap:
    """``midi cc 7 off`` (``midi cc 7 channel 2 off``): that controller turns nothing any more."""

    control: int = attrs.field(validator=_whole(*MIDI_CONTROL_RANGE, "a MIDI control number"))
    channel: int | None = _midi_channel()

    def to_source(self) -> str:
        return f"midi cc {self.control}{_channel_source(self.channel)} off"


@attrs.frozen
class MidiNotes:
    """``midi notes -> melody`` (``midi notes channel 1 -> melody``): the keys held, and those
    pressed since the last block, are the melody sketch, one per beat in the order pressed;
    ``midi notes off``."""

    on: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    channel: int | None = _midi_channel()

    def to_source(self) -> str:
        return f"midi notes{_channel_source(self.channel)} -> melody" if self.on else "midi notes off"


@attrs.frozen
class MidiClock:
    """``midi clock in``: follow an external MIDI clock's tempo (and its start); ``midi clock out``:
    send 24 ppqn and start/stop from the session's clock; ``midi clock in off`` / ``out off``;
    ``midi clock off`` (``way`` None): both off."""

    way: str | None = attrs.field(validator=attrs.validators.in_((None, "in", "out")))
    on: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def to_source(self) -> str:
        if self.way is None:
            return "midi clock off"
        return f"midi clock {self.way}" + ("" if self.on else " off")


@attrs.frozen
class MidiTransport:
    """``midi start: body`` / ``midi stop: body``: what an external clock's start or stop plays."""

    event: str = attrs.field(validator=_one_of(("start", "stop"), "a MIDI transport event"))
    body: tuple = attrs.field(converter=_program)

    def to_source(self) -> str:
        return f"midi {self.event}: {body_source(self.body)}"


@attrs.frozen
class MidiOff:
    """``midi off``: every mapping, the notes, the clock both ways and the start/stop bodies off."""

    def to_source(self) -> str:
        return "midi off"
