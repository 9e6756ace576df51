"""Pitched instruments: one small function per timbre, built from ``synth`` blocks.

Every voice has the signature ``voice(freq, gate, velocity, sample_rate, rng) -> float32 array``:
``gate`` is how long the key is held (seconds), the returned sound includes the release tail,
``velocity`` (0..1) changes the *timbre* (brighter when harder) but not the level: the renderer
multiplies by velocity afterwards. ``rng`` supplies any noise, so a voice is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lmdm.corpus.synth import (
    additive,
    adsr,
    constant_phase,
    exp_decay,
    filtered_osc,
    fm_tone,
    karplus_strong,
    seconds_to_samples,
    sine,
    soft_clip,
    spectral_filter,
    time_axis,
    varying_phase,
    vibrato,
)

Voice = Callable[[float, float, float, int, np.random.Generator], np.ndarray]


def _length(gate: float, release: float, sample_rate: int) -> int:
    return seconds_to_samples(gate, sample_rate) + seconds_to_samples(release, sample_rate)


# ---------------------------------------------------------------- bass


def acid_bass(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Saw through a resonant low-pass with a fast, velocity-dependent filter envelope."""
    env = adsr(gate, 0.003, 0.5, 0.75, 0.04, sample_rate)
    t = time_axis(len(env), sample_rate)
    cutoff = 220.0 + (300.0 + 2800.0 * velocity**2) * np.exp(-t / np.float32(0.06 + 0.12 * velocity))
    tone = filtered_osc("saw", freq, cutoff, 6.0, len(env), sample_rate)
    return soft_clip(1.3 * tone * env, 1.8)


