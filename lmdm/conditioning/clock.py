"""The clock as a model input: the tempo and where each frame sits in its beat and bar.

A model trained with a clock has `CLOCK_INPUT = ("clock", 6)` among its extra additive inputs.
On every target frame (like the sketches; context frames carry none, their K/V are cached):

    sin 2π beat_phase, cos 2π beat_phase, sin 2π bar_phase, cos 2π bar_phase, tempo, present

    beat_phase, bar_phase  position in the beat / bar at the frame's start, in [0, 1)
    tempo                  log2(bpm / 120): -1 at 60 BPM, 0 at 120, 0.58 at 180
    present                1; a clock that is not given is all zeros, present included

In training the phases come from the corpus's annotations (`beat_phase`, `bar_phase`, 25 frames/s)
and the tempo from how fast `beat_phase` advances. In a `LiveSession` they come from the
session's `Clock` (lmdm_dsl.clock): its tempo, its meter and the block where its bar 1 starts
(`origin_block`, a fraction of a block when the bars follow Ableton Link's; frames before it
count back from bar 1). Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np
import torch

from lmdm_dsl.values import TEMPO_RANGE  # BPM a clock accepts: the language's tempo range, one home

CLOCK_INPUT: tuple[str, int] = ("clock", 6)
CLOCK_NAME, CLOCK_DIM = CLOCK_INPUT


def clock_features(
    beat_phase: torch.Tensor,  # [b, F] in [0, 1)
    bar_phase: torch.Tensor,  # [b, F] in [0, 1)
    bpm: torch.Tensor,  # [b]
    present: torch.Tensor,  # [b] 0/1
) -> torch.Tensor:
    """The clock channels [b, CLOCK_DIM, F]; rows with present = 0 are all zeros."""
    b, n = beat_phase.shape
    beat = 2 * math.pi * beat_phase.to(torch.float32)
    bar = 2 * math.pi * bar_phase.to(torch.float32)
    tempo = torch.log2(bpm.to(torch.float32).clamp(*TEMPO_RANGE) / 120.0)[:, None].expand(b, n)
    ones = torch.ones(b, n, dtype=torch.float32, device=beat.device)
    features = torch.stack((beat.sin(), beat.cos(), bar.sin(), bar.cos(), tempo.to(beat.device), ones), dim=1)  # [b, 6, F]
    return features * present.to(features.device, torch.float32)[:, None, None]


def window_bpm(beat_phase: torch.Tensor, frame_rate: float) -> torch.Tensor:
    """[b, F >= 2] annotated beat phases -> [b] tempo in BPM: the median phase advance per frame.

    The corpus's tempo is constant in an example, so every advance is the same up to float rounding."""
    advance = torch.remainder(beat_phase[:, 1:] - beat_phase[:, :-1], 1.0)  # [b, F - 1] beats per frame
    return advance.median(dim=1).values * frame_rate * 60.0


def grid_phases(beats_at_start: float, bpm: float, beats_per_bar: int, n: int, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(beat_phase [n], bar_phase [n]) of n frames whose first starts `beats_at_start` beats after bar 1."""
    beats = beats_at_start + np.arange(n, dtype=np.float64) * (bpm / 60.0 / frame_rate)
    return np.mod(beats, 1.0).astype(np.float32), np.mod(beats / beats_per_bar, 1.0).astype(np.float32)


def block_clock_features(
    bpm: float, beats_per_bar: int, origin_block: float, block: int, block_frames: int, frame_rate: float
) -> torch.Tensor:
    """The clock channels [1, CLOCK_DIM, block_frames] of `block` of a stream whose bar 1 starts at
    `origin_block` (in blocks, any fraction)."""
    beats_at_start = (block - origin_block) * block_frames / frame_rate * bpm / 60.0
    beat, bar = grid_phases(beats_at_start, bpm, beats_per_bar, block_frames, frame_rate)
    return clock_features(torch.from_numpy(beat)[None], torch.from_numpy(bar)[None], torch.tensor([float(bpm)]), torch.ones(1))


def beat_onsets(bpm: float, origin_block: float, block: int, block_frames: int, frame_rate: float) -> np.ndarray:
    """The clock's beat as a rhythm sketch: [block_frames] float32, 1 on each frame in which a beat
    starts (frame f holds times [f, f + 1) / frame_rate, as the rhythm sketch counts onsets), else 0.

    A stream with a tempo asked plays this as its rhythm while no rhythm sketch is given (the
    bundled model follows a rhythm sketch's tempo in and out of a style's usual range)."""
    per_frame = bpm / 60.0 / frame_rate  # beats per frame
    first = (block - origin_block) * block_frames * per_frame  # beats from bar 1 to the block's first frame
    starts = first + np.arange(block_frames + 1, dtype=np.float64) * per_frame  # frame edges, in beats
    eps = 1e-9
    return (np.floor(starts[1:] - eps) > np.floor(starts[:-1] - eps)).astype(np.float32)


def phase_onsets(beat_phase: torch.Tensor) -> torch.Tensor:
    """[b, F >= 2] annotated beat phases (at each frame's start) -> [b, F] float32, 1 on each frame in
    which a beat starts: the same grid `beat_onsets` makes from a clock, read off a song's annotation
    (training shows the model this grid as a rhythm sketch, as a stream with a tempo plays it)."""
    advance = torch.remainder(beat_phase[:, 1:] - beat_phase[:, :-1], 1.0)  # [b, F - 1] beats per frame
    ends = torch.cat((beat_phase[:, 1:], torch.remainder(beat_phase[:, -1:] + advance[:, -1:], 1.0)), dim=1)  # phase at frame ends
    eps = 1e-4  # float rounding of the annotation: a beat within eps of a frame edge starts the later frame
    wraps = (ends < beat_phase) & (ends > eps)
    return (wraps | (beat_phase <= eps)).to(torch.float32)


# The tempo named in a prompt: "at 96 bpm", "96bpm", "96 beats per minute", "tempo 96", "tempo: 96".
_PROMPT_TEMPO = re.compile(
    r"(?<![\w.])(\d{2,3}(?:\.\d+)?)\s*(?:bpm|beats per minute)\b|\btempo\s*:?\s*(\d{2,3}(?:\.\d+)?)\b", re.IGNORECASE
)


def prompt_tempo(text: str) -> float | None:
    """The first tempo a prompt names, in BPM, if it is within TEMPO_RANGE; else None."""
    for m in _PROMPT_TEMPO.finditer(text):
        bpm = float(m.group(1) or m.group(2))
        if TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
            return bpm
    return None


def mix_tempo(parts: Sequence[tuple[str, float]]) -> float | None:
    """The tempo of a prompt mix [(text, weight)]: that of the heaviest part naming one, else None."""
    named = [(w, prompt_tempo(text)) for text, w in parts]
    named = [(w, bpm) for w, bpm in named if bpm is not None]
    return max(named, key=lambda p: p[0])[1] if named else None


def check_tempo(bpm: object) -> float:
    """A finite tempo within TEMPO_RANGE, as float, or ValueError naming the range."""
    if isinstance(bpm, bool) or not isinstance(bpm, (int, float)) or not math.isfinite(bpm) or not TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
        raise ValueError(f"tempo must be between {TEMPO_RANGE[0]:g} and {TEMPO_RANGE[1]:g} BPM, got {bpm!r}")
    return float(bpm)
