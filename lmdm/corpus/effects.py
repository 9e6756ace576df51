"""Whole-stem effects: convolution reverb with a synthetic room, and a feedback echo.

Both are linear, so applying them per stem keeps "stems sum to the mix" true.
"""

from __future__ import annotations

import numpy as np

from lmdm.corpus.synth import band_shape, seconds_to_samples, time_axis


def next_fast_length(n: int) -> int:
    """Smallest 2^a * 3^b * 5^c >= n (FFT sizes that pocketfft handles quickly)."""
    best = 1 << max(0, (n - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            size = power35
            while size < n:
                size *= 2
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best


def reverb_impulse(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Exponentially decaying noise, darker as it decays, with a short pre-delay; unit energy.

    ``seconds`` is the time for the tail to fall by 60 dB (RT60).
    """
    n = seconds_to_samples(seconds, sample_rate)
    t = time_axis(n, sample_rate)
    noise = rng.standard_normal((2, n)).astype(np.float32)
    spectrum = np.fft.rfft(noise, axis=1)
    low = np.fft.irfft(spectrum[0] * band_shape(n, sample_rate, 80.0, 2500.0), n=n)
    high = np.fft.irfft(spectrum[1] * band_shape(n, sample_rate, 2500.0, sample_rate / 2), n=n)
    rate = np.float32(6.9 / seconds)
    impulse = low * np.exp(-rate * t) + 0.6 * high * np.exp(-2.5 * rate * t)
    predelay = seconds_to_samples(0.015, sample_rate)
    impulse = np.concatenate([np.zeros(predelay, dtype=np.float32), impulse.astype(np.float32)])
    return impulse / np.float32(np.sqrt(np.sum(impulse.astype(np.float64) ** 2)))


def halve_rate(signals: np.ndarray) -> np.ndarray:
    """Keep every even sample after a centred [1/4, 1/2, 1/4] low-pass (no delay), along the last axis."""
    n = signals.shape[-1]
    half = (n + 1) // 2
    zeros = np.zeros(signals.shape[:-1] + (1,), dtype=signals.dtype)
    padded = np.concatenate([zeros, signals, zeros, zeros], axis=-1)  # padded[k + 1] = signals[k]
    left = padded[..., 0 : 2 * half : 2]
    centre = padded[..., 1 : 2 * half + 1 : 2]
    right = padded[..., 2 : 2 * half + 2 : 2]
    return 0.25 * left + 0.5 * centre + 0.25 * right


def double_rate(signals: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation back to twice the rate, ``n`` samples long (inverse of ``halve_rate``)."""
    half = signals.shape[-1]
    out = np.empty(signals.shape[:-1] + (2 * half,), dtype=np.float32)
    out[..., 0::2] = signals
    out[..., 1:-1:2] = 0.5 * (signals[..., :-1] + signals[..., 1:])
    out[..., -1] = signals[..., -1]
    return out[..., :n]


def convolve(signals: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """Convolve each row of ``signals [k, n]`` with ``impulse``; output truncated to n samples."""
    n = signals.shape[-1]
    size = next_fast_length(n + len(impulse) - 1)
    spectrum = np.fft.rfft(signals, n=size, axis=-1) * np.fft.rfft(impulse, n=size)
    return np.fft.irfft(spectrum, n=size, axis=-1)[..., :n].astype(np.float32)


def reverb(signals: np.ndarray, impulse_half_rate: np.ndarray) -> np.ndarray:
    """Wet reverb of each row of ``signals [k, n]``, computed at half the sample rate (the tail
    is dark anyway, and this halves the FFT work). ``impulse_half_rate`` is made at rate / 2."""
    return double_rate(convolve(halve_rate(signals), impulse_half_rate), signals.shape[-1])


def echo(signal: np.ndarray, delay_samples: int, feedback: float) -> np.ndarray:
    """Wet part of a feedback delay: y[n] = x[n - d] + feedback * y[n - d]."""
    d = max(1, delay_samples)
    out = np.zeros_like(signal)
    for start in range(d, len(signal), d):
        stop = min(start + d, len(signal))
        width = stop - start
        back = slice(start - d, start - d + width)
        out[start:stop] = signal[back] + np.float32(feedback) * out[back]
    return out
