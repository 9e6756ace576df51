"""A tiny text progress bar for long loops (corpus making, training, rendering).

Wrap an iterable::

    for batch in Progress(loader, desc="train", unit="step"):
        ...

or count by hand, with a postfix such as the loss::

    with Progress(total=100, desc="corpus", unit="ex") as bar:
        bar.update(1, loss=0.123)

The bar draws on stderr, at most every ``min_interval`` seconds, and only when the stream is a
terminal (or ``enabled=True``). Otherwise it stays silent, so logs and pipes stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TextIO, TypeVar

T = TypeVar("T")


def format_duration(seconds: float) -> str:
    """``75 -> "01:15"``, ``3725 -> "1:02:05"``; unknown or negative -> ``"--:--"``."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "--:--"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_count(value: float) -> str:
    """Whole numbers without decimals, others with up to 3 significant decimals."""
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def format_postfix(text: str = "", **values: object) -> str:
    """``format_postfix("x", loss=0.12345, step=3) -> "x loss=0.1235 step=3"``."""
    parts = [text] if text else []
    for name, value in values.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{name}={shown}")
    return " ".join(parts)


def format_progress(
    done: float,
    total: float | None,
    elapsed: float,
    *,
    desc: str = "",
    unit: str = "it",
    postfix: str = "",
    width: int = 24,
) -> str:
    """One line of progress, e.g. ``corpus  40%|#########      | 4/10 ex [00:08<00:12, 0.5 ex/s] 0.04 h``."""
    rate = done / elapsed if elapsed > 0 else 0.0
    head = f"{desc} " if desc else ""
    if total:
        fraction = min(max(done / total, 0.0), 1.0)
        filled = int(fraction * width)
        bar = "#" * filled + " " * (width - filled)
        remaining = (total - done) / rate if rate > 0 else float("nan")
        line = (
            f"{head}{fraction * 100:3.0f}%|{bar}| {format_count(done)}/{format_count(total)} {unit} "
            f"[{format_duration(elapsed)}<{format_duration(remaining)}, {rate:.3g} {unit}/s]"
        )
    else:
        line = f"{head}{format_count(done)} {unit} [{format_duration(elapsed)}, {rate:.3g} {unit}/s]"
    return f"{line} {postfix}" if postfix else line


class Progress(Generic[T]):
    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        min_interval: float = 0.2,
        width: int = 24,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.min_interval = min_interval
        self.width = width
        self.clock = clock
        self.done: float = 0
        self.postfix = ""
        self.start = clock()
        self._last_draw = float("-inf")
        self._last_length = 0
        self._last_state: tuple[float, str] | None = None  # (done, postfix) last drawn
        self._closed = False

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    def line(self) -> str:
        return format_progress(
            self.done, self.total, self.elapsed, desc=self.desc, unit=self.unit, postfix=self.postfix, width=self.width
        )

    def set_postfix(self, text: str = "", **values: object) -> None:
        self.postfix = format_postfix(text, **values)
        self._draw(force=False)

    def update(self, n: float = 1, postfix: str | None = None, **values: object) -> None:
        """Count ``n`` more done; optionally replace the postfix text (and ``name=value`` pairs)."""
        self.done += n
        if postfix is not None or values:
            self.postfix = format_postfix(postfix or "", **values)
        self._draw(force=self.total is not None and self.done >= self.total)

    def _draw(self, force: bool) -> None:
        if not self.enabled or self._closed:
            return
        now = self.clock()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self._last_state = (self.done, self.postfix)
        text = self.line()
        padding = " " * max(0, self._last_length - len(text))
        self.stream.write("\r" + text + padding)
        self.stream.flush()
        self._last_length = len(text)

    def close(self) -> None:
        if self._closed:
            return
        if self._last_state != (self.done, self.postfix):
            self._draw(force=True)
        self._closed = True
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("this Progress wraps no iterable; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Progress[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
