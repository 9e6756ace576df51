"""Changes that land inside a block: a bar line that falls between two block starts, heard on its sample.

A session makes its audio a block at a time, and a change made between blocks is heard from the
next block's first sample. A change due at a time inside a block (the language's `at next bar:`
when bars and blocks do not meet) is made inside `LiveSession.landing(fraction)`: the changes its
setters queue there are held back from the block start, the block is made as it was, then made
again from the same start (as `rewind` does: same seed, same history) with them, and the two are
joined at the landing sample:

    block n made (A) -> rewind to n's start, the landed changes queued -> block n made again (B)
    audio = A[:k], then a LANDING_FADE_S crossfade from A to B starting at k, then B   (k = fraction * block)

The stream goes on from B, so everything after the landing sample is the new state's. The block
costs two blocks of compute. A later `rewind` of that block (a splicing engine's) makes it again
with the landed changes from its start: the landing sample is not kept.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator

import numpy as np

LANDING_FADE_S = 0.005  # the crossfade from the block as it was to the block made again, from the landing sample


def spliced(before: np.ndarray, after: np.ndarray, at: int, fade: int) -> np.ndarray:
    """`before`[:at], then `after` faded in over `fade` samples from `at` on (its first sample already
    weighs 1 / (fade + 1)), then `after`: [n, channels] each, the same shape."""
    out = after.copy()
    out[:at] = before[:at]
    end = min(len(after), at + fade)
    if end > at:
        w = (np.arange(1, end - at + 1, dtype=np.float32) / (fade + 1))[:, None]
        out[at:end] = before[at:end] * (1 - w) + after[at:end] * w
    return out


def check_fraction(fraction: object) -> float:
    """A landing's place in its block: a number strictly between 0 and 1; else a one-line ValueError."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction) or not 0 < fraction < 1:
        raise ValueError(f"a landing is a fraction of a block strictly between 0 and 1, got {fraction!r}")
    return float(fraction)


class LandingControls:
    """`landing` of `LiveSession` (which provides the state named below) and the queue its changes go to."""

    _lock: threading.RLock
    _pending: list[Callable[[], None]]
    _landing_local: threading.local  # .fraction on the thread inside `landing`
    _landed: list[tuple[float, Callable[[], None]]]  # (fraction, change) held back from the block being started

    @contextlib.contextmanager
    def landing(self, fraction: float) -> Iterator[None]:
        """Changes made inside (on this thread) land `fraction` of the way into the block about to be
        made (0 < fraction < 1) rather than at its start: the block is made as it was and again
        with them, joined on that sample (lmdm/session/landing.py). Used from a hook at a block start
        (the language's bar-quantised statements); from any other thread, into the next block. Of
        several landings in one block, the earliest sample is where the block made again begins."""
        fraction = check_fraction(fraction)
        outer = getattr(self._landing_local, "fraction", None)
        self._landing_local.fraction = fraction
        try:
            yield
        finally:
            self._landing_local.fraction = outer

    def _queue(self, change: Callable[[], None]) -> None:
        """A setter's change: for the next block start, or held for its landing (lock held by the caller)."""
        fraction = getattr(self._landing_local, "fraction", None)
        if fraction is None:
            self._pending.append(change)
        else:
            self._landed.append((fraction, change))

    def _take_landed(self) -> tuple[float, list[Callable[[], None]]] | None:
        """The changes held for a landing in the block just started: (earliest fraction, changes in order)."""
        with self._lock:
            landed, self._landed = self._landed, []
        if not landed:
            return None
        return min(f for f, _ in landed), [c for _, c in landed]
