"""Statements in musical time and scenes as values: ``at next``, ``in``, ``every``, ``scene`` and ``play``.

Each but ``play`` holds a body, a tuple of statements of any kind, and prints it back with
``body_source``; the interpreter's scheduler fires the timed bodies on the grid (``clock.py``),
and ``play`` applies a scene's body at once.
"""

from __future__ import annotations

import attrs

from lmdm_dsl.values_base import (
    Span,
    _positive_span,
    _program,
    _scene_name,
    body_source,
)

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
