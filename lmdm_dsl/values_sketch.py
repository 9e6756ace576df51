"""The ``sketch`` statements as values: a mini-notation pattern for one sketch kind, a loudness ramp,
and ``sketch off``.

The patterns themselves come from ``mini.py``; the interpreter renders the sketches in force into
frames for every block (``clock.pattern_frames`` / ``clock.ramp_frames``).
"""

from __future__ import annotations

import attrs

from lmdm_dsl.mini import KINDS, Pattern
from lmdm_dsl.values_base import (
    FieldError,
    Span,
    _between,
    _one_of,
    _positive_span,
    _to_float,
    num,
    quote,
)

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
