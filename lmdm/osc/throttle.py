"""Rate-limited log lines: the same line at most once a second, with a count of the ones held back.

A flood of bad packets must not become a flood of log lines (issue #20). Lines are told apart by
a key, the log call's format string: ``"ignoring unknown OSC address %s from %s"`` is one key
whatever the address.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

LOG_EVERY_SECONDS = 1.0


class Throttle:
    """``allow(key)``: None to hold a line back, else how many lines with that key were held back
    since the last one let through (0 the first time)."""

    def __init__(self, seconds: float = LOG_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> int | None:
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.seconds:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)


class ThrottledLog:
    """``warning(format, *args)`` on ``logger``, each format at most once per ``throttle.seconds``;
    a line after held-back ones ends with ``(and N more like it since the last one)``."""

    def __init__(self, logger: logging.Logger, throttle: Throttle | None = None) -> None:
        self.logger = logger
        self.throttle = throttle or Throttle()

    def warning(self, format: str, *args: object, exc_info: bool = False) -> None:
        held = self.throttle.allow(format)
        if held is None:
            return
        more = f" (and {held} more like it since the last one)" if held else ""
        self.logger.warning(format + "%s", *args, more, exc_info=exc_info)
