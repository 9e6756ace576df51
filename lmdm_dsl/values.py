"""The statements of the language as plain, frozen attrs values.

The parser turns text into these; the interpreter applies them to a session. Each value checks its
own ranges when it is built (so a bad value never reaches the model) and can print itself back as
source text with ``to_source()``: ``parse(s.to_source()) == (s,)`` for every statement ``s``.

A validator that fails raises ``FieldError``, which names the offending field so that the parser
can put the caret under the right token.

Every range and limit of the language has its home here (the mini-notation's own limits are in
``mini.py``); the SDK checks the same ones where values enter it from Python (``lmdm.session``,
``lmdm.conditioning.delay``, ``lmdm.delay``). docs/language.md has them in one table.
"""

from __future__ import annotations

import math
import re
from typing import Union

import attrs

from lmdm_dsl.mini import KINDS, Pattern

UNITS = ("bar", "beat", "block")
REGIMES = ("block_causal", "encdec", "naive")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

TEMPO_RANGE = (20.0, 400.0)
METER_RANGE = (1, 16)  # beats per bar
STEPS_RANGE = (1, 64)
CFG_RANGE = (0.0, 20.0)
SEED_RANGE = (0, 2**63 - 1)
MAX_SPAN = 100_000.0  # longest time span, in its own unit; one above 0 also lasts a latent frame (clock.checked_seconds)
MAX_WEIGHT = 100.0
MAX_PROMPT_CHARS = 500  # one prompt text
MAX_PROMPT_TERMS = 16  # texts in one prompt mix
MAX_DELAY_TURNS = 16  # delay prompts (and, from Python, strengths) taking turns, one per repeat
MAX_PATH_CHARS = 1024
MAX_NAME_CHARS = 64  # a scene name

