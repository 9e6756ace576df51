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

Rates whose ratio is fine-grained (``max(up, down) > MAX_RATIO_TERM``: 44101 vs 16000 Hz, or a
card that really runs at 96001 Hz) would need a table of ``up`` sub-filters of hundreds of
thousands of rows. They use ``PHASES`` sub-filters instead (a table in steps of 1/``PHASES`` of an
input sample), interpolated linearly between the two neighbouring ones for each output; output
times are still kept exactly (integers on the ``up`` grid), so nothing drifts. The interpolation
error is far below the stop band (about -110 dB).

``Resampler`` keeps the last ``taps - 1`` inputs and the position of the next output between
calls, so feeding a signal block by block gives the same samples as feeding it whole.

``check_rate`` is the edge check for audio entering from outside (a file, a sound card, an API
caller): any whole rate from ``MIN_RATE`` to ``MAX_RATE`` Hz, odd ones included.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAX_RATIO_TERM = 2048  # up or down beyond this (44100 vs 44099 Hz): interpolated sub-filters
PHASES = 1024  # sub-filters per input sample for such fine-grained ratios
CHUNK = 4096  # outputs computed at once on the interpolated path (bounds its temporary memory)
MIN_RATE, MAX_RATE = 8_000, 384_000  # what a sound card or an audio file really runs at
MAX_INPUT_CHANNELS = 256  # audio entering from outside (a file, a card) is mixed down from at most this many


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


def rate_ratio(src_rate: float, dst_rate: float) -> tuple[int, int]:
    """(up, down) in lowest terms with dst_rate / src_rate == up / down."""
    src, dst = integer_rate(src_rate), integer_rate(dst_rate)
    g = math.gcd(src, dst)
    return dst // g, src // g


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


def design_fine_lowpass(
    up: int, down: int, zeros: int = 48, rolloff: float = 0.94, beta: float = 8.6
) -> np.ndarray:
    """The prototype for a fine-grained ratio, on a grid of PHASES points per input sample
    (float64, odd length, DC gain PHASES): the same filter as ``design_lowpass``, sampled there."""
    ratio = max(1.0, down / up)  # the cutoff in input samples: the lower Nyquist frequency
    half = math.ceil(zeros * ratio) * PHASES
    n = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = rolloff / (ratio * PHASES)
    taps = cutoff * np.sinc(cutoff * n) * np.kaiser(len(n), beta)
    return taps * (PHASES / taps.sum())


def polyphase(prototype: np.ndarray, up: int, extra: int = 0) -> np.ndarray:
    """Split the prototype into ``up`` sub-filters [up + extra, taps], each reversed for a dot
    product with a window of inputs in time order (oldest first). ``extra=1`` adds sub-filter
    ``up`` (the prototype one input sample later) to interpolate the last phase towards."""
    taps = -(-len(prototype) // up)
    padded = np.zeros(up * taps + extra, dtype=np.float64)
    padded[: len(prototype)] = prototype
    rows = np.arange(taps - 1, -1, -1)[None, :] * up + np.arange(up + extra)[:, None]
    return np.ascontiguousarray(padded[rows])


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
        self.fine = max(self.up, self.down) > MAX_RATIO_TERM
        if self.fine:  # PHASES sub-filters (+ one to interpolate towards), centre on the up grid
            prototype = design_fine_lowpass(self.up, self.down, zeros, rolloff, beta)
            self._filters = polyphase(prototype, PHASES, extra=1)  # [PHASES + 1, taps]
            self._centre = (len(prototype) - 1) // 2 // PHASES * self.up
        else:
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
        if n == 0:
            return np.zeros((0, self.channels), dtype=np.float32)
        buf = np.concatenate([self._history, block.astype(np.float64)])
        count = max(0, -(-(n * self.up - self._next) // self.down))
        out = np.empty((count, self.channels), dtype=np.float64)
        windows = sliding_window_view(buf, self.taps, axis=0)  # [n, channels, taps]
        if self.fine:
            self._interpolated(windows, out)
        for k in range(0 if self.fine else min(self.up, count)):
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

    def _interpolated(self, windows: np.ndarray, out: np.ndarray) -> None:
        """Fill ``out`` [count, channels] on a fine-grained ratio: output k sits at ``t = next + k down``
        on the up grid, between sub-filters floor(f) and floor(f) + 1 with f = (t % up) PHASES / up."""
        for start in range(0, len(out), CHUNK):
            t = self._next + np.arange(start, min(start + CHUNK, len(out)), dtype=np.int64) * self.down
            first, position = t // self.up, (t % self.up) * PHASES
            phase, weight = position // self.up, ((position % self.up) / self.up)[:, None]
            filters = self._filters[phase] * (1.0 - weight) + self._filters[phase + 1] * weight  # [k, taps]
            out[start : start + len(t)] = (windows[first] @ filters[:, :, None])[:, :, 0]

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
