"""The score: what plays when. Plain value types shared by the arranger, renderer and annotator.

Times are seconds from the start of the example; the example starts on a downbeat. Notes may
start before 0 (they belong to the pre-roll and only their tails reach the example).
"""

from __future__ import annotations

import attrs

STEM_NAMES: tuple[str, ...] = ("drums", "bass", "harmony", "lead")
SECTION_NAMES: tuple[str, ...] = ("intro", "groove", "theme", "variation", "breakdown", "drop")

# General MIDI drum numbers used for drum notes.
KICK, RIM, SNARE, CLAP = 36, 37, 38, 39
CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 42, 46, 49, 51
LOW_TOM, MID_TOM, HIGH_TOM, SHAKER = 45, 47, 50, 70
DRUM_VOICES: dict[str, int] = {
    "kick": KICK,
    "rim": RIM,
    "snare": SNARE,
    "clap": CLAP,
    "hat": CLOSED_HAT,
    "open_hat": OPEN_HAT,
    "crash": CRASH,
    "ride": RIDE,
    "low_tom": LOW_TOM,
    "mid_tom": MID_TOM,
    "high_tom": HIGH_TOM,
    "shaker": SHAKER,
}


@attrs.frozen
class Note:
    start: float  # seconds
    duration: float  # gate length in seconds (the release tail comes after it)
    pitch: int  # MIDI pitch; General MIDI drum number for drum notes
    velocity: float  # 0..1
    instrument: str  # a key of lmdm.corpus.instruments.INSTRUMENTS
    stem: str  # one of STEM_NAMES

    @property
    def end(self) -> float:
        return self.start + self.duration


@attrs.frozen
class Section:
    name: str  # one of SECTION_NAMES
    start: float  # seconds, may be negative in the pre-roll
    end: float


@attrs.frozen
class Mixing:
    """Per-song mix settings: effect sends per stem and a tempo-synced echo on the lead."""

    reverb_seconds: float  # time for the reverb tail to fall by 60 dB
    reverb_send: dict[str, float]  # stem -> send level (0 = dry)
    echo_seconds: float  # delay time of the lead echo
    echo_feedback: float  # 0..1
    echo_send: float  # 0 = no echo
    stem_level_db: dict[str, float]  # stem -> loudness relative to the drums, before the master gain


@attrs.frozen
class Score:
    notes: tuple[Note, ...]
    tempo: float  # beats per minute, 4 beats per bar
    seconds: float  # length of the example
    preroll: float  # seconds rendered before 0 so tails and reverb carry into the example
    sections: tuple[Section, ...]
    mixing: Mixing

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.tempo

    @property
    def bar_seconds(self) -> float:
        return 4.0 * 60.0 / self.tempo