# limits on what one text may hold and on what the interpreter keeps
MAX_TEXT_CHARS = 20_000  # one run: a statement typed or sent, or a whole set file
MAX_NESTING = 16  # bodies inside bodies (`at`, `in`, `every`, `scene`)
MAX_SCHEDULED = 256  # queued + repeating statements
MAX_SCENES = 256
MAX_PLAY_DEPTH = 16  # scenes playing scenes
MAX_PLAYED = 1024  # statements one `play` runs, those of the scenes it plays included

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FieldError(ValueError):
    """A value out of range; ``field`` names the attribute that holds it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


# --- small helpers shared by validators and to_source ---------------------------------------


def num(x: float) -> str:
    """A number as the language writes it: ``124`` rather than ``124.0``, ``0.7`` as is."""
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _to_float(x: float) -> float:
    try:
        return float(x)
    except OverflowError:  # an integer literal too large for a float
        return math.inf


def _between(lo: float, hi: float, what: str, unit: str = ""):
    def check(instance, attribute, value) -> None:
        if not (lo <= value <= hi):
            raise FieldError(attribute.name, f"{what} must be between {num(lo)} and {num(hi)}{unit}, got {num(value)}")

    return check


def _whole(lo: int, hi: int, what: str):
    def check(instance, attribute, value) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(attribute.name, f"{what} must be a whole number, got {num(value)}")
        if not (lo <= value <= hi):
            raise FieldError(attribute.name, f"{what} must be between {lo} and {hi}, got {value}")

    return check


def _one_of(options: tuple[str, ...], what: str):
    def check(instance, attribute, value) -> None:
        if value not in options:
            raise FieldError(attribute.name, f"{what} must be one of {', '.join(options)}; got {value!r}")

    return check


def _prompt_text(instance, attribute, value: str) -> None:
    if not value.strip():
        raise FieldError(attribute.name, "a prompt cannot be empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise FieldError(attribute.name, f"a prompt is at most {MAX_PROMPT_CHARS} characters, got {len(value)}")
    if _CONTROL.search(value):
        raise FieldError(attribute.name, "a prompt cannot contain control characters")


def _scene_name(instance, attribute, value: str) -> None:
    if len(value) > MAX_NAME_CHARS:
        raise FieldError(attribute.name, f"a scene name is at most {MAX_NAME_CHARS} characters, got {len(value)}")
    if not _NAME.match(value):
        raise FieldError(attribute.name, f"a scene name is letters, digits and _, got {value!r}")


def _positive_span(instance, attribute, value: "Span") -> None:
    if value.amount <= 0:
        raise FieldError(attribute.name, f"the time must be more than zero, got {value.to_source()}")


def _program(statements) -> tuple:
    return tuple(statements)


def body_source(body: tuple) -> str:
    """A body as source: one statement bare, several in braces."""
    if len(body) == 1:
        return body[0].to_source()
    return "{ " + "; ".join(s.to_source() for s in body) + " }" if body else "{ }"


# --- time ------------------------------------------------------------------------------------


@attrs.frozen
class Span:
    """A musical or block-counted length of time: ``4 bars``, ``2 beats``, ``3 blocks``."""

    amount: float = attrs.field(converter=_to_float, validator=_between(0.0, MAX_SPAN, "a time span"))
    unit: str = attrs.field(validator=_one_of(UNITS, "a time unit"))

    def to_source(self) -> str:
        return f"{num(self.amount)} {self.unit}{'' if self.amount == 1 else 's'}"


# --- session knobs ---------------------------------------------------------------------------


@attrs.frozen
class Tempo:
    bpm: float = attrs.field(converter=_to_float, validator=_between(*TEMPO_RANGE, "tempo", " BPM"))

    def to_source(self) -> str:
        return f"tempo {num(self.bpm)}"


@attrs.frozen
class Steps:
    n: int = attrs.field(validator=_whole(*STEPS_RANGE, "steps"))

    def to_source(self) -> str:
        return f"steps {self.n}"


@attrs.frozen
class Cfg:
    scale: float = attrs.field(converter=_to_float, validator=_between(*CFG_RANGE, "cfg"))

    def to_source(self) -> str:
        return f"cfg {num(self.scale)}"


@attrs.frozen
class Seed:
    seed: int = attrs.field(validator=_whole(*SEED_RANGE, "seed"))

    def to_source(self) -> str:
        return f"seed {self.seed}"


@attrs.frozen
class Regime:
    name: str = attrs.field(validator=_one_of(REGIMES, "regime"))

    def to_source(self) -> str:
        return f"regime {self.name}"


@attrs.frozen
class Reset:
    def to_source(self) -> str:
        return "reset"


@attrs.frozen
class Status:
    def to_source(self) -> str:
        return "status"


@attrs.frozen
class Cancel:
    """Drop every queued and repeating statement."""

    def to_source(self) -> str:
        return "cancel"


# --- prompts ---------------------------------------------------------------------------------


@attrs.frozen
class PromptTerm:
    text: str = attrs.field(validator=_prompt_text)
    weight: float | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(_to_float),
        validator=attrs.validators.optional(_between(0.0, MAX_WEIGHT, "a prompt weight")),
    )

    def to_source(self) -> str:
        return quote(self.text) if self.weight is None else f"{quote(self.text)} * {num(self.weight)}"


def _terms(instance, attribute, value: tuple) -> None:
    if not value:
        raise FieldError(attribute.name, "a prompt needs at least one text")
    if len(value) > MAX_PROMPT_TERMS:
        raise FieldError(attribute.name, f"a prompt mixes at most {MAX_PROMPT_TERMS} texts, got {len(value)}")
    if any(t.weight is not None for t in value) and sum(1.0 if t.weight is None else t.weight for t in value) <= 0:
        raise FieldError(attribute.name, "prompt weights add up to zero; give at least one a positive weight")


@attrs.frozen
class Prompt:
    """``prompt "a" * 0.7 + "b" * 0.3 over 4 bars``; ``over`` is None for an immediate change."""

    terms: tuple[PromptTerm, ...] = attrs.field(converter=tuple, validator=_terms)
    over: Span | None = None

    @property
    def session_prompt(self) -> str | tuple[tuple[str, float], ...]:
        """What ``LiveSession.set_prompt`` takes: plain text, or (text, weight) pairs for a mix."""
        if len(self.terms) == 1 and self.terms[0].weight is None:
            return self.terms[0].text
        return tuple((t.text, 1.0 if t.weight is None else t.weight) for t in self.terms)

    def to_source(self) -> str:
        text = "prompt " + " + ".join(t.to_source() for t in self.terms)
        return text if self.over is None else f"{text} over {self.over.to_source()}"


# --- sketches --------------------------------------------------------------------------------


@attrs.frozen
class SketchPattern:
    """``sketch melody "c4 e4 g4 ~"``: a mini-notation pattern for one sketch kind."""

    kind: str = attrs.field(validator=_one_of(KINDS, "a sketch kind"))
    pattern: Pattern = attrs.field()

    @pattern.validator
    def _same_kind(self, attribute, value: Pattern) -> None:
        if value.kind != self.kind:
            raise FieldError(attribute.name, f"a {value.kind} pattern cannot drive the {self.kind} sketch")

    def to_source(self) -> str:
        return f"sketch {self.kind} {quote(self.pattern.source)}"


@attrs.frozen
class SketchRamp:
    """``sketch loudness ramp 0.2 1.0 over 8 bars``: a straight line from now, then hold."""

    start: float = attrs.field(converter=_to_float, validator=_between(0.0, 1.0, "a loudness"))
    end: float = attrs.field(converter=_to_float, validator=_between(0.0, 1.0, "a loudness"))
    over: Span = attrs.field(validator=_positive_span)
    kind: str = attrs.field(default="loudness", init=False)

    def to_source(self) -> str:
        return f"sketch loudness ramp {num(self.start)} {num(self.end)} over {self.over.to_source()}"


@attrs.frozen
class SketchOff:
    """``sketch off`` (every kind, ``kind=None``) or ``sketch melody off``."""

    kind: str | None = attrs.field(default=None, validator=attrs.validators.optional(_one_of(KINDS, "a sketch kind")))

    def to_source(self) -> str:
        return "sketch off" if self.kind is None else f"sketch {self.kind} off"


# --- generative delay ------------------------------------------------------------------------


def _delay_prompts(instance, attribute, value: tuple) -> None:
    if len(value) > MAX_DELAY_TURNS:
        raise FieldError(attribute.name, f"a delay takes turns between at most {MAX_DELAY_TURNS} prompts, got {len(value)}")
    for text in value:
        _prompt_text(instance, attribute, text)


def _given_prompts(value) -> tuple[str, ...] | None:
    """Delay prompts as a tuple; none given (None or an empty list) is None."""
    return None if value is None else (tuple(value) or None)


def _optional_level(what: str):
    """A delay field from 0 to 1 that may be left out (None)."""
    return attrs.field(
        default=None,
        converter=attrs.converters.optional(_to_float),
        validator=attrs.validators.optional(_between(0.0, 1.0, what)),
    )


@attrs.frozen
class Delay:
    """``delay 1 bar strength 0.6 feedback 0.3 mix 0.5 prompt <"glass bells" "warm strings">``.

    Each repeat is regenerated by the model from the audio ``time`` ago; ``prompts`` alternate per
    repeat. A field left out is None: it keeps the value of the delay already on (so
    ``delay strength 0.6`` turns one knob), or takes its ``DELAY_DEFAULTS`` value when none is.
    """

    time: Span | None = attrs.field(default=None, validator=attrs.validators.optional(_positive_span))
    strength: float | None = _optional_level("strength")
    feedback: float | None = _optional_level("feedback")
    mix: float | None = _optional_level("mix")
    prompts: tuple[str, ...] | None = attrs.field(
        default=None, converter=_given_prompts, validator=attrs.validators.optional(_delay_prompts)
    )

    def given(self) -> dict[str, object]:
        """The fields this statement sets, by name."""
        return {name: value for name, value in attrs.asdict(self, recurse=False).items() if value is not None}

    def updating(self, active: Delay | None) -> Delay:
        """The delay in force after this statement: ``active`` (or the defaults) with the given fields replaced."""
        return attrs.evolve(DELAY_DEFAULTS if active is None else active, **self.given())

    def to_source(self) -> str:
        words = ["delay"]
        if self.time is not None:
            words.append(self.time.to_source())
        for name in ("strength", "feedback", "mix"):
            if getattr(self, name) is not None:
                words.append(f"{name} {num(getattr(self, name))}")
        if self.prompts is not None:
            quoted = " ".join(quote(p) for p in self.prompts)
            words.append(f"prompt {quoted}" if len(self.prompts) == 1 else f"prompt <{quoted}>")
        return " ".join(words)


# what a delay statement leaves out when no delay is on; no prompts = the current prompt
DELAY_DEFAULTS = Delay(time=Span(1, "bar"), strength=0.5, feedback=0.3, mix=0.5)


@attrs.frozen
class DelayOff:
    def to_source(self) -> str:
        return "delay off"


@attrs.frozen
class DelaySpec:
    """What ``LiveSession.set_delay`` receives: the delay with its time resolved at the current tempo."""

    time_blocks: float  # delay time in blocks (may be fractional)
    time_seconds: float
    strength: float
    feedback: float
    mix: float
    prompts: tuple[str, ...] = ()  # alternate per repeat; empty = the current prompt


# --- jamming ---------------------------------------------------------------------------------

JAM_FOLLOW = ("key", "beat", "listen")  # `jam key|beat|listen`: how the model follows the player (LiveSession.set_jam)


@attrs.frozen
class Jam:
    """``jam on`` / ``jam off``: whether the model accompanies the player's input; ``jam key`` /
    ``jam beat`` / ``jam listen``: on, following the player's beat and notes (as the rhythm and
    melody sketches), its beat only, or hearing its latents."""

    on: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    follow: str | None = attrs.field(default=None, validator=attrs.validators.in_((None, *JAM_FOLLOW)))

    def to_source(self) -> str:
        if self.follow is not None:
            return f"jam {self.follow}"
        return "jam on" if self.on else "jam off"


# --- recording -------------------------------------------------------------------------------


def _audio_path(instance, attribute, value: str) -> None:
    if not value or len(value) > MAX_PATH_CHARS or _CONTROL.search(value):
        raise FieldError(attribute.name, "record needs a file name such as \"set.flac\"")
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or f".{ext.lower()}" not in AUDIO_EXTENSIONS:
        raise FieldError(attribute.name, f"record only writes audio files ({', '.join(AUDIO_EXTENSIONS)}), got {value!r}")


@attrs.frozen
class RecordStart:
    path: str = attrs.field(validator=_audio_path)

    def to_source(self) -> str:
        return f"record {quote(self.path)}"


@attrs.frozen
class RecordStop:
    def to_source(self) -> str:
        return "record stop"


# --- musical time: quantised and repeating statements ----------------------------------------


@attrs.frozen
class AtNext:
    """``at next bar: …`` / ``at next 4 bars: …``: fire at the next boundary of that grid."""

    span: Span = attrs.field(validator=_positive_span)
    body: tuple = attrs.field(converter=_program)

    def to_source(self) -> str:
        span = self.span.unit if self.span.amount == 1 else self.span.to_source()
        return f"at next {span}: {body_source(self.body)}"


@attrs.frozen
class After:
    """``in 2 blocks: …``: fire that long after now."""

    span: Span
    body: tuple = attrs.field(converter=_program)

    def to_source(self) -> str:
        return f"in {self.span.to_source()}: {body_source(self.body)}"


@attrs.frozen
class Every:
    """``every 4 bars: …``: fire at every boundary of that grid, from the next one on."""

    span: Span = attrs.field(validator=_positive_span)
    body: tuple = attrs.field(converter=_program)

    def to_source(self) -> str:
        return f"every {self.span.to_source()}: {body_source(self.body)}"


# --- scenes ----------------------------------------------------------------------------------


@attrs.frozen
class SceneDef:
    name: str = attrs.field(validator=_scene_name)
    body: tuple = attrs.field(converter=_program)

    def to_source(self) -> str:
        return f"scene {self.name} = {body_source(self.body)}"


@attrs.frozen
class Play:
    name: str = attrs.field(validator=_scene_name)

    def to_source(self) -> str:
        return f"play {self.name}"


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


Statement = Union[
    Tempo, Steps, Cfg, Seed, Regime, Reset, Status, Cancel, Prompt, SketchPattern, SketchRamp, SketchOff,
    Delay, DelayOff, Jam, RecordStart, RecordStop, AtNext, After, Every, SceneDef, Play,
    MidiMap, MidiUnmap, MidiNotes, MidiClock, MidiTransport, MidiOff,
]
Program = tuple  # tuple[Statement, ...]


def program_source(program: tuple) -> str:
    """A whole program as source text, one statement per line."""
    return "\n".join(s.to_source() for s in program)
