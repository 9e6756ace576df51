"""A preallocated single-producer / single-consumer ring buffer of float32 frames.

One thread writes (the generation thread, or the audio callback for captured input) and one
thread reads (the audio callback, or the consumer of captured input). Neither ever waits for the
other: ``write`` copies as many frames as fit and ``read_into`` copies as many as are there,
and both report how many they moved.

How it stays correct without a lock: the two counters ``_written`` and ``_read`` only grow and
each is assigned by one side only. A side first copies the samples, then publishes the new
counter with a single attribute assignment, so the other side never sees a counter that covers
samples not yet copied. This relies on CPython running the copy and the assignment in program
order (the GIL); it is not meant for free-threaded builds.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """``capacity`` frames of ``channels`` float32 samples, allocated once."""

    def __init__(self, capacity: int, channels: int = 1) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1 frame, got {capacity}")
        if channels < 1:
            raise ValueError(f"ring needs at least 1 channel, got {channels}")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self._written = 0  # total frames ever written; assigned by the producer only
        self._read = 0  # total frames ever read; assigned by the consumer only

    @property
    def fill(self) -> int:
        """Frames waiting to be read."""
        return self._written - self._read

    @property
    def space(self) -> int:
        """Frames that can be written now."""
        return self.capacity - self.fill

    def write(self, frames: np.ndarray) -> int:
        """Copy the first frames of ``frames`` [n, channels] that fit; return how many."""
        if frames.ndim != 2 or frames.shape[1] != self.channels:
            raise ValueError(
                f"ring expects frames shaped [n, {self.channels}], got {list(frames.shape)}"
            )
        count = min(len(frames), self.space)
        if count == 0:
            return 0
        start = self._written % self.capacity
        first = min(count, self.capacity - start)
        self._data[start : start + first] = frames[:first]
        self._data[: count - first] = frames[first:count]
        self._written += count  # publish only after the samples are in place
        return count

    @property
    def read_position(self) -> int:
        """Frames ever read (the consumer's counter)."""
        return self._read

    @property
    def write_position(self) -> int:
        """Frames ever written (the producer's counter)."""
        return self._written

    def peek(self, at: int, n: int) -> np.ndarray:
        """A copy of the written frames from absolute position ``at`` (at least the read position) on, at most ``n``."""
        n = max(0, min(n, self._written - at))
        idx = (at + np.arange(n)) % self.capacity
        return self._data[idx].copy()

    def rewrite(self, at: int, frames: np.ndarray, fade: int = 0) -> int:
        """The producer takes back what it wrote from absolute position ``at`` on: ``frames`` go there
        instead (crossfaded with the old frames over the first ``fade``), and anything written after
        them is dropped. Only the producer calls it, and only with ``at`` far enough ahead of the
        reader (more than one read of the consumer) that the reader cannot reach ``at`` meanwhile.
        Returns how many frames were written."""
        if not self._read <= at <= self._written:
            raise ValueError(f"rewrite at {at}: only frames written and not yet read ({self._read} to {self._written})")
        if frames.ndim != 2 or frames.shape[1] != self.channels:
            raise ValueError(f"ring expects frames shaped [n, {self.channels}], got {list(frames.shape)}")
        count = min(len(frames), self.capacity - (at - self._read))
        new = np.array(frames[:count], dtype=np.float32)
        k = min(fade, count, self._written - at)
        if k > 0:
            new[:k] = crossfade(self.peek(at, k), new[:k])
        idx = (at + np.arange(count)) % self.capacity
        self._data[idx] = new
        self._written = at + count  # publish only after the samples are in place
        return count

    def read_into(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` waiting frames into ``out[:k]``; return ``k``.

        Allocates nothing, so the audio callback can call it with its output array.
        """
        count = min(len(out), self.fill)
        if count == 0:
            return 0
        start = self._read % self.capacity
        first = min(count, self.capacity - start)
        out[:first] = self._data[start : start + first]
        out[first:count] = self._data[: count - first]
        self._read += count  # hand the space back only after copying out
        return count

    def read(self, max_frames: int | None = None) -> np.ndarray:
        """Up to ``max_frames`` waiting frames (all of them when None) as a new array."""
        wanted = self.fill if max_frames is None else min(max_frames, self.fill)
        out = np.empty((max(wanted, 0), self.channels), dtype=np.float32)
        got = self.read_into(out)
        return out[:got]

    def clear(self) -> None:
        """Drop everything waiting. Only safe while neither side is running."""
        self._read = self._written


def crossfade(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """[k, channels]: a linear crossfade from ``old`` into ``new`` (same shape), weights 1/(k+1) .. k/(k+1)."""
    w = (np.arange(1, len(new) + 1, dtype=np.float32) / (len(new) + 1))[:, None]
    return (old * (1 - w) + new * w).astype(np.float32)
