"""What the frozen attrs configs (ModelConfig, ConvCodecConfig, OobleckConfig) share: validators
for sizes and ranges, and building one from a dict read off disk, checking every value's type
(and, where the reader gives them, its range) first, refusing fields it does not have.

A config file is outside input: `from_fields` turns any JSON value into either a config or a
one-line ValueError that names the field and what it must be, never a TypeError or a traceback
from deep inside a constructor.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, TypeVar

import attrs
import torch

C = TypeVar("C")
MAX_ITEMS = 64  # the longest list a config field holds (Oobleck strides, extra add inputs)


def positive(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    """attrs validator: sizes, rates and counts must be > 0."""
    if value <= 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be > 0, got {value}")


def within(lo: float, hi: float):
    """attrs validator: lo <= value <= hi (a size, rate or count with a sane ceiling); the message names the range."""

    def check(instance: Any, attribute: attrs.Attribute, value: float) -> None:
        if not lo <= value <= hi:
            raise ValueError(f"{type(instance).__name__}.{attribute.name} must be from {lo:g} to {hi:g}, got {value!r}")

    return check


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


# annotation (as attrs keeps it under `from __future__ import annotations`) -> (test, what it must be)
_TYPES = {
    "int": (_is_int, "a whole number"),
    "float": (_is_number, "a finite number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "tuple[int, ...]": (lambda v: isinstance(v, (list, tuple)) and len(v) <= MAX_ITEMS and all(_is_int(x) for x in v),
                        f"a list of at most {MAX_ITEMS} whole numbers"),
    "tuple[tuple[str, int], ...]": (
        lambda v: isinstance(v, (list, tuple)) and len(v) <= MAX_ITEMS
        and all(isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and _is_int(p[1]) for p in v),
        f'a list of at most {MAX_ITEMS} ["name", size] pairs',
    ),
    "tuple[tuple[int, int], ...]": (
        lambda v: isinstance(v, (list, tuple)) and len(v) <= MAX_ITEMS
        and all(isinstance(p, (list, tuple)) and len(p) == 2 and _is_int(p[0]) and _is_int(p[1]) for p in v),
        f"a list of at most {MAX_ITEMS} [whole number, whole number] pairs",
    ),
}


def check_value(where: str, annotation: str, value: Any, limits: tuple[float, float] | None = None) -> None:
    """A one-line ValueError unless `value` has the type `annotation` names (and lies in `limits`,
    element by element for a list of numbers)."""
    test, what = _TYPES.get(str(annotation), (None, ""))
    if test is not None and not test(value):
        raise ValueError(f"{where} must be {what}, got {_short(value)}")
    if limits is None:
        return
    lo, hi = limits
    numbers = value if isinstance(value, (list, tuple)) else [value]
    if any(not lo <= x <= hi for x in numbers):
        raise ValueError(f"{where} must be from {lo:g} to {hi:g}{' each' if numbers is value else ''}, got {_short(value)}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def from_fields(cls: type[C], d: Any, limits: Mapping[str, tuple[float, float]] | None = None) -> C:
    """cls(**d), or a one-line ValueError: naming every field of d that cls does not have (a typo in
    a config file must not be silently dropped), a value of the wrong type, or one outside `limits`
    (field -> (lo, hi)); whatever the constructor itself refuses comes out as a ValueError too."""
    if not isinstance(d, dict):
        raise ValueError(f"a {cls.__name__} must be a JSON object, got {_short(d)}")
    fields = {f.name: f for f in attrs.fields(cls)}
    unknown = sorted(map(str, set(d) - set(fields)))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
    for name, value in d.items():
        check_value(f"{cls.__name__}.{name}", str(fields[name].type), value, (limits or {}).get(name))
    try:
        return cls(**d)
    except (TypeError, ValueError, ArithmeticError) as e:
        raise ValueError(" ".join(str(e).split()) or f"bad {cls.__name__}") from None


MAX_PARAMETERS = 1 << 30  # numbers in one model or codec: 4 GiB as float32, far past any that plays live


def meta_numel(make: Callable[[], Any]) -> int:
    """Numbers in the state dicts of the module (or tuple of modules) that `make` builds, counted on
    torch's meta device: shapes only, nothing allocated, so a corrupt config can be sized safely."""
    with torch.device("meta"):
        made = make()
    modules = made if isinstance(made, tuple) else (made,)
    return sum(t.numel() for m in modules for t in m.state_dict().values())


def check_parameters(count: int, what: str) -> None:
    """A one-line ValueError when a config describes more than MAX_PARAMETERS numbers (called
    before anything is allocated: a corrupt config must not ask for terabytes)."""
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"{what} would hold {count:.3g} numbers ({4 * count / 2**30:.3g} GiB as float32); "
            f"lmdm refuses more than {MAX_PARAMETERS:.3g} ({4 * MAX_PARAMETERS / 2**30:g} GiB): is the config corrupt?"
        )
