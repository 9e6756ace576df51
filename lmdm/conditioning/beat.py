"""Following a live player's beat: the onsets it played, carried forward by its tempo, as a rhythm sketch.

The models do not lock onto a player through its codec latents (docs/applications.md, "Jamming"):
those stop at the latency cutoff, one or two blocks before the block being made. What the models
do follow well is a rhythm sketch, which is time-aligned with that block. So "follow the beat"
jamming predicts where the player's onsets will fall in the next block and gives them as the
block's rhythm sketch:

1. the tempo of the last `HISTORY_S` seconds heard (`lmdm.analysis.tempo_bpm`: onset
   autocorrelation, within 1% on a steady beat);
2. the onsets of the last beat heard (`sketch_sources.onset_times`), or of the latest of the
   last `PATTERN_BEATS` beats that has any, when the player rested;
3. each of them moved forward by whole beats into the block: a beat-period copy keeps the phase
   of the player's grid however far ahead the block is.

Pure functions of the heard audio, so the same input gives the same sketch offline and live.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from lmdm.analysis import tempo_bpm
from lmdm.conditioning.sketch_sources import onset_times

HISTORY_S = 8.0  # seconds of heard input the tempo is taken from
MIN_HEARD_S = 2.0  # less than this heard: no prediction (all zeros)
PATTERN_BEATS = 4  # look back this many beats for the latest one with onsets (one beat is copied: less tempo error per copy)


def history_start(n: int, sample_rate: int) -> int:
    """Where the last HISTORY_S seconds of `n` heard samples begin (0 when fewer were heard)."""
    return max(0, n - int(HISTORY_S * sample_rate))


def player_tempo(heard: np.ndarray, sample_rate: int) -> float:
    """BPM of the last HISTORY_S seconds of `heard` (mono [n]); NaN when there is no beat to find."""
    window = np.asarray(heard, dtype=np.float64)[history_start(len(heard), sample_rate) :]
    if len(window) < MIN_HEARD_S * sample_rate:
        return float("nan")
    return tempo_bpm(window, sample_rate)


def project_onsets(onsets_s: np.ndarray, beat_s: float, start_s: float, n: int, frame_rate: float) -> np.ndarray:
    """Onset times moved forward by whole beats (k >= 1) into frames [start, start + n) -> [n] 0/1.

    Frame f holds times [f / frame_rate, (f + 1) / frame_rate), as `onset_frames` counts them.
    """
    out = np.zeros(n, dtype=np.float32)
    if not beat_s > 0:
        return out
    end_s = start_s + n / frame_rate
    for t in np.asarray(onsets_s, dtype=np.float64):
        k = max(1, math.ceil((start_s - t) / beat_s - 1e-9))
        while (moved := t + k * beat_s) < end_s:
            f = int(moved * frame_rate + 1e-9) - round(start_s * frame_rate)
            if 0 <= f < n:
                out[f] = 1.0
            k += 1
    return out


@attrs.frozen
class PlayerBeat:
    """The player's beat as heard: its period and the onsets of the latest beat that has any."""

    period_s: float  # seconds per beat
    onsets_s: np.ndarray  # input-timeline seconds of the latest beat's onsets (empty: a rest of PATTERN_BEATS beats)
    strengths: np.ndarray  # their strengths, 0..1

    @property
    def downbeat_s(self) -> float | None:
        """The strongest onset of that beat (where the player's beats fall), None after a rest."""
        return float(self.onsets_s[int(np.argmax(self.strengths))]) if len(self.onsets_s) else None


def player_beat(heard: np.ndarray, sample_rate: int, heard_start: int = 0) -> PlayerBeat | None:
    """The beat of `heard` (mono, the input's samples heard_start .. heard_start + len(heard) - 1,
    ending where the input has been heard up to), from its last HISTORY_S seconds.

    None while less than MIN_HEARD_S is heard or no tempo is found.
    """
    full = np.asarray(heard, dtype=np.float64)
    cut = history_start(len(full), sample_rate)
    heard, heard_start = full[cut:], heard_start + cut
    bpm = player_tempo(heard, sample_rate)
    if not math.isfinite(bpm):
        return None
    beat_s = 60.0 / bpm
    now_s = (heard_start + len(heard)) / sample_rate
    times, strengths = onset_times(heard, sample_rate)
    times = times + heard_start / sample_rate
    for back in range(1, PATTERN_BEATS + 1):  # the latest beat with onsets
        last = (times >= now_s - back * beat_s) & (times < now_s - (back - 1) * beat_s)
        if last.any():
            return PlayerBeat(beat_s, times[last], strengths[last])
    return PlayerBeat(beat_s, np.zeros(0), np.zeros(0))


def predicted_onsets(heard: np.ndarray, sample_rate: int, start_frame: int, n: int, frame_rate: float,
                     heard_start: int = 0) -> np.ndarray | None:
    """The rhythm sketch [n] (0/1) of frames start_frame .. start_frame + n - 1 of the input timeline,
    from `heard` (mono, as `player_beat` takes it).

    None while less than MIN_HEARD_S is heard or no tempo is found (give no rhythm sketch then).
    Once the beat is known, a block where the player's pattern has no onset gets all zeros: the
    accompaniment holds off the grid's gaps too.
    """
    beat = player_beat(heard, sample_rate, heard_start)
    if beat is None:
        return None
    return project_onsets(beat.onsets_s, beat.period_s, start_frame / frame_rate, n, frame_rate)


__all__ = ["HISTORY_S", "MIN_HEARD_S", "PATTERN_BEATS", "PlayerBeat", "history_start", "player_beat", "player_tempo", "predicted_onsets", "project_onsets"]
