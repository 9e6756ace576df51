"""Where sketches come from: mini-notation, arrays, note lists and audio -> per-frame values.

A sketch control is a *track*: something that gives one value per latent frame, counted from the
block where the sketch took effect, and loops (a pattern over its period, an array over its
length). The values are in the language's units (docs/language.md):

    melody    MIDI pitch of the lead, 0 = rest (1..127)
    rhythm    onset strength in the frame, 0..1 (0 = no hit)
    loudness  level 0..1, where 0 is -60 dBFS (or quieter) and 1 is 0 dBFS (RMS per frame)

`sketch_add` turns the tracks in force into the model's sketch channels for one block
(`lmdm.conditioning.sketch.sketch_features`). `sketch_from_audio` hears a hummed or played line:
a YIN pitch tracker (`yin`), spectral-flux onsets (`onset_frames`) and RMS loudness, all numpy.
torchcrepe is used instead of YIN only when asked for and installed (`pitch="crepe"`).

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
from typing import Mapping, Protocol, Sequence, runtime_checkable

import attrs
import numpy as np
import torch

from lmdm.conditioning.clock import check_tempo
from lmdm.conditioning.sketch import LOUDNESS_FLOOR_DB, SKETCH_NAMES, sketch_features
from lmdm_dsl.clock import Clock, pattern_frames  # the language's musical time: one route from a pattern to frames
from lmdm_dsl.errors import DSLError
from lmdm_dsl.mini import parse_pattern, render

KINDS = SKETCH_NAMES  # ("melody", "rhythm", "loudness")
MAX_TRACK_FRAMES = 1 << 20  # ~11.6 h at 25 frames/s: far more than any loop needs


# ----------------------------------------------------------------------------------------------
# Tracks


@runtime_checkable
class Track(Protocol):
    def frames(self, offset: int, n: int) -> np.ndarray:
        """float32 [n]: the values of frames offset .. offset + n - 1 (offset 0 = where it started)."""
        ...


@attrs.frozen(eq=False)
class ArrayTrack:
    """Values per frame, looped over their length."""

    values: np.ndarray

    def frames(self, offset: int, n: int) -> np.ndarray:
        idx = (offset + np.arange(n)) % len(self.values)
        return self.values[idx].astype(np.float32)

    @property
    def period_frames(self) -> int:
        return len(self.values)


@attrs.frozen(eq=False)
class PatternTrack:
    """A mini-notation pattern (lmdm_dsl.mini.Pattern), one cycle = one bar.

    In a session it is read at the stream's clock, by the same function the language's `sketch`
    statements use (`lmdm_dsl.clock.pattern_frames`): with `bpm` and `beats_per_bar` None, the
    clock's tempo and bar lines, following every tempo change; with either given, that tempo (or
    meter) and bar 0 at the block where the sketch started. `frames` (no clock) reads it at its
    own tempo, 120 BPM in 4 unless given, from frame 0."""

    pattern: object  # lmdm_dsl.mini.Pattern
    frame_rate: float
    bpm: float | None = None
    beats_per_bar: int | None = None

    def own_clock(self, clock: Clock | None, start_block: float = 0.0) -> Clock:
        """The clock it is read at: `clock` itself, or its own tempo / meter with bar 0 at `start_block`."""
        if clock is not None and self.bpm is None and self.beats_per_bar is None:
            return clock
        bpm = self.bpm if self.bpm is not None else (120.0 if clock is None else clock.bpm)
        meter = self.beats_per_bar if self.beats_per_bar is not None else (4 if clock is None else clock.beats_per_bar)
        return Clock(bpm=bpm, beats_per_bar=meter, origin_block=start_block)

    def block_frames(self, block: int, start_block: int, clock: Clock, block_seconds: float) -> np.ndarray:
        """float32 [block frames]: the pattern over `block`, read at `own_clock(clock, start_block)`."""
        return pattern_frames(self.pattern, self.own_clock(clock, start_block), block, block_seconds, self.frame_rate)

    def frames(self, offset: int, n: int) -> np.ndarray:
        frames_per_cycle = self.own_clock(None).bar_seconds * self.frame_rate
        return render(self.pattern, frames_per_cycle, n, offset / frames_per_cycle)


def check_values(kind: str, values: np.ndarray) -> np.ndarray:
    """float32 [n >= 1] of finite values in the kind's range, or ValueError."""
    if kind not in KINDS:
        raise ValueError(f"unknown sketch kind {kind!r}: choose one of {', '.join(KINDS)}")
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or not 1 <= len(a) <= MAX_TRACK_FRAMES:
        raise ValueError(f"a {kind} sketch is one value per frame (1 to {MAX_TRACK_FRAMES} frames), got shape {list(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"a {kind} sketch must be finite")
    lo, hi = (0.0, 127.0) if kind == "melody" else (0.0, 1.0)
    if a.min() < lo or a.max() > hi:
        raise ValueError(f"{kind} values must be between {lo:g} and {hi:g}, got {a.min():g} .. {a.max():g}")
    return a.astype(np.float32)


def from_mini(text: str, kind: str, *, bpm: float | None = None, frame_rate: float = 25.0, beats_per_bar: int | None = None) -> PatternTrack:
    """A mini-notation string (docs/language.md): one cycle is one bar (see PatternTrack for the tempo)."""
    if bpm is not None:
        bpm = check_tempo(bpm)
    try:
        pattern = parse_pattern(text, kind)
    except DSLError as e:
        raise ValueError(f"{kind} sketch {text!r}: {e.message}") from None
    return PatternTrack(pattern, frame_rate, bpm, beats_per_bar)


def _note(item: object) -> tuple[float, float, float, float]:
    if not (isinstance(item, (tuple, list)) and len(item) in (3, 4)):
        raise ValueError(f"a note is (start_s, dur_s, midi) or (start_s, dur_s, midi, velocity), got {item!r}")
    start, dur, pitch = (float(x) for x in item[:3])
    velocity = float(item[3]) if len(item) == 4 else 1.0
    if not all(math.isfinite(x) for x in (start, dur, pitch, velocity)) or start < 0 or dur <= 0:
        raise ValueError(f"a note needs start >= 0 and duration > 0 (seconds), got {item!r}")
    if not 1 <= pitch <= 127 or not 0 <= velocity <= 1:
        raise ValueError(f"a note's MIDI pitch is 1..127 and velocity 0..1, got {item!r}")
    return start, dur, pitch, velocity


def notes_to_frames(notes: Sequence[Sequence[float]], kind: str, frame_rate: float = 25.0, length_s: float | None = None) -> np.ndarray:
    """MIDI-like notes [(start_s, dur_s, midi[, velocity])] -> one value per frame.

    melody: the pitch in every frame the note's gate [start, start + dur) touches (a later note
    takes over a shared frame, as the corpus annotations do); rhythm: the velocity (default 1) in
    the frame holding the note's start. The length is the last note's end (or `length_s`).
    """
    if kind not in ("melody", "rhythm"):
        raise ValueError(f"notes can drive the melody or rhythm sketch, not {kind!r}")
    parsed = sorted((_note(n) for n in notes), key=lambda n: n[0])
    if not parsed:
        raise ValueError("a note list needs at least one note")
    end = max(s + d for s, d, _, _ in parsed) if length_s is None else float(length_s)
    if not (math.isfinite(end) and end * frame_rate <= MAX_TRACK_FRAMES):  # checked before allocating
        raise ValueError(f"a {kind} sketch lasts at most {MAX_TRACK_FRAMES / frame_rate:g} s ({MAX_TRACK_FRAMES} frames), "
                         f"these notes end at {end:g} s")
    frames = max(1, math.ceil(end * frame_rate - 1e-9))
    out = np.zeros(frames, dtype=np.float32)
    for start, dur, pitch, velocity in parsed:
        first = int(math.floor(start * frame_rate + 1e-9))
        if first >= frames:
            continue
        if kind == "melody":
            out[first : max(first + 1, math.ceil((start + dur) * frame_rate - 1e-9))] = pitch
        else:
            out[first] = max(out[first], velocity)
    return check_values(kind, out)


def as_track(kind: str, source: object, *, frame_rate: float = 25.0, bpm: float | None = None, beats_per_bar: int | None = None) -> Track:
    """Any sketch source -> a Track: a mini-notation string, a Track, a note list, or values per frame
    (numpy array, torch tensor or list of numbers)."""
    if kind not in KINDS:
        raise ValueError(f"unknown sketch kind {kind!r}: choose one of {', '.join(KINDS)}")
    if isinstance(source, str):
        return from_mini(source, kind, bpm=bpm, frame_rate=frame_rate, beats_per_bar=beats_per_bar)
    if isinstance(source, (ArrayTrack, PatternTrack)):
        return source
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], (list, tuple)):
        return ArrayTrack(notes_to_frames(source, kind, frame_rate))
    if isinstance(source, (np.ndarray, list, tuple)):
        values = np.asarray(source, dtype=np.float64)
        if values.ndim == 2 and 1 in values.shape:  # [1, n] or [n, 1]
            values = values.reshape(-1)
        return ArrayTrack(check_values(kind, values))
    raise ValueError(f"a {kind} sketch is a mini-notation string, values per frame or a note list, got {type(source).__name__}")


