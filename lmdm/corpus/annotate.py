"""Per-frame annotations from the score (and loudness from the audio).

Frame ``f`` covers samples ``[f * hop, (f + 1) * hop)`` with ``hop = sample_rate / frame_rate``
(640 at 16 kHz / 25 fps). A note starts in the frame that holds its first sample and sounds in
every frame its gate ``[start, start + duration)`` touches; release tails are not counted.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from lmdm.corpus.score import SECTION_NAMES, Note, Score

LOUDNESS_FLOOR_DB = -100.0


@attrs.frozen(eq=False)
class Annotations:
    """Frame-rate annotations; every array has ``frames`` rows."""

    frame_rate: float
    melody: np.ndarray  # [F] float32: MIDI pitch of the lead; 0 where the lead is silent
    onsets: np.ndarray  # [F] float32: loudest velocity (0..1) of any note starting in the frame
    drum_onsets: np.ndarray  # [F] float32: the same, drum notes only
    loudness_db: np.ndarray  # [F] float32: RMS of the mix in dBFS, floored at -100
    chroma: np.ndarray  # [F, 12] float32: loudest velocity of pitched notes sounding, per pitch class (C=0)
    beat_phase: np.ndarray  # [F] float32 in [0, 1): position within the beat at the frame start
    bar_phase: np.ndarray  # [F] float32 in [0, 1): position within the 4-beat bar at the frame start
    section: np.ndarray  # [F] int8: index into SECTION_NAMES

    @property
    def frames(self) -> int:
        return len(self.melody)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in attrs.fields(Annotations) if f.name != "frame_rate"}

    def slice(self, start: int, stop: int) -> Annotations:
        """Frames ``start:stop`` as a new ``Annotations``."""
        return Annotations(self.frame_rate, **{name: a[start:stop] for name, a in self.arrays().items()})


ARRAY_NAMES: tuple[str, ...] = tuple(f.name for f in attrs.fields(Annotations) if f.name != "frame_rate")


def hop_size(sample_rate: int, frame_rate: float) -> int:
    hop = sample_rate / frame_rate
    if abs(hop - round(hop)) > 1e-9 or hop < 1:
        raise ValueError(f"sample_rate / frame_rate must be a whole number of samples, got {hop}")
    return int(round(hop))


def gate_frames(note: Note, sample_rate: int, hop: int, frames: int) -> tuple[int, int]:
    """Frames ``[first, stop)`` the note's gate touches, clipped to the example."""
    start = int(round(note.start * sample_rate))
    end = int(round(note.end * sample_rate))
    first = max(0, start // hop)
    stop = min(frames, math.ceil(end / hop)) if end > 0 else 0
    return first, max(first, stop)


def onset_frame(note: Note, sample_rate: int, hop: int) -> int:
    return int(round(note.start * sample_rate)) // hop


def frame_loudness(audio: np.ndarray, hop: int) -> np.ndarray:
    frames = len(audio) // hop
    energy = np.mean(audio[: frames * hop].astype(np.float64).reshape(frames, hop) ** 2, axis=1)
    return np.maximum(10.0 * np.log10(np.maximum(energy, 1e-30)), LOUDNESS_FLOOR_DB).astype(np.float32)


def phases(frames: int, frame_rate: float, tempo: float) -> tuple[np.ndarray, np.ndarray]:
    """(beat phase, bar phase) at each frame start; the example starts on a downbeat."""
    beats = np.arange(frames, dtype=np.float64) / frame_rate * tempo / 60.0
    return wrap_phase(beats), wrap_phase(beats / 4.0)


def wrap_phase(cycles: np.ndarray) -> np.ndarray:
    """Fractional part as float32 in [0, 1) (a value that rounds up to 1.0 wraps to 0)."""
    phase = (cycles % 1.0).astype(np.float32)
    return np.where(phase >= 1.0, np.float32(0.0), phase)


def annotate(score: Score, audio: np.ndarray, sample_rate: int, frame_rate: float) -> Annotations:
    hop = hop_size(sample_rate, frame_rate)
    frames = len(audio) // hop
    melody = np.zeros(frames, dtype=np.float32)
    onsets = np.zeros(frames, dtype=np.float32)
    drum_onsets = np.zeros(frames, dtype=np.float32)
    chroma = np.zeros((frames, 12), dtype=np.float32)
    for note in sorted(score.notes, key=lambda n: n.start):
        frame = onset_frame(note, sample_rate, hop)
        if 0 <= frame < frames:
            onsets[frame] = max(onsets[frame], note.velocity)
            if note.stem == "drums":
                drum_onsets[frame] = max(drum_onsets[frame], note.velocity)
        if note.stem == "drums":
            continue
        first, stop = gate_frames(note, sample_rate, hop, frames)
        column = chroma[first:stop, note.pitch % 12]
        np.maximum(column, note.velocity, out=column)
        if note.stem == "lead":
            melody[first:stop] = note.pitch  # a later note takes over a shared frame
    section = np.zeros(frames, dtype=np.int8)
    times = np.arange(frames) / frame_rate
    for part in score.sections:
        section[(times >= part.start) & (times < part.end)] = SECTION_NAMES.index(part.name)
    beat_phase, bar_phase = phases(frames, frame_rate, score.tempo)
    return Annotations(
        frame_rate=frame_rate,
        melody=melody,
        onsets=onsets,
        drum_onsets=drum_onsets,
        loudness_db=frame_loudness(audio, hop),
        chroma=chroma,
        beat_phase=beat_phase,
        bar_phase=bar_phase,
        section=section,
    )
