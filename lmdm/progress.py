"""Progress bars for long loops (corpus making, encoding, training, rendering): tqdm's.

    bar = progress(total=100, desc="corpus", unit="ex")
    advance(bar, 1, loss=0.123)   # one more done, and the postfix shown after the bar
    bar.close()

A bar draws on stderr only when it is a terminal (or `enabled=True`); in logs and pipes it stays
silent, and the loops print their own log lines instead (`shown(bar)` tells them which).
"""

from __future__ import annotations

import math
from typing import TextIO

from tqdm import tqdm


def format_duration(seconds: float) -> str:
    """``75 -> "01:15"``, ``3725 -> "1:02:05"`` (tqdm's format); unknown or negative -> ``"--:--"``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    return tqdm.format_interval(round(seconds))


def format_postfix(text: str = "", **values: object) -> str:
    """``format_postfix("x", loss=0.12345, step=3) -> "x loss=0.1235 step=3"``."""
    parts = [text] if text else []
    parts += [f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}" for name, value in values.items()]
    return " ".join(parts)


def progress(total: float | None = None, *, desc: str = "", unit: str = "it", enabled: bool | None = None,
             stream: TextIO | None = None) -> tqdm:
    """A tqdm bar; `enabled=None`: shown only when the stream (stderr by default) is a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, file=stream, disable=None if enabled is None else not enabled,
                mininterval=0.2, dynamic_ncols=True)


def advance(bar: tqdm, n: float = 1, text: str = "", **values: object) -> None:
    """Count `n` more done; with `text` or `name=value` pairs, they replace the postfix."""
    if text or values:
        bar.set_postfix_str(format_postfix(text, **values), refresh=False)
    bar.update(n)


def shown(bar: tqdm) -> bool:
    return not bar.disable