def level_to_db(level: np.ndarray) -> np.ndarray:
    """Loudness level 0..1 -> dBFS (the inverse of lmdm.conditioning.sketch.loudness_feature)."""
    return LOUDNESS_FLOOR_DB + np.asarray(level, dtype=np.float32) * -LOUDNESS_FLOOR_DB


def db_to_level(db: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(db, dtype=np.float64) - LOUDNESS_FLOOR_DB) / -LOUDNESS_FLOOR_DB, 0.0, 1.0).astype(np.float32)


def sketch_add(tracks: Mapping[str, tuple[Track, int]], block: int, block_frames: int, *, clock: Clock | None = None,
               block_seconds: float | None = None) -> torch.Tensor:
    """The sketch channels [1, SKETCH_DIM, block_frames] of `block`, from tracks {kind: (track, start block)}.

    A kind with no track is absent (all zeros, `present` 0), as training shows a dropped control.
    Patterns are read at `clock` (the stream's; blocks of `block_seconds`), as PatternTrack says;
    without a clock, at their own tempo from their start.
    """
    values, present = [], []
    for kind in KINDS:
        entry = tracks.get(kind)
        if entry is None:
            values.append(np.zeros(block_frames, dtype=np.float32))
            present.append(0.0)
        else:
            track, start = entry
            if isinstance(track, PatternTrack) and clock is not None and block_seconds is not None:
                values.append(track.block_frames(block, start, clock, block_seconds))
            else:
                values.append(track.frames((block - start) * block_frames, block_frames))
            present.append(1.0)
    melody, onsets, level = (torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))[None] for v in values)
    loudness_db = torch.from_numpy(level_to_db(level.numpy()))
    return sketch_features(melody, onsets, loudness_db, torch.tensor([present]))


