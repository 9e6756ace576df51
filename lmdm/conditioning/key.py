"""Following a live player's key: the notes it plays most, as a melody sketch on its beat.

The companion of `beat.py` (read that first): the models follow a melody sketch's pitch classes
(docs/applications.md), and a sketch is time-aligned with the block being made, which the
player's codec latents never are. So "follow the key" jamming gives each block a melody sketch
made of the player's own notes:

1. the player's pitch-class profile over the last `beat.HISTORY_S` seconds heard
   (`lmdm.analysis.pitch_profile`); its `NOTES` strongest pitch classes are "the player's
   notes". A profile whose top `NOTES` hold less than `PITCHED_SHARE` of it is unpitched (drums:
   0.33-0.39 on the corpus stems; bass, harmony and lead: 0.43-0.80), and gives no melody;
2. one note per beat of the player's grid (`beat.player_beat`), in the order `PATTERN`
   (the most used, the second, the most used again, the third), counted from the strongest onset
   of the latest beat the player played, so the notes change on the player's beats.

Only pitch classes matter: the sketch is a one-hot pitch class per frame (lmdm/conditioning/sketch.py),
so every note is written in the octave that starts at middle C. Pure functions of the heard audio.
"""

from __future__ import annotations

import numpy as np

from lmdm.analysis import pitch_profile
from lmdm.conditioning.beat import PlayerBeat, history_start, player_beat

NOTES = 3  # the player's notes: its strongest pitch classes
PITCHED_SHARE = 0.4  # the top NOTES pitch classes must hold at least this share of the profile
PATTERN = (0, 1, 0, 2)  # which of the notes (0 = the most used) sounds on each beat, looped
MIDDLE_C = 60


def player_notes(heard: np.ndarray, sample_rate: int, count: int = NOTES) -> np.ndarray:
    """The `count` pitch classes (0 = C) the last HISTORY_S seconds of `heard` hold most, the most
    used first; empty when that audio is silent or unpitched (see PITCHED_SHARE)."""
    window = np.asarray(heard, dtype=np.float64)[history_start(len(heard), sample_rate) :]
    if len(window) == 0:
        return np.zeros(0, dtype=int)
    profile = pitch_profile(window, sample_rate)
    top = np.argsort(-profile, kind="stable")[:count]
    if profile[top].sum() < PITCHED_SHARE:  # silence gives all zeros, drums a flat profile
        return np.zeros(0, dtype=int)
    return top.astype(int)


def key_melody(notes: np.ndarray, beat: PlayerBeat, start_s: float, n: int, frame_rate: float) -> np.ndarray:
    """The melody sketch [n] (MIDI, 0 = rest) of frames starting at input time `start_s`: `notes`
    one per beat in PATTERN order, beats counted from `beat.downbeat_s` (from time 0 when the
    player rested)."""
    out = np.zeros(n, dtype=np.float32)
    if len(notes) == 0 or not beat.period_s > 0:
        return out
    anchor = beat.downbeat_s or 0.0
    times = start_s + np.arange(n) / frame_rate
    beats = np.floor((times - anchor) / beat.period_s + 1e-6).astype(int)
    order = [i if i < len(notes) else 0 for i in PATTERN]  # fewer notes: the most used fills in
    return (MIDDLE_C + np.asarray(notes)[np.array(order)[beats % len(order)]]).astype(np.float32)


def predicted_melody(heard: np.ndarray, sample_rate: int, start_frame: int, n: int, frame_rate: float,
                     heard_start: int = 0) -> np.ndarray | None:
    """The melody sketch [n] of frames start_frame .. start_frame + n - 1 of the input timeline, from
    `heard` (mono, as `beat.player_beat` takes it); None while no beat is found or the player's
    audio is unpitched (give no melody sketch then)."""
    beat = player_beat(heard, sample_rate, heard_start)
    if beat is None:
        return None
    notes = player_notes(heard, sample_rate)
    if len(notes) == 0:
        return None
    return key_melody(notes, beat, start_frame / frame_rate, n, frame_rate)


__all__ = ["MIDDLE_C", "NOTES", "PATTERN", "PITCHED_SHARE", "key_melody", "player_notes", "predicted_melody"]
