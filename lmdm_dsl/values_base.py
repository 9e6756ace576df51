"""The ground every statement value stands on: the language's ranges and limits, ``FieldError``,
the validators and printers the values share, and ``Span``, a length of musical time.

The values themselves are in the topic modules (``values_session``, ``values_sketch``,
``values_delay``, ``values_schedule``, ``values_midi``), each built from the helpers here;
``lmdm_dsl.values`` gathers them all.

A validator that fails raises ``FieldError``, which names the offending field so that the parser
can put the caret under the right token.

Every range and limit of the language has its home here (the MIDI ones with the MIDI values in
``values_midi.py``, the mini-notation's own in ``mini.py``); the SDK checks the same ones where
values enter it from Python (``lmdm.session``, ``lmdm.conditioning.delay``, ``lmdm.delay``).
docs/language.md has them in one table.
"""

from __future__ import annotations

import math
import re

import attrs

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


_QUOTED = r'"(?:[^"\\]|\\.)*"'
_MIX = re.compile(rf"{_QUOTED} \* [0-9.e+-]+(?: \+ {_QUOTED} \* [0-9.e+-]+)+")


def prompt_shown(text: str) -> str:
    """The prompt a session reports, as the language writes it: a mix (the session's text for one,
    ``"a" * 0.6 + "b" * 0.4``) as it is, any other text quoted."""
    return text if _MIX.fullmatch(text) else quote(text)


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


def _positive_span(instance, attribute, value: Span) -> None:
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
