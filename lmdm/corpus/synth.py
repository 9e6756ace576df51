"""Synthesis building blocks in numpy: envelopes, oscillators, filters, plucked strings.

Everything returns float32 arrays and is vectorised over samples. Python loops run over
partials, oscillators or blocks (one step per string period), never over single samples.
Time-varying low-pass filters are done with *filtered wavetables*: for every note we build a
small stack of band-limited single-cycle tables, one per cutoff, and crossfade between them
as the filter envelope moves. That gives a resonant filter sweep without any aliasing and
without a per-sample recursion.
"""

from __future__ import annotations

import functools

import numpy as np

TABLE_SIZE = 2048
# Cutoffs of the filtered tables, as a harmonic number: 2 ** (level / 2) for level 0..15.
TABLE_LEVELS = 16


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    return max(0, int(round(seconds * sample_rate)))


def time_axis(n: int, sample_rate: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32) / np.float32(sample_rate)


# ---------------------------------------------------------------- envelopes


def adsr(gate: float, attack: float, decay: float, sustain: float, release: float, sample_rate: int) -> np.ndarray:
    """Attack-decay-sustain-release envelope lasting ``gate + release`` seconds.

    The attack is linear; decay and release are exponential (``decay``/``release`` are the times
    to fall by 60 dB). A gate shorter than the attack releases from wherever the attack got to.
    """
    n_gate = seconds_to_samples(gate, sample_rate)
    n_release = seconds_to_samples(release, sample_rate)
    t = time_axis(n_gate + n_release, sample_rate)
    attack = max(attack, 1.0 / sample_rate)
    decay_rate = np.float32(6.9 / max(decay, 1e-4))
    on = np.where(
        t < attack,
        t / np.float32(attack),
        sustain + (1.0 - sustain) * np.exp(-decay_rate * np.maximum(t - attack, 0.0)),
    ).astype(np.float32)
    if n_release == 0:
        return on
    level = float(on[n_gate - 1]) if n_gate > 0 else 0.0
    tail = level * np.exp(-np.float32(6.9 / max(release, 1e-4)) * (t[n_gate:] - t[n_gate]))
    on[n_gate:] = tail
    # A short linear fade at the very end so nothing is cut mid-wave.
    fade = min(n_release, 32)
    on[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return on


def exp_decay(n: int, seconds_to_minus_60db: float, sample_rate: int) -> np.ndarray:
    t = time_axis(n, sample_rate)
    return np.exp(-np.float32(6.9 / max(seconds_to_minus_60db, 1e-4)) * t)


def fade_out(signal: np.ndarray, samples: int) -> np.ndarray:
    samples = min(samples, signal.shape[-1])
    if samples > 0:
        signal[..., -samples:] *= np.linspace(1.0, 0.0, samples, dtype=np.float32)
    return signal


# ---------------------------------------------------------------- oscillators


def constant_phase(freq: float, n: int, sample_rate: int, start: float = 0.0) -> np.ndarray:
    """Phase in cycles (wrapped to [0, 1)) of a steady oscillator."""
    cycles = start + np.arange(n, dtype=np.float64) * (freq / sample_rate)
    return (cycles - np.floor(cycles)).astype(np.float32)


def varying_phase(freq: np.ndarray, sample_rate: int, start: float = 0.0) -> np.ndarray:
    """Phase in cycles (wrapped to [0, 1)) of an oscillator whose frequency changes per sample."""
    cycles = start + np.cumsum(freq.astype(np.float64) / sample_rate) - freq[0] / sample_rate
    return (cycles - np.floor(cycles)).astype(np.float32)


def sine(phase: np.ndarray) -> np.ndarray:
    return np.sin(np.float32(2.0 * np.pi) * phase)


def vibrato(freq: float, n: int, sample_rate: int, rate: float, cents: float, delay: float) -> np.ndarray:
    """Frequency curve with a sine vibrato that fades in after ``delay`` seconds."""
    t = time_axis(n, sample_rate)
    depth = np.clip((t - delay) / 0.3, 0.0, 1.0) * np.float32(cents / 1200.0)
    return np.float32(freq) * np.exp2(depth * np.sin(np.float32(2 * np.pi * rate) * t))


# ---------------------------------------------------------------- filtered wavetables


def waveform_harmonics(shape: str, count: int) -> np.ndarray:
    """Amplitudes of sine harmonics 1..count for a named waveform (negative = inverted)."""
    k = np.arange(1, count + 1, dtype=np.float64)
    if shape == "saw":
        return 1.0 / k
    if shape == "square":
        return np.where(k % 2 == 1, 1.0 / k, 0.0)
    if shape == "triangle":
        return np.where(k % 2 == 1, (-1.0) ** ((k - 1) // 2) / k**2, 0.0)
    if shape == "pulse":  # 25 % duty cycle
        return np.sin(np.pi * k * 0.25) / k
    raise ValueError(f"unknown waveform {shape!r}")


def lowpass_response(ratio: np.ndarray, resonance: float) -> np.ndarray:
    """Magnitude of a two-pole low-pass at frequency ``ratio`` x cutoff; resonance is the Q."""
    q = max(resonance, 0.5)
    return 1.0 / np.sqrt((1.0 - ratio**2) ** 2 + (ratio / q) ** 2)


@functools.lru_cache(maxsize=256)
def filtered_tables(shape: str, freq: float, resonance: float, sample_rate: int) -> np.ndarray:
    """``[TABLE_LEVELS, TABLE_SIZE + 1]`` single-cycle tables of ``shape`` low-passed at
    harmonic ``2 ** (level / 2)``, with every harmonic above 0.45 x sample rate removed.

    The extra last column repeats the first so linear interpolation needs no wrap-around.
    Tables are scaled together so the loudest one peaks at 1.
    """
    count = int(min(TABLE_SIZE // 2 - 1, max(1, np.floor(0.45 * sample_rate / freq))))
    k = np.arange(1, count + 1, dtype=np.float64)
    cutoffs = 2.0 ** (np.arange(TABLE_LEVELS) / 2.0)
    amps = waveform_harmonics(shape, count)[None, :] * lowpass_response(k[None, :] / cutoffs[:, None], resonance)
    spectrum = np.zeros((TABLE_LEVELS, TABLE_SIZE // 2 + 1), dtype=np.complex128)
    spectrum[:, 1 : count + 1] = -0.5j * TABLE_SIZE * amps
    tables = np.fft.irfft(spectrum, n=TABLE_SIZE, axis=1)
    tables /= max(np.abs(tables).max(), 1e-9)
    return np.concatenate([tables, tables[:, :1]], axis=1).astype(np.float32)


def cutoff_to_level(cutoff_hz: np.ndarray | float, freq: float) -> np.ndarray:
    """Fractional table level for a cutoff in Hz on a note of ``freq`` Hz."""
    harmonic = np.maximum(np.asarray(cutoff_hz, dtype=np.float32) / np.float32(freq), 1.0)
    return np.clip(2.0 * np.log2(harmonic), 0.0, TABLE_LEVELS - 1.001).astype(np.float32)


def read_tables(tables: np.ndarray, phase: np.ndarray, level: np.ndarray | float) -> np.ndarray:
    """Read filtered tables at ``phase`` (cycles) and fractional ``level``, interpolating both."""
    position = phase * np.float32(TABLE_SIZE)
    index = position.astype(np.int32)
    frac = position - index.astype(np.float32)
    level = np.broadcast_to(np.asarray(level, dtype=np.float32), phase.shape)
    row = level.astype(np.int32)
    row_frac = level - row.astype(np.float32)
    flat = tables.reshape(-1)
    width = tables.shape[1]
    low = row * width + index
    high = low + width

    def at(offsets: np.ndarray) -> np.ndarray:
        a = flat[offsets]
        return a + frac * (flat[offsets + 1] - a)

    lower = at(low)
    return lower + row_frac * (at(high) - lower)


def filtered_osc(
    shape: str,
    freq: float,
    cutoff_hz: np.ndarray | float,
    resonance: float,
    n: int,
    sample_rate: int,
    *,
    detune_cents: float = 0.0,
    phase_start: float = 0.0,
    freq_curve: np.ndarray | None = None,
) -> np.ndarray:
    """A band-limited oscillator through a (possibly moving) resonant low-pass."""
    tuned = freq * 2.0 ** (detune_cents / 1200.0)
    tables = filtered_tables(shape, round(tuned, 2), resonance, sample_rate)
    if freq_curve is None:
        phase = constant_phase(tuned, n, sample_rate, phase_start)
    else:
        phase = varying_phase(freq_curve * np.float32(tuned / freq), sample_rate, phase_start)
    return read_tables(tables, phase, cutoff_to_level(cutoff_hz, tuned))


# ---------------------------------------------------------------- FM, additive, plucked string


def fm_tone(
    freq: float,
    n: int,
    sample_rate: int,
    ratio: float,
    index: np.ndarray | float,
    *,
    feedback_ratio: float | None = None,
) -> np.ndarray:
    """Two-operator FM: ``sin(carrier + index * sin(modulator))``."""
    carrier = constant_phase(freq, n, sample_rate)
    modulator = sine(constant_phase(freq * ratio, n, sample_rate))
    if feedback_ratio is not None:
        modulator = modulator + 0.5 * sine(constant_phase(freq * feedback_ratio, n, sample_rate))
    return np.sin(np.float32(2 * np.pi) * carrier + np.asarray(index, dtype=np.float32) * modulator)


def additive(
    freq: float,
    n: int,
    sample_rate: int,
    ratios: np.ndarray,
    amps: np.ndarray,
    decays: np.ndarray | None = None,
) -> np.ndarray:
    """Sum of sine partials at ``freq * ratios``; partials above 0.45 x sample rate are skipped.

    ``decays`` (optional) are per-partial times to fall by 60 dB; each partial is only
    computed for as long as it is audible.
    """
    out = np.zeros(n, dtype=np.float32)
    t = time_axis(n, sample_rate)
    for i, (ratio, amp) in enumerate(zip(ratios, amps)):
        partial_freq = freq * float(ratio)
        if partial_freq >= 0.45 * sample_rate or amp == 0.0:
            continue
        length = n
        if decays is not None:
            length = min(n, seconds_to_samples(1.5 * float(decays[i]), sample_rate))
        tone = np.sin(np.float32(2 * np.pi) * constant_phase(partial_freq, length, sample_rate))
        if decays is not None:
            tone *= np.exp(-np.float32(6.9 / float(decays[i])) * t[:length])
        out[:length] += np.float32(amp) * tone
    return out


def karplus_strong(
    freq: float,
    n: int,
    sample_rate: int,
    excitation: np.ndarray,
    decay: float,
) -> np.ndarray:
    """Plucked string: a delay line fed back through a two-point average.

    The loop runs one string period per step. The averaging adds half a sample of delay, so
    the integer delay is ``d = floor(period - 0.5)``; the remaining tuning error is removed by
    reading the result back slightly faster or slower (linear interpolation).
    ``excitation`` is resampled to the delay length; ``decay`` is the time to fall by 60 dB.
    """
    period = sample_rate / freq
    delay = max(2, int(np.floor(period - 0.5)))
    stretch = (delay + 0.5) / period  # > 1 means the loop is slow, so read it faster
    total = int(np.ceil(n * stretch)) + 2
    loss = np.float32(10.0 ** (-3.0 * (delay + 0.5) / (decay * sample_rate)))
    y = np.zeros(total + delay + 1, dtype=np.float32)
    source = np.interp(np.linspace(0, len(excitation) - 1, delay), np.arange(len(excitation)), excitation)
    y[1 : delay + 1] = source  # y[0] is a zero "previous sample" for the first average
    for start in range(delay + 1, len(y), delay):
        stop = min(start + delay, len(y))
        width = stop - start
        one_period_ago = y[start - delay : start - delay + width]
        and_one_more = y[start - delay - 1 : start - delay - 1 + width]
        y[start:stop] = loss * 0.5 * (one_period_ago + and_one_more)
    string = y[1:]
    positions = np.arange(n, dtype=np.float64) * stretch
    return np.interp(positions, np.arange(len(string)), string).astype(np.float32)


# ---------------------------------------------------------------- spectral filters for noise


def band_shape(n: int, sample_rate: int, low_hz: float, high_hz: float, order: int = 2) -> np.ndarray:
    """Butterworth-like band-pass magnitude on the ``rfft`` bins of an ``n``-sample signal."""
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate).astype(np.float32)
    response = np.ones_like(freqs)
    if high_hz < sample_rate / 2:
        response /= np.sqrt(1.0 + (freqs / np.float32(high_hz)) ** (2 * order))
    if low_hz > 0:
        ratio = freqs / np.float32(low_hz)
        response *= ratio**order / np.sqrt(1.0 + ratio ** (2 * order))
    return response


def spectral_filter(signal: np.ndarray, sample_rate: int, low_hz: float, high_hz: float, order: int = 2) -> np.ndarray:
    """Zero-phase band-pass by multiplying the spectrum (fine for short drum sounds)."""
    spectrum = np.fft.rfft(signal)
    spectrum *= band_shape(len(signal), sample_rate, low_hz, high_hz, order)
    return np.fft.irfft(spectrum, n=len(signal)).astype(np.float32)


def soft_clip(signal: np.ndarray, drive: float) -> np.ndarray:
    """``tanh`` saturation that leaves quiet signals at unity gain."""
    return (np.tanh(np.float32(drive) * signal) / np.float32(drive)).astype(np.float32)
