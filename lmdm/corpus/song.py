"""The arranger's first two steps: seed + style -> a ``Song`` (the drawn choices) -> its form, bar by bar.

    seed, Style --draw_song--> Song (tempo, key, mood, instruments, patterns, progression)
    seed --plan_sections--> [(section, bars), ...] --plan_bars--> [Bar] (which parts play, fills, crashes)
    Song, bar --chord_degree / chord_classes--> the chord of that bar; Timing: (bar, step) -> seconds

Every part draws from its own random stream (``part_rng``). The notes of each part are made in
``lmdm.corpus.parts``; ``lmdm.corpus.arrange`` puts the three steps together.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TypeVar

import attrs
import numpy as np

from lmdm.corpus.patterns import FILLS, STEPS_PER_BAR
from lmdm.corpus.styles import ANY_TEMPO, BRIGHT_SCALES, DARK_SCALES, MOODS, Style
from lmdm.corpus.theory import chord_pitch_classes

T = TypeVar("T")

PADS = ("warm_pad", "supersaw_pad", "strings")

# Which parts play in each kind of section: (drum intensity 0..3, bass, harmony, lead).
SECTION_LAYERS: dict[str, tuple[int, bool, bool, bool]] = {
    "intro": (1, False, True, False),
    "groove": (2, True, True, False),
    "theme": (2, True, True, True),
    "variation": (3, True, True, True),
    "breakdown": (0, False, True, True),
    "drop": (3, True, True, True),
}


def part_rng(seed: int, part: str) -> np.random.Generator:
    """An independent, reproducible random stream for one part of one example."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, zlib.crc32(part.encode())])


def pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    if len(options) == 0:
        raise ValueError("nothing to pick from")
    return options[int(rng.integers(len(options)))]


# ---------------------------------------------------------------- 1. the song's choices


@attrs.frozen
class Song:
    style: str
    tempo: int
    tonic: int  # pitch class of the key
    scale: str
    mood: str
    drum_kit: str | None
    drum_pattern: str
    fill: str
    bass: str | None
    bass_pattern: str
    harmony: str
    comp: str
    pad: str | None
    lead: str | None
    progression: tuple[int, ...]
    chord_shape: str
    chord_beats: int
    swing: float
    humanize: float
    lead_grid: int
    lead_density: float


def scales_for_mood(style: Style, mood: str) -> tuple[str, ...]:
    """The style's scales that suit the mood's brightness (all of them if none does)."""
    brightness = MOODS[mood]
    preferred = {-1: DARK_SCALES, 1: BRIGHT_SCALES}.get(brightness)
    if preferred is None:
        return style.scales
    fitting = tuple(s for s in style.scales if s in preferred)
    return fitting or style.scales


def any_tempo_draw(seed: int, tempo: int, any_tempo: float) -> int:
    """With probability ``any_tempo`` a tempo drawn from all of ANY_TEMPO instead of the style's ``tempo``.

    It has its own random stream, so ``any_tempo = 0`` leaves every song exactly as it was.
    """
    if any_tempo <= 0:
        return tempo
    rng = part_rng(seed, "any_tempo")
    return int(rng.integers(ANY_TEMPO[0], ANY_TEMPO[1] + 1)) if rng.random() < any_tempo else tempo


def draw_song(seed: int, style: Style, any_tempo: float = 0.0) -> Song:
    """The song's choices. ``any_tempo``: the chance that its tempo is drawn from ANY_TEMPO (``any_tempo_draw``)."""
    if not 0.0 <= any_tempo <= 1.0:
        raise ValueError(f"any_tempo is a probability from 0 to 1, got {any_tempo!r}")
    rng = part_rng(seed, "song")
    mood = pick(rng, style.moods)
    uses_drums = rng.random() < style.drums_probability
    uses_bass = rng.random() < style.bass_probability
    uses_lead = rng.random() < style.lead_probability
    harmony = pick(rng, style.harmony)
    pad_options = [p for p in PADS if p != harmony]
    uses_pad = rng.random() < style.pad_probability and harmony not in PADS
    fill_names = sorted(FILLS)
    return Song(
        style=style.name,
        tempo=any_tempo_draw(seed, int(rng.integers(style.tempo[0], style.tempo[1] + 1)), any_tempo),
        tonic=int(rng.integers(12)),
        scale=pick(rng, scales_for_mood(style, mood)),
        mood=mood,
        drum_kit=pick(rng, style.drum_kits) if uses_drums else None,
        drum_pattern=pick(rng, style.drum_patterns),
        fill=pick(rng, fill_names),
        bass=pick(rng, style.basses) if uses_bass else None,
        bass_pattern=pick(rng, style.bass_patterns),
        harmony=harmony,
        comp=pick(rng, style.comp_patterns),
        pad=pick(rng, pad_options) if uses_pad else None,
        lead=pick(rng, style.leads) if uses_lead else None,
        progression=tuple(pick(rng, style.progressions)),
        chord_shape=pick(rng, style.chord_shapes),
        chord_beats=int(pick(rng, style.chord_beats)),
        swing=float(rng.uniform(*style.swing)),
        humanize=style.humanize,
        lead_grid=int(pick(rng, style.lead_grid)),
        lead_density=float(rng.uniform(*style.lead_density)),
    )


