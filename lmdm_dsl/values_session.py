"""The session's own statements as values: the knobs (``tempo``, ``steps``, ``cfg``, ``seed``,
``regime``), ``reset`` / ``status`` / ``cancel``, ``prompt`` mixes, ``jam`` and ``record``.

Each checks its ranges when built (helpers and limits from ``values_base``) and prints itself back
with ``to_source()``; the interpreter hands them to the session's setters.
"""

from __future__ import annotations

import attrs

from lmdm_dsl.values_base import (
    _CONTROL,
    AUDIO_EXTENSIONS,
    CFG_RANGE,
    MAX_PATH_CHARS,
    MAX_PROMPT_TERMS,
    MAX_WEIGHT,
    REGIMES,
    SEED_RANGE,
    STEPS_RANGE,
    TEMPO_RANGE,
    FieldError,
    Span,
    _between,
    _one_of,
    _prompt_text,
    _to_float,
    _whole,
    num,
    quote,
)

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
