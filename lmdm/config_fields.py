"""What the frozen attrs configs (ModelConfig, ConvCodecConfig, OobleckConfig) share: a validator
for sizes, and building one from a dict read off disk, refusing fields it does not have."""

from __future__ import annotations

from typing import Any, TypeVar

import attrs

C = TypeVar("C")


def positive(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    """attrs validator: sizes, rates and counts must be > 0."""
    if value <= 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be > 0, got {value}")


def from_fields(cls: type[C], d: dict[str, Any]) -> C:
    """cls(**d), or a one-line ValueError naming every field of d that cls does not have
    (a typo in a config file must not be silently dropped)."""
    unknown = sorted(set(d) - {f.name for f in attrs.fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
    return cls(**d)