# ---------------------------------------------------------------- 2. the form, bar by bar


@attrs.frozen
class Bar:
    index: int  # bar number in the song (bar 0 is the first bar of the intro)
    section: str
    section_start: int  # bar number where this section started
    drums: int  # 0 silent, 1 light, 2 full, 3 full with extras
    bass: bool
    harmony: bool
    lead: bool
    fill: int  # number of sixteenths of drum fill at the end of the bar (0 = none)
    crash: bool  # crash cymbal on the downbeat
    build: bool  # snare build-up through the bar (the bar before a drop)


_TRANSITIONS: dict[str, dict[str, float]] = {
    "intro": {"groove": 1.0, "theme": 1.0},
    "groove": {"theme": 3.0, "breakdown": 0.5},
    "theme": {"variation": 2.0, "breakdown": 1.0, "groove": 0.5},
    "variation": {"breakdown": 1.0, "theme": 1.0, "drop": 0.3},
    "breakdown": {"drop": 1.0},
    "drop": {"theme": 1.0, "variation": 1.0, "breakdown": 0.5},
}


def plan_sections(rng: np.random.Generator, breakdown_weight: float, min_bars: int) -> list[tuple[str, int]]:
    """A sequence of (section name, bars) covering at least ``min_bars`` bars, starting with an intro."""
    sections = [("intro", int(pick(rng, (4, 8))))]
    total = sections[0][1]
    while total < min_bars:
        options = _TRANSITIONS[sections[-1][0]]
        names = list(options)
        weights = np.array([options[n] * (breakdown_weight if n == "breakdown" else 1.0) for n in names])
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        length = int(pick(rng, (4, 8))) if name in ("breakdown", "groove") else 8
        sections.append((name, length))
        total += length
    return sections


def plan_bars(sections: Sequence[tuple[str, int]], song: Song) -> list[Bar]:
    """Expand sections into bars: which parts play, fills before each new section, crashes after."""
    bars: list[Bar] = []
    start = 0
    for position, (name, length) in enumerate(sections):
        drums, bass, harmony, lead = SECTION_LAYERS[name]
        following = sections[position + 1][0] if position + 1 < len(sections) else None
        for offset in range(length):
            last = offset == length - 1
            build = last and following == "drop" and song.drum_kit is not None
            fill = 0
            if drums > 0 and not build:
                if last:
                    fill = 8
                elif offset % 4 == 3:
                    fill = 4
            bars.append(
                Bar(
                    index=start + offset,
                    section=name,
                    section_start=start,
                    drums=drums if song.drum_kit is not None else 0,
                    bass=bass and song.bass is not None,
                    harmony=harmony,
                    lead=lead and song.lead is not None,
                    fill=fill if song.drum_kit is not None else 0,
                    crash=offset == 0 and drums >= 2 and position > 0,
                    build=build,
                )
            )
        start += length
    return bars


# ---------------------------------------------------------------- timing and harmony helpers


@attrs.frozen
class Timing:
    tempo: float
    first_bar: int  # song bar that starts at time 0 of the example
    swing: float
    humanize: float

    @property
    def step_seconds(self) -> float:
        return 15.0 / self.tempo

    def time(self, bar: int, step: float) -> float:
        """Seconds from the example start of ``step`` sixteenths into song bar ``bar`` (swung)."""
        swing = self.swing if step % 2 == 1 else 0.0  # only whole odd sixteenths swing
        return ((bar - self.first_bar) * STEPS_PER_BAR + step + swing) * self.step_seconds

    def jitter(self, rng: np.random.Generator) -> float:
        if self.humanize <= 0:
            return 0.0
        return float(np.clip(rng.normal(0.0, self.humanize), -3 * self.humanize, 3 * self.humanize))


def chord_degree(song: Song, bar: int) -> int:
    """Scale degree of the chord in song bar ``bar`` (chords change only on bar lines)."""
    bars_per_chord = max(1, song.chord_beats // 4)
    return song.progression[(bar // bars_per_chord) % len(song.progression)]


def chord_classes(song: Song, bar: int, shape: str | None = None) -> tuple[int, ...]:
    return chord_pitch_classes(song.tonic, song.scale, chord_degree(song, bar), shape or song.chord_shape)
