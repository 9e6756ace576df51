"""Band-limited rational resampling: a streaming polyphase windowed-sinc filter in numpy.

Changing the rate by ``up / down`` (e.g. 16000 -> 44100 is 441 / 160) is, in principle:
insert ``up - 1`` zeros between input samples, low-pass at the lower of the two Nyquist
frequencies, keep every ``down``-th sample. The polyphase form computes only the kept samples:
output ``k`` sits at time ``t = c + k * down`` on the upsampled grid and is a dot product of the
``taps`` newest inputs with one of ``up`` sub-filters (phase ``t % up``).

The low-pass is a Kaiser-windowed sinc with ``zeros`` zero crossings on each side. ``c`` is its
centre, so output ``k`` is aligned with input time ``k * down / up``: no phase shift, only a
latency of ``zeros * max(up, down) / up`` input samples (48 samples, 3 ms at 16 kHz, by default).
With ``rolloff=0.94`` and ``beta=8.6`` the stop band starts right at the lower Nyquist frequency
and is about 85 dB down; the pass band is flat to ~0.88 of the lower Nyquist.

``Resampler`` keeps the last ``taps - 1`` inputs and the position of the next output between
calls, so feeding a signal block by block gives the same samples as feeding it whole.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAX_RATIO_TERM = 2048  # up or down beyond this means rates like 44100 vs 44099: refuse


def integer_rate(rate: float) -> int:
    """A sample rate as an int; rejects rates that are not whole numbers of Hz."""
    rounded = int(round(rate))
    if rounded <= 0 or abs(rate - rounded) > 1e-6:
        raise ValueError(f"sample rates must be positive whole numbers of Hz, got {rate}")
    return rounded


def rate_ratio(src_rate: float, dst_rate: float) -> tuple[int, int]:
    """(up, down) in lowest terms with dst_rate / src_rate == up / down."""
    src, dst = integer_rate(src_rate), integer_rate(dst_rate)
    g = math.gcd(src, dst)
    up, down = dst // g, src // g
    if max(up, down) > MAX_RATIO_TERM:
        raise ValueError(
            f"cannot resample {src} Hz -> {dst} Hz: the ratio {up}/{down} is too fine-grained"
        )
    return up, down


def design_lowpass(
    up: int, down: int, zeros: int = 48, rolloff: float = 0.94, beta: float = 8.6
) -> np.ndarray:
    """The prototype filter on the upsampled grid (float64, odd length, DC gain ``up``)."""
    ratio = max(up, down)
    half = zeros * ratio
    n = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = rolloff / ratio  # as a fraction of the upsampled Nyquist frequency
    taps = cutoff * np.sinc(cutoff * n) * np.kaiser(len(n), beta)
    return taps * (up / taps.sum())


def polyphase(prototype: np.ndarray, up: int) -> np.ndarray:
    """Split the prototype into ``up`` sub-filters [up, taps], each reversed for a dot
    product with a window of inputs in time order (oldest first)."""
    taps = -(-len(prototype) // up)
    padded = np.zeros(up * taps, dtype=np.float64)
    padded[: len(prototype)] = prototype
    return np.ascontiguousarray(padded.reshape(taps, up).T[:, ::-1])


class Resampler:
    """Stateful ``src_rate -> dst_rate`` resampling of [n, channels] float blocks."""

    def __init__(
        self,
        src_rate: float,
        dst_rate: float,
        channels: int = 1,
        *,
        zeros: int = 48,
        rolloff: float = 0.94,
        beta: float = 8.6,
    ) -> None:
        self.src_rate = integer_rate(src_rate)
        self.dst_rate = integer_rate(dst_rate)
        self.channels = int(channels)
        self.up, self.down = rate_ratio(self.src_rate, self.dst_rate)
        self.passthrough = self.up == self.down
        prototype = design_lowpass(self.up, self.down, zeros, rolloff, beta)
        self._filters = polyphase(prototype, self.up)  # [up, taps]
        self._centre = (len(prototype) - 1) // 2
        self.reset()

    @property
    def taps(self) -> int:
        return self._filters.shape[1]

    def reset(self) -> None:
        """Start over: silence before the next block, outputs aligned to it."""
        self._history = np.zeros((self.taps - 1, self.channels), dtype=np.float64)
        self._next = self._centre  # upsampled time of the next output, relative to the next input
        self._inputs = 0
        self._outputs = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        """[n, channels] at src_rate -> [m, channels] float32 at dst_rate, continuing the stream."""
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(
                f"resampler expects blocks shaped [n, {self.channels}], got {list(block.shape)}"
            )
        if self.passthrough:
            return np.array(block, dtype=np.float32)
        n = len(block)
        buf = np.concatenate([self._history, block.astype(np.float64)])
        count = max(0, -(-(n * self.up - self._next) // self.down))
        out = np.empty((count, self.channels), dtype=np.float64)
        windows = sliding_window_view(buf, self.taps, axis=0)  # [n, channels, taps]
        for k in range(min(self.up, count)):
            # outputs k, k + up, k + 2 up, ... share a phase; their windows step by `down`
            t = self._next + k * self.down
            phase, first = t % self.up, t // self.up
            rows = len(range(k, count, self.up))
            out[k :: self.up] = windows[first : first + rows * self.down : self.down] @ self._filters[phase]
        self._history = buf[len(buf) - (self.taps - 1) :]
        self._next += count * self.down - n * self.up
        self._inputs += n
        self._outputs += count
        return out.astype(np.float32)

    def flush(self) -> np.ndarray:
        """The outputs still owed for the inputs so far (feeding silence after them).

        This ends the stream; call ``reset()`` before reusing the resampler.
        """
        if self.passthrough:
            return np.zeros((0, self.channels), dtype=np.float32)
        owed = -(-self._inputs * self.up // self.down) - self._outputs
        if owed <= 0:
            return np.zeros((0, self.channels), dtype=np.float32)
        last_time = self._centre + (self._outputs + owed - 1) * self.down
        pad = last_time // self.up - self._inputs + 1
        tail = self.process(np.zeros((pad, self.channels), dtype=np.float32))
        return tail[:owed]


def resample(signal: np.ndarray, src_rate: float, dst_rate: float) -> np.ndarray:
    """Resample a whole signal ([n] or [n, channels]); the result has ceil(n * dst / src) frames."""
    frames = signal[:, None] if signal.ndim == 1 else signal
    resampler = Resampler(src_rate, dst_rate, frames.shape[1])
    out = np.concatenate([resampler.process(frames), resampler.flush()])
    return out[:, 0] if signal.ndim == 1 else out
