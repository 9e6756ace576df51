"""Varied synthetic audio for codec training before the real corpus exists.

A clip is a sum of random events laid on a random beat grid: harmonic tones with ADSR envelopes
(organ/pad/lead-like, with vibrato), plucks (upper harmonics die first), filtered noise bursts
(hats/snares), pitch-dropping kicks, exponential chirps, and, when `espeak-ng` is installed,
spoken phrases in assorted languages and voices (so live voices encode sensibly too).

Every function takes a `numpy.random.Generator` and returns float32 mono audio; same seed, same audio.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from lmdm.codec.audio import resample

VOICES = ("en-us", "en-gb", "de", "fr-fr", "es", "it", "pt-br", "nl", "sv", "pl", "ru", "hi", "cmn", "ja", "sw")
VOICE_VARIANTS = ("", "+m1", "+m3", "+f1", "+f2", "+f4", "+croak", "+whisper")
WORDS = (
    "music live block latent frame sound play again low high bright dark drum bass note slow fast "
    "one two three four hello loop pattern noise voice sing tempo chord warm cold river light"
).split()


def adsr(n: int, sample_rate: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Linear attack, exponential decay to `sustain`, linear release over the last `release` seconds -> [n]."""
    t = np.arange(n) / sample_rate
    env = np.where(t < attack, t / max(attack, 1e-4), sustain + (1 - sustain) * np.exp(-(t - attack) / max(decay, 1e-4)))
    tail = max(1, int(release * sample_rate))
    env[-tail:] *= np.linspace(1, 0, min(tail, n))
    return env


def harmonic_tone(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    seconds = rng.uniform(0.1, 3.0)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = np.exp(rng.uniform(np.log(40), np.log(1500)))
    vibrato = 1 + rng.uniform(0, 0.01) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / sample_rate  # [n]
    rolloff, odd_only = rng.uniform(0.7, 2.5), rng.random() < 0.3
    out = np.zeros(n)
    for k in range(1, int(sample_rate / 2 / f0)):
        if odd_only and k % 2 == 0:
            continue
        out += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k**rolloff
    env = adsr(n, sample_rate, rng.uniform(0.002, 0.3), rng.uniform(0.05, 1.0), rng.uniform(0, 0.9), rng.uniform(0.01, 0.3))
    return out * env


def pluck(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    n = int(rng.uniform(0.2, 1.5) * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = np.exp(rng.uniform(np.log(60), np.log(1200)))
    decay, inharmonic = rng.uniform(1, 8), rng.uniform(0, 3e-4)
    out = np.zeros(n)
    for k in range(1, int(sample_rate / 2 / f0 / (1 + inharmonic * 100))):
        fk = k * f0 * np.sqrt(1 + inharmonic * k * k)
        out += np.sin(2 * np.pi * fk * t + rng.uniform(0, 2 * np.pi)) * np.exp(-decay * k**0.7 * t) / k
    return out


def noise_burst(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    n = int(rng.uniform(0.03, 0.6) * sample_rate)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    hz = np.fft.rfftfreq(n, 1 / sample_rate)
    centre, width = np.exp(rng.uniform(np.log(200), np.log(7000))), rng.uniform(0.3, 2.0)
    spectrum *= np.exp(-0.5 * (np.log(hz + 1) - np.log(centre)) ** 2 / width**2)  # log-Gaussian band
    out = np.fft.irfft(spectrum, n)
    out /= np.abs(out).max() + 1e-9
    return out * np.exp(-np.arange(n) / sample_rate * rng.uniform(5, 60))


def kick(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    n = int(rng.uniform(0.15, 0.6) * sample_rate)
    t = np.arange(n) / sample_rate
    f_end, f_start, drop = rng.uniform(35, 70), rng.uniform(100, 300), rng.uniform(20, 60)
    freq = f_end + (f_start - f_end) * np.exp(-drop * t)
    return np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * np.exp(-t * rng.uniform(5, 15))


def chirp(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    n = int(rng.uniform(0.1, 1.5) * sample_rate)
    t = np.arange(n) / sample_rate
    f_a, f_b = np.exp(rng.uniform(np.log(50), np.log(7000), size=2))
    freq = f_a * (f_b / f_a) ** (t / t[-1])  # exponential sweep
    return np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * adsr(n, sample_rate, 0.01, 1.0, 0.7, 0.05)


def speech(rng: np.random.Generator, sample_rate: int) -> np.ndarray | None:
    """A spoken phrase from espeak-ng in a random voice, or None when espeak-ng is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    voice = str(rng.choice(VOICES)) + str(rng.choice(VOICE_VARIANTS))
    text = " ".join(rng.choice(WORDS, size=rng.integers(2, 8)))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        cmd = [exe, "-w", str(wav), "-v", voice, "-s", str(rng.integers(110, 230)), "-p", str(rng.integers(10, 90)), text]
        if subprocess.run(cmd, capture_output=True, timeout=30).returncode != 0 or not wav.exists():
            return None
        data, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    return resample(data.mean(axis=1), rate, sample_rate)


EVENTS = (harmonic_tone, harmonic_tone, pluck, pluck, noise_burst, noise_burst, kick, chirp)


def synthetic_clip(rng: np.random.Generator, seconds: float, sample_rate: int = 16000, speech_prob: float = 0.3) -> np.ndarray:
    """One clip [seconds * sample_rate] float32: events on a random beat grid (or free), maybe a voice,
    over a faint noise floor (-90..-60 dB re full scale), so there is no exact digital silence: in
    training, silence outnumbers sound and pulls a log-spectral loss towards a silent output."""
    n = int(seconds * sample_rate)
    out = np.zeros(n)
    beat = 60 / rng.uniform(70, 180) / rng.choice([1, 2, 4])  # seconds per grid step
    on_grid = rng.random() < 0.7
    for _ in range(rng.integers(int(2 * seconds) + 1, int(8 * seconds) + 3)):
        event = EVENTS[rng.integers(len(EVENTS))](rng, sample_rate)
        onset_s = rng.uniform(-0.5, seconds)
        if on_grid:
            onset_s = round(onset_s / beat) * beat
        _add_at(out, event * rng.uniform(0.1, 1.0), int(onset_s * sample_rate))
    if rng.random() < speech_prob:
        voice = speech(rng, sample_rate)
        if voice is not None:
            _add_at(out, voice * rng.uniform(0.5, 2.0), int(rng.uniform(-0.5, 0.8) * seconds * sample_rate))
    peak = np.abs(out).max()
    gain = rng.uniform(0.05, 0.95) / peak if peak > 0 else 0.0
    floor = rng.standard_normal(n) * 10 ** (rng.uniform(-90, -60) / 20)
    return np.clip(out * gain + floor, -1, 1).astype(np.float32)


def synthetic_clips(count: int, seconds: float, sample_rate: int = 16000, seed: int = 0, speech_prob: float = 0.3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [synthetic_clip(rng, seconds, sample_rate, speech_prob) for _ in range(count)]


def _add_at(out: np.ndarray, event: np.ndarray, onset: int) -> None:
    """out[onset : onset + len(event)] += event, clipped to out's bounds (onset may be negative)."""
    start, stop = max(onset, 0), min(onset + len(event), len(out))
    if start < stop:
        out[start:stop] += event[start - onset : stop - onset]
