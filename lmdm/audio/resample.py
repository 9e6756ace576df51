"""Sample-rate conversion for the live path and for files: libsoxr's, through the `soxr` package.

``Resampler`` converts a stream block by block (``soxr.ResampleStream``, "HQ": a linear-phase
filter with the pass band flat to ~0.91 of the lower Nyquist frequency and the stop band more than
120 dB down; it holds back about 6 ms of input, so the first block out is that much shorter).
Feeding a signal in any cuts, then ``flush()``, gives the same samples as resampling it whole.
Any pair of whole rates works, odd ones such as 44101 or 96001 Hz included.

``check_rate`` is the edge check for audio entering from outside (a file, a sound card, an API
caller): any whole rate from ``MIN_RATE`` to ``MAX_RATE`` Hz.
"""

from __future__ import annotations

import numpy as np
import soxr

MIN_RATE, MAX_RATE = 8_000, 384_000  # what a sound card or an audio file really runs at
MAX_INPUT_CHANNELS = 256  # audio entering from outside (a file, a card) is mixed down from at most this many
QUALITY = "HQ"


def check_rate(rate: object, what: str = "input sample rate") -> int:
    """A rate of audio entering from outside, as an int: a whole number of Hz from MIN_RATE to
    MAX_RATE (odd ones such as 44101 included), else a one-line ValueError naming the range."""
    whole = isinstance(rate, (int, np.integer)) and not isinstance(rate, bool)
    if not whole or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"{what} must be a whole number of Hz from {MIN_RATE} to {MAX_RATE}, got {rate!r}")
    return int(rate)


def integer_rate(rate: float) -> int:
    """A sample rate as an int; rejects rates that are not whole numbers of Hz."""
    rounded = int(round(rate))
    if rounded <= 0 or abs(rate - rounded) > 1e-6:
        raise ValueError(f"sample rates must be positive whole numbers of Hz, got {rate}")
    return rounded


class Resampler:
    """Stateful ``src_rate -> dst_rate`` resampling of [n, channels] float blocks."""

    def __init__(self, src_rate: float, dst_rate: float, channels: int = 1) -> None:
        self.src_rate = integer_rate(src_rate)
        self.dst_rate = integer_rate(dst_rate)
        self.channels = int(channels)
        self.passthrough = self.src_rate == self.dst_rate
        self.reset()

    def reset(self) -> None:
        """Start over: silence before the next block."""
        self._stream = None if self.passthrough else soxr.ResampleStream(
            self.src_rate, self.dst_rate, self.channels, dtype="float32", quality=QUALITY)

    def process(self, block: np.ndarray) -> np.ndarray:
        """[n, channels] at src_rate -> [m, channels] float32 at dst_rate, continuing the stream."""
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"resampler expects blocks shaped [n, {self.channels}], got {list(block.shape)}")
        if self._stream is None:
            return np.array(block, dtype=np.float32)
        if len(block) == 0:
            return np.zeros((0, self.channels), dtype=np.float32)
        return self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32)).reshape(-1, self.channels)

    def flush(self) -> np.ndarray:
        """The outputs still owed for the inputs so far. This ends the stream; ``reset()`` to reuse it."""
        if self._stream is None:
            return np.zeros((0, self.channels), dtype=np.float32)
        empty = np.zeros((0, self.channels), dtype=np.float32)
        return self._stream.resample_chunk(empty, last=True).reshape(-1, self.channels)


def resample(signal: np.ndarray, src_rate: float, dst_rate: float) -> np.ndarray:
    """Resample a whole signal ([n] or [n, channels]) to float32."""
    src, dst = integer_rate(src_rate), integer_rate(dst_rate)
    x = np.ascontiguousarray(signal, dtype=np.float32)
    return x.copy() if src == dst else soxr.resample(x, src, dst, quality=QUALITY)