# ----------------------------------------------------------------------------------------------
# Hearing a line: pitch (YIN), onsets (spectral flux), loudness (RMS)


def _mono(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float64)
    if a.ndim == 2:
        a = a.mean(axis=1)
    if a.ndim != 1:
        raise ValueError(f"audio must be [n] or [n, channels], got shape {list(np.shape(audio))}")
    return np.where(np.isfinite(a), a, 0.0)


def _frames(x: np.ndarray, centres: np.ndarray, size: int) -> np.ndarray:
    """[len(centres), size] windows of x centred on the given samples (zero outside x)."""
    pad = size
    xp = np.pad(x, (pad, pad))
    idx = (centres - size // 2 + pad)[:, None] + np.arange(size)[None, :]
    return xp[idx]


def yin(
    audio: np.ndarray, sample_rate: int, hop: int, *, fmin: float = 50.0, fmax: float = 1000.0,
    threshold: float = 0.15, silence_db: float = -50.0,
) -> np.ndarray:
    """Fundamental frequency in Hz per frame (frame f covers samples [f hop, (f + 1) hop)), 0 = unvoiced.

    YIN (de Cheveigné & Kawahara 2002): the difference function d(tau) of a window with itself
    shifted by tau, cumulative-mean normalised; the first dip below `threshold` (else no pitch),
    refined to its local minimum and by parabolic interpolation. Frames quieter than `silence_db`
    (RMS, dBFS) are unvoiced.
    """
    x = _mono(audio)
    n_frames = len(x) // hop
    if n_frames == 0:
        return np.zeros(0, dtype=np.float32)
    tau_min = max(2, int(sample_rate / fmax))
    tau_max = int(math.ceil(sample_rate / fmin))
    w = tau_max + 1  # integration window
    size = w + tau_max + 1
    frames = _frames(x, np.arange(n_frames) * hop + hop // 2, size)  # [F, size]
    n_fft = 1 << int(math.ceil(math.log2(2 * size)))
    spec_a = np.fft.rfft(frames[:, :w], n_fft)
    spec_b = np.fft.rfft(frames, n_fft)
    corr = np.fft.irfft(np.conj(spec_a) * spec_b, n_fft)[:, : tau_max + 1]  # sum_j x[j] x[j + tau], j < w
    sq = np.cumsum(np.pad(frames**2, ((0, 0), (1, 0))), axis=1)
    e0 = sq[:, w][:, None]  # sum_{j<w} x[j]^2
    taus = np.arange(tau_max + 1)
    e_tau = sq[:, taus + w] - sq[:, taus]  # sum_{j<w} x[j + tau]^2
    d = np.maximum(e0 + e_tau - 2 * corr, 0.0)  # [F, tau_max + 1]
    cum = np.cumsum(d[:, 1:], axis=1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    f0 = np.zeros(n_frames, dtype=np.float32)
    rms_db = 10 * np.log10(np.maximum(np.mean(frames[:, :w] ** 2, axis=1), 1e-20))
    for i in range(n_frames):
        if rms_db[i] < silence_db:
            continue
        c = cmnd[i]
        below = np.nonzero(c[tau_min:] < threshold)[0]
        if len(below) == 0:
            continue
        t = tau_min + below[0]
        while t + 1 <= tau_max and c[t + 1] < c[t]:
            t += 1
        shift = 0.0
        if tau_min < t < tau_max:
            a, b, cc = c[t - 1], c[t], c[t + 1]
            den = a - 2 * b + cc
            shift = 0.5 * (a - cc) / den if den > 0 else 0.0
        f0[i] = sample_rate / (t + shift)
    return f0


def hz_to_midi(f0: np.ndarray) -> np.ndarray:
    """Hz -> MIDI note numbers (rounded); 0 stays 0 (unvoiced)."""
    f = np.asarray(f0, dtype=np.float64)
    midi = np.where(f > 0, np.round(69 + 12 * np.log2(np.maximum(f, 1e-9) / 440.0)), 0.0)
    return np.clip(midi, 0, 127).astype(np.float32)


def crepe_f0(audio: np.ndarray, sample_rate: int, hop: int) -> np.ndarray:
    """torchcrepe's pitch per frame (0 where its periodicity is low). Needs `pip install torchcrepe`."""
    try:
        import torchcrepe  # type: ignore
    except ImportError:
        raise ValueError("pitch='crepe' needs torchcrepe (pip install torchcrepe); pitch='yin' needs nothing") from None
    x = torch.tensor(_mono(audio), dtype=torch.float32)[None]
    f0, periodicity = torchcrepe.predict(x, sample_rate, hop, 50.0, 1000.0, model="tiny", return_periodicity=True, batch_size=512)
    f0 = torch.where(periodicity > 0.5, f0, torch.zeros_like(f0))[0].numpy()
    return f0[: len(_mono(audio)) // hop].astype(np.float32)


def frame_loudness_db(audio: np.ndarray, hop: int) -> np.ndarray:
    """RMS per frame in dBFS, floored at -100 (as the corpus annotations measure the mix)."""
    x = _mono(audio)
    n = len(x) // hop
    energy = np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) if n else np.zeros(0)
    return np.maximum(10 * np.log10(np.maximum(energy, 1e-30)), -100.0).astype(np.float32)


def onset_strength(audio: np.ndarray, sample_rate: int, hop: int, n_fft: int = 512) -> np.ndarray:
    """Positive log-spectral flux every `hop` samples (a Hann window centred on each hop), [frames]."""
    x = _mono(audio)
    n = len(x) // hop
    if n == 0:
        return np.zeros(0)
    frames = _frames(x, np.arange(n) * hop, n_fft) * np.hanning(n_fft)
    mag = np.log1p(10.0 * np.abs(np.fft.rfft(frames, axis=1)))
    # SuperFlux-style: compare with the previous frame's max over neighbouring bins, so leakage
    # and vibrato (energy moving to a next-door bin) do not count as onsets
    wide = np.maximum(mag, np.maximum(np.roll(mag, 1, axis=1), np.roll(mag, -1, axis=1)))
    prev = np.concatenate((wide[:1], wide[:-1]))
    return np.maximum(mag - prev, 0.0).sum(axis=1)


def onset_times(audio: np.ndarray, sample_rate: int, *, hop: int | None = None, delta: float = 0.1, min_gap_s: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(onset times in seconds, strengths 0..1): peaks of the spectral flux above a moving median.

    A peak must be the largest within +-`min_gap_s`, and exceed the median of the surrounding
    0.5 s plus `delta` x the largest flux. Strengths are peak heights over the largest peak.
    """
    hop = hop or max(1, sample_rate // 100)  # 10 ms
    flux = onset_strength(audio, sample_rate, hop)
    if len(flux) < 3 or flux.max() <= 0:
        return np.zeros(0), np.zeros(0)
    flux = flux / flux.max()
    half = max(1, int(0.25 * sample_rate / hop))
    padded = np.pad(flux, (half, half), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    baseline = np.median(windows, axis=1)
    gap = max(1, int(min_gap_s * sample_rate / hop))
    padded_max = np.pad(flux, (gap, gap))
    local_max = np.lib.stride_tricks.sliding_window_view(padded_max, 2 * gap + 1).max(axis=1)
    peaks = np.nonzero((flux >= local_max) & (flux > baseline + delta) & (flux > 0))[0]
    # plateaus: keep the first frame of equal neighbours
    peaks = peaks[np.concatenate(([True], np.diff(peaks) > gap))] if len(peaks) else peaks
    return peaks * hop / sample_rate, flux[peaks]


def onset_frames(audio: np.ndarray, sample_rate: int, frame_rate: float = 25.0, **kw) -> np.ndarray:
    """Onsets per latent frame (the frame holding the onset time): strength 0..1, 0 = none."""
    n = int(len(_mono(audio)) / sample_rate * frame_rate + 1e-9)
    times, strengths = onset_times(audio, sample_rate, **kw)
    out = np.zeros(n, dtype=np.float32)
    for t, s in zip(times, strengths):
        f = int(t * frame_rate + 1e-9)
        if f < n:
            out[f] = max(out[f], float(np.clip(s, 0.0, 1.0)))
    return out


def median3(x: np.ndarray) -> np.ndarray:
    """A 3-frame median filter (edges kept): removes one-frame octave slips of the tracker."""
    if len(x) < 3:
        return x.copy()
    out = x.copy()
    out[1:-1] = np.median(np.stack((x[:-2], x[1:-1], x[2:])), axis=0)
    return out


def sketch_from_audio(
    audio: np.ndarray, sample_rate: int, frame_rate: float = 25.0, *, pitch: str = "yin", silence_db: float = -50.0,
) -> dict[str, np.ndarray]:
    """Hear a hummed or played line: {melody, rhythm, loudness}, one value per latent frame.

    melody: MIDI of the tracked pitch (0 when unvoiced or quieter than `silence_db`), smoothed by
    a 3-frame median; rhythm: onset strengths (`onset_frames`); loudness: RMS level 0..1.
    Pass the result to `LiveSession.set_sketch(**sketch)` (any subset of it).
    """
    hop = sample_rate / frame_rate
    if abs(hop - round(hop)) > 1e-9:
        raise ValueError(f"sample_rate / frame_rate must be a whole number of samples, got {hop}")
    hop = int(round(hop))
    if pitch == "yin":
        f0 = yin(audio, sample_rate, hop, silence_db=silence_db)
    elif pitch == "crepe":
        f0 = crepe_f0(audio, sample_rate, hop)
    else:
        raise ValueError(f"unknown pitch tracker {pitch!r}: yin or crepe")
    loud_db = frame_loudness_db(audio, hop)
    melody = median3(hz_to_midi(f0))
    melody = np.where(loud_db[: len(melody)] >= silence_db, melody, 0.0).astype(np.float32)
    rhythm = onset_frames(audio, sample_rate, frame_rate)[: len(melody)]
    if len(melody) == 0:
        raise ValueError(f"audio shorter than one frame ({hop} samples)")
    return {"melody": melody, "rhythm": rhythm, "loudness": db_to_level(loud_db)}