def sub_bass(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Sine with a touch of second harmonic, gently saturated."""
    env = adsr(gate, 0.006, 1.0, 0.9, 0.06, sample_rate)
    phase = constant_phase(freq, len(env), sample_rate)
    tone = sine(phase) + 0.12 * sine((2.0 * phase) % 1.0)
    return soft_clip(tone * env, 1.2 + velocity)


def bass_808(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Long sine boom with a short downward pitch blip and saturation (trap '808')."""
    env = adsr(gate, 0.002, 3.0, 0.35, 0.15, sample_rate)
    t = time_axis(len(env), sample_rate)
    curve = np.float32(freq) * (1.0 + 0.8 * np.exp(-t / np.float32(0.018)))
    tone = sine(varying_phase(curve, sample_rate))
    return soft_clip(tone * env, 2.0 + 2.0 * velocity)


def reese_bass(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Three detuned saws, low-passed, with a slowly moving cutoff (drum & bass 'reese')."""
    env = adsr(gate, 0.01, 1.0, 0.9, 0.08, sample_rate)
    t = time_axis(len(env), sample_rate)
    cutoff = 260.0 + 240.0 * (0.5 + 0.5 * np.sin(np.float32(2 * np.pi * 0.7) * t)) + 300.0 * velocity
    tone = sum(
        filtered_osc("saw", freq, cutoff, 1.2, len(env), sample_rate, detune_cents=c, phase_start=p)
        for c, p in ((-14.0, 0.0), (0.0, 0.33), (13.0, 0.71))
    )
    return soft_clip(0.5 * tone * env, 1.5)


def fm_bass(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Two-operator FM bass with a decaying index and a sine sub."""
    env = adsr(gate, 0.002, 0.8, 0.55, 0.05, sample_rate)
    t = time_axis(len(env), sample_rate)
    index = 0.6 + 3.0 * velocity * np.exp(-t / np.float32(0.09))
    sub = sine(constant_phase(freq, len(env), sample_rate))
    tone = 0.7 * fm_tone(freq, len(env), sample_rate, 1.0, index) + 0.5 * sub
    return soft_clip(tone * env, 1.2)


def synth_bass(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Square + saw with a moderate filter envelope (pop, synthwave)."""
    env = adsr(gate, 0.003, 0.6, 0.7, 0.05, sample_rate)
    t = time_axis(len(env), sample_rate)
    cutoff = 300.0 + (600.0 + 1200.0 * velocity) * np.exp(-t / np.float32(0.15))
    tone = filtered_osc("saw", freq, cutoff, 1.8, len(env), sample_rate) + 0.6 * filtered_osc(
        "square", freq / 2.0, cutoff, 1.0, len(env), sample_rate
    )
    return soft_clip(0.8 * tone * env, 1.3)


def upright_bass(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Plucked string with a dark excitation and a short damped release (jazz, bossa, lo-fi)."""
    n = _length(gate, 0.08, sample_rate)
    excitation = np.cumsum(rng.standard_normal(64)).astype(np.float32)
    excitation -= excitation.mean()
    excitation *= np.hanning(64).astype(np.float32)
    string = karplus_strong(freq, n, sample_rate, excitation, 1.2 + 0.6 * velocity)
    body = 0.4 * sine(constant_phase(freq, n, sample_rate)) * exp_decay(n, 0.9, sample_rate)
    env = adsr(gate, 0.004, 30.0, 1.0, 0.08, sample_rate)
    out = (string / max(np.abs(string).max(), 1e-6) + body) * env
    return soft_clip(out, 1.0)


# ---------------------------------------------------------------- keys, pads, plucks


def electric_piano(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """FM electric piano: 1:1 FM with a decaying index plus a short high 'tine' partial."""
    decay = float(np.clip(3.0 * (220.0 / freq) ** 0.4, 0.8, 5.0))
    env = adsr(gate, 0.002, decay, 0.0, 0.25, sample_rate)
    n = len(env)
    t = time_axis(n, sample_rate)
    index = 0.25 + (0.6 + 2.2 * velocity) * np.exp(-t / np.float32(0.35))
    tone = fm_tone(freq, n, sample_rate, 1.0, index)
    if 14.0 * freq < 0.45 * sample_rate:
        tone += 0.25 * velocity * sine(constant_phase(14.0 * freq, n, sample_rate)) * exp_decay(n, 0.08, sample_rate)
    return 0.8 * tone * env


def piano(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Additive piano: slightly stretched partials, higher ones dying faster, a felt-hammer knock."""
    count = 12
    k = np.arange(1, count + 1, dtype=np.float64)
    stiffness = 0.0004
    ratios = k * np.sqrt(1.0 + stiffness * k**2)
    amps = (1.0 / k**1.2) * np.exp(-(k - 1) * (0.45 - 0.3 * velocity))
    base_decay = float(np.clip(4.0 * (220.0 / freq) ** 0.5, 1.0, 8.0))
    decays = base_decay / (1.0 + 0.45 * (k - 1))
    damper = adsr(gate, 0.001, 60.0, 1.0, 0.18, sample_rate)
    n = len(damper)
    tone = additive(freq, n, sample_rate, ratios, amps, decays)
    knock_n = min(n, seconds_to_samples(0.012, sample_rate))
    if knock_n > 8:
        knock = spectral_filter(rng.standard_normal(knock_n).astype(np.float32), sample_rate, 400.0, 2500.0)
        tone[:knock_n] += 0.08 * velocity * knock * np.linspace(1.0, 0.0, knock_n, dtype=np.float32)
    return 0.6 * tone * damper


def organ(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Additive drawbar organ (16', 8', 5 1/3', 4', 2 2/3', 2') with tremolo and key click."""
    env = adsr(gate, 0.006, 1.0, 1.0, 0.06, sample_rate)
    n = len(env)
    ratios = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    amps = np.array([0.6, 1.0, 0.7, 0.45, 0.25, 0.2])
    tone = additive(freq, n, sample_rate, ratios, amps)
    t = time_axis(n, sample_rate)
    tone *= 1.0 + 0.08 * np.sin(np.float32(2 * np.pi * 6.3) * t)
    click_n = min(n, seconds_to_samples(0.004, sample_rate))
    tone[:click_n] += 0.15 * velocity * rng.standard_normal(click_n).astype(np.float32)
    return 0.32 * tone * env


def supersaw_pad(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Three detuned saws, slow attack, a filter that opens over the first seconds."""
    env = adsr(gate, 0.35, 2.0, 0.8, 0.9, sample_rate)
    n = len(env)
    t = time_axis(n, sample_rate)
    cutoff = 2.5 * freq + (700.0 + 900.0 * velocity) * (1.0 - np.exp(-t / np.float32(1.2)))
    voices = ((-12.0, 0.1), (0.0, 0.0), (12.0, 0.6))
    tone = sum(filtered_osc("saw", freq, cutoff, 0.9, n, sample_rate, detune_cents=c, phase_start=p) for c, p in voices)
    return 0.4 * tone * env


def warm_pad(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Detuned triangles and a soft square an octave down: round and dark (ambient, lo-fi)."""
    env = adsr(gate, 0.7, 3.0, 0.85, 1.2, sample_rate)
    n = len(env)
    curve = vibrato(freq, n, sample_rate, 0.25, 6.0, 0.0)
    tone = sum(
        filtered_osc("triangle", freq, 8.0 * freq, 0.7, n, sample_rate, detune_cents=c, phase_start=p, freq_curve=curve)
        for c, p in ((-6.0, 0.0), (6.0, 0.4))
    )
    tone += 0.5 * filtered_osc("square", freq / 2.0, 600.0 + 400.0 * velocity, 0.7, n, sample_rate)
    return 0.4 * tone * env


def strings(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """String ensemble: three detuned saws with vibrato, moderate attack and release."""
    env = adsr(gate, 0.25, 2.0, 0.85, 0.6, sample_rate)
    n = len(env)
    curve = vibrato(freq, n, sample_rate, 5.2, 9.0, 0.2)
    cutoff = 3.0 * freq + 800.0 + 800.0 * velocity
    tone = sum(
        filtered_osc("saw", freq, cutoff, 0.8, n, sample_rate, detune_cents=c, phase_start=p, freq_curve=curve)
        for c, p in ((-9.0, 0.0), (2.0, 0.6), (10.0, 0.25))
    )
    return 0.4 * tone * env


def chord_stab(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Short saw + square stab with a snappy filter envelope (house, techno)."""
    env = adsr(gate, 0.002, 0.35, 0.3, 0.12, sample_rate)
    n = len(env)
    t = time_axis(n, sample_rate)
    cutoff = 400.0 + (1200.0 + 2500.0 * velocity) * np.exp(-t / np.float32(0.08))
    tone = filtered_osc("saw", freq, cutoff, 2.5, n, sample_rate, detune_cents=-5.0) + filtered_osc(
        "square", freq, cutoff, 2.5, n, sample_rate, detune_cents=5.0, phase_start=0.5
    )
    return 0.45 * tone * env


def _pluck_excitation(length: int, brightness: float, position: float, rng: np.random.Generator) -> np.ndarray:
    """Noise burst for a plucked string: smoothed for darkness, comb-notched for pluck position."""
    noise = rng.uniform(-1.0, 1.0, length).astype(np.float32)
    smooth = max(1, int(round((1.0 - brightness) * 8)))
    if smooth > 1:
        noise = np.convolve(noise, np.ones(smooth, dtype=np.float32) / smooth, mode="same")
    shift = max(1, int(position * length))
    return noise - np.roll(noise, shift)


def synth_pluck(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Bright Karplus-Strong pluck."""
    n = _length(min(gate, 1.5), 0.25, sample_rate)
    string = karplus_strong(freq, n, sample_rate, _pluck_excitation(256, 0.6 + 0.4 * velocity, 0.13, rng), 1.6)
    env = adsr(min(gate, 1.5), 0.001, 60.0, 1.0, 0.25, sample_rate)
    return 0.8 * string / max(np.abs(string).max(), 1e-6) * env


def nylon_guitar(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Soft Karplus-Strong string with a longer ring (bossa, lo-fi)."""
    n = _length(gate, 0.15, sample_rate)
    string = karplus_strong(freq, n, sample_rate, _pluck_excitation(256, 0.2 + 0.3 * velocity, 0.2, rng), 2.6)
    env = adsr(gate, 0.001, 60.0, 1.0, 0.15, sample_rate)
    return 0.8 * string / max(np.abs(string).max(), 1e-6) * env


def clean_guitar(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Brighter steel-ish Karplus-Strong string for strummed pop chords."""
    n = _length(gate, 0.1, sample_rate)
    string = karplus_strong(freq, n, sample_rate, _pluck_excitation(256, 0.55 + 0.35 * velocity, 0.1, rng), 2.0)
    env = adsr(gate, 0.001, 60.0, 1.0, 0.1, sample_rate)
    return 0.7 * string / max(np.abs(string).max(), 1e-6) * env


def fm_bell(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Inharmonic FM bell (modulator at 3.5 x) with a long ring."""
    env = adsr(gate, 0.001, 3.5, 0.0, 1.2, sample_rate)
    n = len(env)
    t = time_axis(n, sample_rate)
    index = 0.3 + (1.5 + 2.5 * velocity) * np.exp(-t / np.float32(0.6))
    return 0.55 * fm_tone(freq, n, sample_rate, 3.5, index) * env


def mallet(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Marimba-like mallet: three partials at 1, 4 and 10 x, the upper ones short."""
    n = _length(0.0, 1.0, sample_rate)
    amps = np.array([1.0, 0.35 * (0.5 + velocity), 0.12 * velocity])
    tone = additive(freq, n, sample_rate, np.array([1.0, 4.0, 10.0]), amps, np.array([0.9, 0.25, 0.06]))
    return 0.7 * tone


# ---------------------------------------------------------------- leads


def saw_lead(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Two detuned saws, resonant filter envelope, delayed vibrato."""
    env = adsr(gate, 0.01, 0.6, 0.8, 0.12, sample_rate)
    n = len(env)
    t = time_axis(n, sample_rate)
    curve = vibrato(freq, n, sample_rate, 5.5, 14.0, 0.25)
    cutoff = 1400.0 + (1500.0 + 1500.0 * velocity) * np.exp(-t / np.float32(0.25))
    tone = filtered_osc("saw", freq, cutoff, 2.0, n, sample_rate, detune_cents=-7.0, freq_curve=curve) + filtered_osc(
        "saw", freq, cutoff, 2.0, n, sample_rate, detune_cents=7.0, phase_start=0.37, freq_curve=curve
    )
    return 0.45 * tone * env


def square_lead(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Hollow square lead with a triangle an octave down and vibrato."""
    env = adsr(gate, 0.008, 0.8, 0.85, 0.1, sample_rate)
    n = len(env)
    curve = vibrato(freq, n, sample_rate, 5.0, 12.0, 0.3)
    tone = filtered_osc("square", freq, 1800.0 + 1200.0 * velocity, 1.0, n, sample_rate, freq_curve=curve)
    tone += 0.4 * filtered_osc("triangle", freq / 2.0, 4000.0, 0.7, n, sample_rate)
    return 0.5 * tone * env


def soft_lead(freq: float, gate: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Flute-like: near-sine tone with breath noise and vibrato."""
    env = adsr(gate, 0.06, 1.0, 0.9, 0.12, sample_rate)
    n = len(env)
    curve = vibrato(freq, n, sample_rate, 4.8, 12.0, 0.2)
    tone = filtered_osc("triangle", freq, 3.0 * freq, 0.7, n, sample_rate, freq_curve=curve)
    breath = spectral_filter(rng.standard_normal(n).astype(np.float32), sample_rate, 0.8 * freq, 3.0 * freq + 1500.0)
    return 0.7 * (tone + (0.08 + 0.06 * velocity) * breath) * env


PITCHED_VOICES: dict[str, Voice] = {
    "acid_bass": acid_bass,
    "sub_bass": sub_bass,
    "808_bass": bass_808,
    "reese_bass": reese_bass,
    "fm_bass": fm_bass,
    "synth_bass": synth_bass,
    "upright_bass": upright_bass,
    "electric_piano": electric_piano,
    "piano": piano,
    "organ": organ,
    "supersaw_pad": supersaw_pad,
    "warm_pad": warm_pad,
    "strings": strings,
    "chord_stab": chord_stab,
    "synth_pluck": synth_pluck,
    "nylon_guitar": nylon_guitar,
    "clean_guitar": clean_guitar,
    "fm_bell": fm_bell,
    "mallet": mallet,
    "saw_lead": saw_lead,
    "square_lead": square_lead,
    "soft_lead": soft_lead,
}
