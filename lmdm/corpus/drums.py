"""Drum sounds: kicks with pitch envelopes, noise snares and claps, metallic hats and cymbals.

A drum voice has the signature ``voice(velocity, sample_rate, rng) -> float32 array``. A kit
maps General MIDI drum numbers (see ``score.DRUM_VOICES``) to voices. Like pitched voices,
velocity shapes the timbre only; the renderer applies the level.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from lmdm.corpus.score import (
    CLAP,
    CLOSED_HAT,
    CRASH,
    HIGH_TOM,
    KICK,
    LOW_TOM,
    MID_TOM,
    OPEN_HAT,
    RIDE,
    RIM,
    SHAKER,
    SNARE,
)
from lmdm.corpus.synth import exp_decay, fade_out, seconds_to_samples, soft_clip, spectral_filter, time_axis

DrumVoice = Callable[[float, int, np.random.Generator], np.ndarray]

# Square-wave partials of the classic analogue hi-hat (Hz).
_METAL_FREQS = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, n).astype(np.float32)


def kick(
    velocity: float,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    start_hz: float,
    end_hz: float,
    sweep: float,
    decay: float,
    click: float,
    drive: float,
) -> np.ndarray:
    """Sine whose pitch falls exponentially from ``start_hz`` to ``end_hz`` (time constant ``sweep``)."""
    n = seconds_to_samples(decay, sample_rate)
    t = time_axis(n, sample_rate).astype(np.float64)
    cycles = end_hz * t + (start_hz - end_hz) * sweep * (1.0 - np.exp(-t / sweep))
    tone = np.sin(2.0 * np.pi * (cycles - np.floor(cycles))).astype(np.float32) * exp_decay(n, decay, sample_rate)
    click_n = min(n, seconds_to_samples(0.004, sample_rate))
    if click > 0 and click_n > 8:
        burst = spectral_filter(_noise(click_n, rng), sample_rate, 1500.0, 7000.0)
        tone[:click_n] += click * (0.5 + 0.5 * velocity) * burst * np.linspace(1, 0, click_n, dtype=np.float32)
    return fade_out(soft_clip(tone, drive), 64)


def snare(
    velocity: float,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    tone_hz: float,
    tone_decay: float,
    noise_low: float,
    noise_high: float,
    noise_decay: float,
    noise_level: float,
) -> np.ndarray:
    """Two detuned drum-head sines plus band-passed noise for the wires."""
    n = seconds_to_samples(max(tone_decay, noise_decay), sample_rate)
    t = time_axis(n, sample_rate)
    drop = 1.0 + 0.3 * np.exp(-t / np.float32(0.01))
    angle = np.float32(2 * np.pi * tone_hz) * t * drop
    head = np.sin(angle) + 0.6 * np.sin(np.float32(1.62) * angle)
    head *= exp_decay(n, tone_decay, sample_rate)
    wires = spectral_filter(_noise(n, rng), sample_rate, noise_low, noise_high)
    wires *= exp_decay(n, noise_decay, sample_rate) * np.float32(noise_level * (0.7 + 0.5 * velocity))
    return fade_out(soft_clip(0.6 * head + wires, 1.5), 64)


def clap(
    velocity: float, sample_rate: int, rng: np.random.Generator, *, decay: float, low: float, high: float
) -> np.ndarray:
    """Band-passed noise with three quick re-triggers, like several hands."""
    n = seconds_to_samples(decay, sample_rate)
    t = time_axis(n, sample_rate)
    envelope = 0.8 * np.exp(-np.maximum(t, 0) * np.float32(6.9 / decay))
    for offset in (0.0, 0.011, 0.022):
        after = t - np.float32(offset)
        envelope += np.where(after >= 0, np.exp(-np.maximum(after, 0) / np.float32(0.004)), 0.0).astype(np.float32)
    body = spectral_filter(_noise(n, rng), sample_rate, low, high)
    return fade_out(soft_clip(0.9 * body * envelope, 1.5), 64)


def metal(
    velocity: float,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    decay: float,
    low: float,
    metallic: float,
    scale: float = 1.0,
) -> np.ndarray:
    """Hats and cymbals: a cluster of square waves and noise, high-passed, decaying."""
    n = seconds_to_samples(decay, sample_rate)
    t = time_axis(n, sample_rate)
    cluster = np.zeros(n, dtype=np.float32)
    for freq in _METAL_FREQS:
        cluster += np.sign(np.sin(np.float32(2 * np.pi * freq * scale) * t + np.float32(rng.uniform(0, 6.28))))
    source = metallic * cluster / len(_METAL_FREQS) + (1.0 - metallic) * _noise(n, rng)
    bright = spectral_filter(source, sample_rate, low, sample_rate / 2, order=3)
    envelope = exp_decay(n, decay, sample_rate) * (0.7 + 0.4 * velocity)
    return fade_out(1.6 * bright * envelope, 64)


def ride(velocity: float, sample_rate: int, rng: np.random.Generator, *, decay: float) -> np.ndarray:
    """Cymbal wash plus a pinging bell partial."""
    wash = metal(velocity, sample_rate, rng, decay=decay, low=3500.0, metallic=0.7, scale=1.3)
    t = time_axis(len(wash), sample_rate)
    ping = np.sin(np.float32(2 * np.pi * 2900.0) * t) * exp_decay(len(wash), 0.6 * decay, sample_rate)
    return 0.7 * wash + 0.15 * ping


def rim(velocity: float, sample_rate: int, rng: np.random.Generator, *, decay: float) -> np.ndarray:
    """Rim click / side stick: two short high sines and a tick of noise."""
    n = seconds_to_samples(decay, sample_rate)
    t = time_axis(n, sample_rate)
    body = np.sin(np.float32(2 * np.pi * 1700.0) * t) + 0.7 * np.sin(np.float32(2 * np.pi * 520.0) * t)
    body *= exp_decay(n, decay, sample_rate)
    body[: min(n, 24)] += _noise(min(n, 24), rng)
    return fade_out(0.6 * body, 16)


def shaker(velocity: float, sample_rate: int, rng: np.random.Generator, *, decay: float) -> np.ndarray:
    """High band of noise with a soft attack."""
    n = seconds_to_samples(decay, sample_rate)
    t = time_axis(n, sample_rate)
    envelope = np.minimum(t / np.float32(0.012), 1.0) * exp_decay(n, decay, sample_rate)
    return fade_out(0.8 * spectral_filter(_noise(n, rng), sample_rate, 3000.0, 7500.0) * envelope, 32)


def _kit(
    *,
    kick_args: dict[str, float],
    snare_args: dict[str, float],
    hat_decay: float,
    hat_low: float,
    metallic: float,
    tom_decay: float,
    clap_decay: float = 0.25,
) -> dict[int, DrumVoice]:
    p = functools.partial
    return {
        KICK: p(kick, **kick_args),
        SNARE: p(snare, **snare_args),
        CLAP: p(clap, decay=clap_decay, low=900.0, high=3500.0),
        RIM: p(rim, decay=0.05),
        CLOSED_HAT: p(metal, decay=hat_decay, low=hat_low, metallic=metallic),
        OPEN_HAT: p(metal, decay=6.0 * hat_decay, low=hat_low, metallic=metallic),
        CRASH: p(metal, decay=1.8, low=2500.0, metallic=0.35, scale=1.7),
        RIDE: p(ride, decay=1.2),
        LOW_TOM: p(kick, start_hz=150.0, end_hz=95.0, sweep=0.06, decay=tom_decay, click=0.2, drive=1.0),
        MID_TOM: p(kick, start_hz=200.0, end_hz=130.0, sweep=0.05, decay=tom_decay, click=0.2, drive=1.0),
        HIGH_TOM: p(kick, start_hz=270.0, end_hz=180.0, sweep=0.04, decay=tom_decay, click=0.2, drive=1.0),
        SHAKER: p(shaker, decay=0.12),
    }


DRUM_KITS: dict[str, dict[int, DrumVoice]] = {
    "909_drums": _kit(
        kick_args=dict(start_hz=230.0, end_hz=50.0, sweep=0.03, decay=0.5, click=0.35, drive=2.2),
        snare_args=dict(
            tone_hz=185.0, tone_decay=0.12, noise_low=1200.0, noise_high=7500.0, noise_decay=0.22, noise_level=0.9
        ),
        hat_decay=0.07,
        hat_low=6000.0,
        metallic=0.5,
        tom_decay=0.45,
    ),
    "808_drums": _kit(
        kick_args=dict(start_hz=115.0, end_hz=47.0, sweep=0.05, decay=1.2, click=0.05, drive=1.3),
        snare_args=dict(
            tone_hz=235.0, tone_decay=0.15, noise_low=1800.0, noise_high=6500.0, noise_decay=0.17, noise_level=0.7
        ),
        hat_decay=0.05,
        hat_low=6500.0,
        metallic=0.8,
        tom_decay=0.6,
    ),
    "acoustic_drums": _kit(
        kick_args=dict(start_hz=150.0, end_hz=60.0, sweep=0.02, decay=0.35, click=0.6, drive=1.2),
        snare_args=dict(
            tone_hz=205.0, tone_decay=0.09, noise_low=700.0, noise_high=7800.0, noise_decay=0.25, noise_level=1.1
        ),
        hat_decay=0.09,
        hat_low=5000.0,
        metallic=0.25,
        tom_decay=0.5,
    ),
    "break_drums": _kit(
        kick_args=dict(start_hz=180.0, end_hz=62.0, sweep=0.02, decay=0.28, click=0.5, drive=1.8),
        snare_args=dict(
            tone_hz=230.0, tone_decay=0.08, noise_low=1500.0, noise_high=7800.0, noise_decay=0.18, noise_level=1.2
        ),
        hat_decay=0.05,
        hat_low=6200.0,
        metallic=0.3,
        tom_decay=0.35,
    ),
    "trap_drums": _kit(
        kick_args=dict(start_hz=130.0, end_hz=45.0, sweep=0.045, decay=1.4, click=0.15, drive=2.5),
        snare_args=dict(
            tone_hz=250.0, tone_decay=0.07, noise_low=2000.0, noise_high=7800.0, noise_decay=0.14, noise_level=1.0
        ),
        hat_decay=0.04,
        hat_low=7000.0,
        metallic=0.6,
        tom_decay=0.5,
        clap_decay=0.3,
    ),
    "brush_drums": _kit(
        kick_args=dict(start_hz=110.0, end_hz=58.0, sweep=0.03, decay=0.3, click=0.1, drive=1.0),
        snare_args=dict(
            tone_hz=190.0, tone_decay=0.04, noise_low=900.0, noise_high=5000.0, noise_decay=0.3, noise_level=0.8
        ),
        hat_decay=0.08,
        hat_low=4500.0,
        metallic=0.2,
        tom_decay=0.4,
    ),
    "lofi_drums": _kit(
        kick_args=dict(start_hz=140.0, end_hz=55.0, sweep=0.03, decay=0.45, click=0.25, drive=1.8),
        snare_args=dict(
            tone_hz=195.0, tone_decay=0.1, noise_low=800.0, noise_high=4500.0, noise_decay=0.2, noise_level=0.9
        ),
        hat_decay=0.06,
        hat_low=3500.0,
        metallic=0.3,
        tom_decay=0.4,
    ),
}

# Kits whose every hit goes through a dusty low-pass and a coarse bit depth.
_DUSTY_KITS = frozenset({"lofi_drums"})


def render_drum(kit: str, pitch: int, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    sound = DRUM_KITS[kit][pitch](velocity, sample_rate, rng)
    if kit in _DUSTY_KITS and len(sound) > 16:
        sound = spectral_filter(sound, sample_rate, 30.0, 3800.0)
        sound = np.round(sound * 48.0) / 48.0
    return sound.astype(np.float32)
