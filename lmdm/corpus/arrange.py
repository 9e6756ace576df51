"""The arranger: seed + style -> a ``Song`` (the drawn choices) -> a ``Score`` (every note).

Three steps, each a plain function:

1. ``draw_song``: tempo, key, mood, instruments, patterns, progression from the style.
2. ``plan_bars``: a song form in 4/8-bar sections (intro, groove, theme, variation, breakdown,
   drop) saying per bar which parts play, where fills, crashes and build-ups go.
3. ``drum_notes`` / ``bass_notes`` / ``harmony_notes`` / ``lead_notes``: notes per part.

Every part draws from its own random stream (``part_rng``), so e.g. a change to the melody
generator leaves the drums of a seed untouched.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import TypeVar

import attrs
import numpy as np

from lmdm.corpus.patterns import (
    ARPEGGIOS,
    BASS_PATTERNS,
    BASS_TOKENS,
    COMP_PATTERNS,
    DRUM_PATTERNS,
    FILLS,
    HIT_VELOCITY,
    STEPS_PER_BAR,
    hold_length,
    pattern_step,
)
from lmdm.corpus.score import CLOSED_HAT, CRASH, DRUM_VOICES, KICK, OPEN_HAT, SNARE, Mixing, Note, Score, Section
from lmdm.corpus.styles import ANY_TEMPO, BRIGHT_SCALES, DARK_SCALES, MOODS, Style
from lmdm.corpus.theory import (
    chord_pitch_classes,
    harmony_scale,
    nearest_in_set,
    next_pitch_above,
    pitch_in_range,
    scale_pitch_classes,
    scale_pitches,
    voice_lead,
)

T = TypeVar("T")
Voicings = dict[int, tuple[int, ...]]  # song bar index -> chord pitches

PREROLL_SECONDS = 2.0  # at least this much music is rendered before the example starts

# Lowest bass note per instrument (the root is placed in the octave above it).
BASS_LOW: dict[str, int] = {"808_bass": 29, "sub_bass": 31, "reese_bass": 31, "organ": 36, "warm_pad": 36}
# Chord register per instrument (low, high).
HARMONY_RANGE: dict[str, tuple[int, int]] = {
    "supersaw_pad": (50, 74),
    "warm_pad": (48, 72),
    "strings": (50, 76),
    "fm_bell": (60, 84),
    "synth_pluck": (57, 81),
    "mallet": (60, 84),
}
LEAD_RANGE: dict[str, tuple[int, int]] = {"fm_bell": (67, 91), "mallet": (64, 88), "synth_pluck": (64, 86)}
STRUMMED = frozenset({"clean_guitar", "nylon_guitar"})
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


def velocity_jitter(rng: np.random.Generator, velocity: float, amount: float = 0.08) -> float:
    return float(np.clip(velocity * (1.0 + rng.uniform(-amount, amount)), 0.05, 1.0))


# ---------------------------------------------------------------- 3a. drums


def _drum_hits_for_bar(song: Song, bar: Bar, rng: np.random.Generator) -> list[tuple[float, int, float]]:
    """(step, GM drum number, velocity) for one bar."""
    pattern = DRUM_PATTERNS[song.drum_pattern]
    hits: list[tuple[float, int, float]] = []
    if bar.drums > 0:
        light_voices = {"kick", "hat", "shaker", "rim", "ride"}
        for voice, steps in pattern.items():
            if bar.drums == 1 and voice not in light_voices:
                continue
            for step in range(STEPS_PER_BAR):
                char = pattern_step(steps, bar.index, step)
                if char in HIT_VELOCITY:
                    hits.append((float(step), DRUM_VOICES[voice], HIT_VELOCITY[char]))
        if bar.drums >= 3:
            extra = OPEN_HAT if "open_hat" not in pattern else DRUM_VOICES["shaker"]
            hits += [(float(s), extra, 0.5) for s in (2, 6, 10, 14)]
        if bar.index % 4 == 2:  # a small variation in every 4-bar phrase
            step = float(pick(rng, (3, 7, 11, 14, 15)))
            hits.append((step, pick(rng, (KICK, SNARE)), 0.45))
    if song.style == "trap" and bar.drums >= 2:
        hits = _hat_rolls(hits, rng)
    if bar.fill:
        fill = FILLS[song.fill]
        width = min(bar.fill, max(len(s) for s in fill.values()))
        first = STEPS_PER_BAR - width
        hits = [h for h in hits if h[0] < first or h[1] == CLOSED_HAT]  # hats keep time through fills
        for voice, steps in fill.items():
            steps = steps[-width:]
            for i, char in enumerate(steps.rjust(width, ".")):
                if char in HIT_VELOCITY:
                    hits.append((float(first + i), DRUM_VOICES[voice], HIT_VELOCITY[char]))
    if bar.build:
        for step in range(STEPS_PER_BAR):
            if step < 8 and step % 2 == 1:
                continue
            hits.append((float(step), SNARE, 0.35 + 0.65 * step / (STEPS_PER_BAR - 1)))
    if bar.crash:
        hits.append((0.0, CRASH, 0.8))
    return hits


def _hat_rolls(hits: list[tuple[float, int, float]], rng: np.random.Generator) -> list[tuple[float, int, float]]:
    """Trap hi-hat ratchets: split a few hat hits into 2, 3 or 4 quick hits."""
    out: list[tuple[float, int, float]] = []
    for step, pitch, velocity in hits:
        if pitch == CLOSED_HAT and step >= 4 and rng.random() < 0.12:
            count = int(pick(rng, (2, 3, 4)))
            width = 2.0 if count == 3 else 1.0
            out += [(step + width * i / count, pitch, velocity * (0.6 + 0.4 * i / count)) for i in range(count)]
        else:
            out.append((step, pitch, velocity))
    return out


def drum_notes(song: Song, bars: Sequence[Bar], timing: Timing, seed: int) -> list[Note]:
    if song.drum_kit is None:
        return []
    rng = part_rng(seed, "drums")
    notes = []
    for bar in bars:
        for step, pitch, velocity in _drum_hits_for_bar(song, bar, rng):
            start = timing.time(bar.index, step) + timing.jitter(rng)
            velocity = velocity_jitter(rng, velocity)
            notes.append(Note(start, timing.step_seconds, pitch, velocity, song.drum_kit, "drums"))
    return notes


# ---------------------------------------------------------------- 3b. bass


def acid_pattern(rng: np.random.Generator) -> str:
    """A random 16-step acid line: mostly roots, some octaves and fifths, rests and accents."""
    tokens = []
    for step in range(STEPS_PER_BAR):
        r = rng.random()
        if step % 4 == 0 or r < 0.45:
            tokens.append("R")
        elif r < 0.6:
            tokens.append("O")
        elif r < 0.68:
            tokens.append("5")
        elif r < 0.8:
            tokens.append("-")
        else:
            tokens.append(".")
    return "".join(tokens)


def kick_pattern(song: Song) -> str:
    """Bass that follows the kick: a note on every kick, held until the next one (trap 808s)."""
    kicks = DRUM_PATTERNS[song.drum_pattern].get("kick", "X.......X.......")
    return "".join("R" if c in HIT_VELOCITY else "-" for c in kicks)


def bass_pitch(token: str, song: Song, bar: int, low: int) -> int:
    classes = chord_classes(song, bar, "seventh")
    root = pitch_in_range(classes[0], low)
    if token == "R":
        return root
    if token == "O":
        return root + 12
    if token == "3":
        return next_pitch_above(root, classes[1])
    if token == "5":
        return next_pitch_above(root, classes[2])
    if token == "7":
        return next_pitch_above(root, classes[3])
    if token == "A":
        next_root = pitch_in_range(chord_classes(song, bar + 1)[0], low)
        below = scale_pitches(song.tonic, harmony_scale(song.scale), next_root - 3, next_root - 1)
        return below[-1] if below else next_root - 1
    raise ValueError(f"unknown bass token {token!r}")


def bass_notes(song: Song, bars: Sequence[Bar], timing: Timing, seed: int) -> list[Note]:
    if song.bass is None:
        return []
    rng = part_rng(seed, "bass")
    if song.bass_pattern == "acid":
        pattern = acid_pattern(rng)
        accents = [rng.random() < 0.3 for _ in range(STEPS_PER_BAR)]
    elif song.bass_pattern == "follow_kick":
        pattern, accents = kick_pattern(song), [False] * STEPS_PER_BAR
    else:
        pattern, accents = BASS_PATTERNS[song.bass_pattern], [False] * STEPS_PER_BAR
    low = BASS_LOW.get(song.bass, 33)
    notes = []
    for bar in bars:
        if not bar.bass:
            continue
        for step in range(STEPS_PER_BAR):
            token = pattern_step(pattern, bar.index, step)
            if token not in BASS_TOKENS:
                continue
            length = hold_length(pattern, bar.index, step)
            start = timing.time(bar.index, step) + timing.jitter(rng)
            end = timing.time(bar.index, step + length)
            velocity = 1.0 if accents[step] else (0.85 if step % 4 == 0 else 0.7)
            duration = max(0.03, 0.92 * (end - start))
            pitch = bass_pitch(token, song, bar.index, low)
            notes.append(Note(start, duration, pitch, velocity_jitter(rng, velocity), song.bass, "bass"))
    return notes


# ---------------------------------------------------------------- 3c. harmony


def chord_voicings(song: Song, bars: Sequence[Bar], low: int, high: int) -> Voicings:
    """Voice-led chord pitches for every bar (by song bar index)."""
    voicings: Voicings = {}
    previous: tuple[int, ...] | None = None
    for bar in bars:
        voicing = voice_lead(chord_classes(song, bar.index), previous, low, high)
        voicings[bar.index] = voicing
        previous = voicing
    return voicings


def _held_chords(
    song: Song, bars: Sequence[Bar], instrument: str, voicings: Voicings, timing: Timing, velocity: float
) -> list[Note]:
    """Chords held for as long as they last (until the chord or the section changes)."""
    notes: list[Note] = []
    run: list[Bar] = []

    def flush() -> None:
        if not run:
            return
        start = timing.time(run[0].index, 0)
        end = timing.time(run[-1].index + 1, 0)
        for pitch in voicings[run[0].index]:
            notes.append(Note(start, 0.97 * (end - start), pitch, velocity, instrument, "harmony"))
        run.clear()

    for bar in bars:
        if not bar.harmony:
            flush()
            continue
        chord_changed = run and chord_degree(song, bar.index) != chord_degree(song, run[-1].index)
        if chord_changed or (run and bar.section_start != run[-1].section_start):
            flush()
        run.append(bar)
    flush()
    return notes


def _arpeggio_notes(
    song: Song, bars: Sequence[Bar], voicings: Voicings, timing: Timing, rng: np.random.Generator
) -> list[Note]:
    steps_per_note, direction = ARPEGGIOS[song.comp]
    notes = []
    for bar in bars:
        if not bar.harmony:
            continue
        chord = list(voicings[bar.index]) + [voicings[bar.index][0] + 12]
        order = chord if direction == "up" else chord + chord[-2:0:-1]
        for i, step in enumerate(range(0, STEPS_PER_BAR, steps_per_note)):
            start = timing.time(bar.index, step) + timing.jitter(rng)
            duration = 0.9 * steps_per_note * timing.step_seconds
            velocity = velocity_jitter(rng, 0.85 if step % 4 == 0 else 0.65)
            notes.append(Note(start, duration, order[i % len(order)], velocity, song.harmony, "harmony"))
    return notes


def _comped_chords(
    song: Song, bars: Sequence[Bar], voicings: Voicings, timing: Timing, rng: np.random.Generator
) -> list[Note]:
    pattern = COMP_PATTERNS[song.comp]
    strum = 0.012 if song.harmony in STRUMMED else 0.0
    notes = []
    for bar in bars:
        if not bar.harmony:
            continue
        for step in range(STEPS_PER_BAR):
            char = pattern_step(pattern, bar.index, step)
            if char not in HIT_VELOCITY:
                continue
            length = hold_length(pattern, bar.index, step)
            start = timing.time(bar.index, step) + timing.jitter(rng)
            end = timing.time(bar.index, step + length)
            velocity = velocity_jitter(rng, HIT_VELOCITY[char])
            for voice, pitch in enumerate(voicings[bar.index]):
                offset = voice * strum
                duration = max(0.03, 0.9 * (end - start) - offset)
                notes.append(Note(start + offset, duration, pitch, velocity, song.harmony, "harmony"))
    return notes


def harmony_notes(song: Song, bars: Sequence[Bar], timing: Timing, seed: int) -> list[Note]:
    rng = part_rng(seed, "harmony")
    low, high = HARMONY_RANGE.get(song.harmony, (52, 76))
    voicings = chord_voicings(song, bars, low, high)
    if song.comp == "hold":
        notes = _held_chords(song, bars, song.harmony, voicings, timing, velocity_jitter(rng, 0.75))
    elif song.comp in ARPEGGIOS:
        notes = _arpeggio_notes(song, bars, voicings, timing, rng)
    else:
        notes = _comped_chords(song, bars, voicings, timing, rng)
    if song.pad is not None:
        pad_low, pad_high = HARMONY_RANGE.get(song.pad, (50, 74))
        pad_voicings = chord_voicings(song, bars, pad_low, pad_high)
        notes += _held_chords(song, bars, song.pad, pad_voicings, timing, 0.5)
    return notes


# ---------------------------------------------------------------- 3d. lead melody


@attrs.frozen
class Motif:
    """A two-bar melodic idea: onsets (in sixteenths), lengths, and a contour in scale steps."""

    steps: tuple[int, ...]
    lengths: tuple[int, ...]
    contour: tuple[int, ...]


def make_motif(rng: np.random.Generator, grid: int, density: float) -> Motif:
    span = 2 * STEPS_PER_BAR
    onsets = []
    for step in range(0, span, grid):
        strong = step % 8 == 0
        if rng.random() < (min(1.0, density * 1.6) if strong else density):
            onsets.append(step)
    if len(onsets) < 3:
        onsets = sorted(set(onsets) | {0, 8, 16})
    lengths = []
    for i, step in enumerate(onsets):
        gap = (onsets[i + 1] if i + 1 < len(onsets) else span) - step
        held = gap if rng.random() < 0.3 else min(gap, 8)  # mostly at most half a bar
        lengths.append(max(1, held))
    moves = rng.choice([-3, -2, -1, 0, 1, 2, 3], size=len(onsets), p=[0.05, 0.18, 0.25, 0.08, 0.25, 0.14, 0.05])
    contour = np.clip(np.cumsum(moves) - moves[0], -6, 7)
    return Motif(tuple(onsets), tuple(lengths), tuple(int(c) for c in contour))


def realise_motif(
    motif: Motif,
    song: Song,
    first_bar: int,
    anchor: int,
    pitches: Sequence[int],
    cadence: bool,
) -> list[tuple[int, int, int]]:
    """Turn a motif into (absolute step from ``first_bar``, length, MIDI pitch).

    ``anchor`` is an index into ``pitches`` (the scale notes in the lead's range). Notes on a
    strong beat are pulled to the nearest chord tone that is also in the scale. With
    ``cadence``, the last note lands on the chord root (or the nearest scale note to it).
    """
    scale_classes = scale_pitch_classes(song.tonic, song.scale)
    events = []
    for i, (step, length, move) in enumerate(zip(motif.steps, motif.lengths, motif.contour)):
        bar = first_bar + step // STEPS_PER_BAR
        pitch = pitches[int(np.clip(anchor + move, 0, len(pitches) - 1))]
        chord_tones = frozenset(chord_classes(song, bar)) & scale_classes
        if step % 8 == 0 and chord_tones:
            pitch = nearest_in_set(pitch, chord_tones)
        if cadence and i == len(motif.steps) - 1:
            root = chord_classes(song, bar)[0]
            pitch = nearest_in_set(pitch, {root} if root in scale_classes else scale_classes)
        events.append((step, length, pitch))
    return events


def lead_notes(song: Song, bars: Sequence[Bar], timing: Timing, seed: int) -> list[Note]:
    """Two-bar motifs in AA'AB phrases; theme sections share one melody, variations another."""
    if song.lead is None:
        return []
    low, high = LEAD_RANGE.get(song.lead, (62, 86))
    pitches = scale_pitches(song.tonic, song.scale, low, high)
    rng = part_rng(seed, "lead")
    # Fixed ideas for the whole song, so melodies come back when a section comes back.
    ideas = {
        name: (make_motif(rng, song.lead_grid, song.lead_density), make_motif(rng, song.lead_grid, song.lead_density))
        for name in ("theme", "variation", "breakdown")
    }
    ideas["drop"] = ideas["theme"]
    anchor = len(pitches) // 2
    by_index = {bar.index: bar for bar in bars}
    events: list[tuple[int, int, int]] = []  # (absolute song step, length, pitch)
    for bar in bars:
        offset = bar.index - bar.section_start
        if not bar.lead or offset % 2 == 1:
            continue
        motif_a, motif_b = ideas.get(bar.section, ideas["theme"])
        in_phrase = (offset // 2) % 4
        motif = motif_b if in_phrase == 3 else motif_a
        shift = 2 if in_phrase == 1 else 0
        phrase = realise_motif(motif, song, bar.index, anchor + shift, pitches, cadence=in_phrase == 3)
        for step, length, pitch in phrase:
            if by_index.get(bar.index + step // STEPS_PER_BAR, bar).lead:
                events.append((bar.index * STEPS_PER_BAR + step, length, pitch))
    notes = []
    for i, (abs_step, length, pitch) in enumerate(events):
        bar, step = divmod(abs_step, STEPS_PER_BAR)
        start = timing.time(bar, step) + timing.jitter(rng)
        end = timing.time(bar, step + length)
        if i + 1 < len(events):  # the lead is monophonic: stop before the next note starts
            next_bar, next_step = divmod(events[i + 1][0], STEPS_PER_BAR)
            end = min(end, timing.time(next_bar, next_step) - 0.02)
        duration = max(0.03, 0.92 * (end - start))
        velocity = velocity_jitter(rng, 0.9 if step % 4 == 0 else 0.75)
        notes.append(Note(start, duration, pitch, velocity, song.lead, "lead"))
    return notes


# ---------------------------------------------------------------- putting it together


def window_bars(song: Song, seconds: float, seed: int, breakdown_weight: float) -> tuple[list[Bar], int, int]:
    """Plan a song long enough, choose where the example starts (a section start within the
    first 16 bars; the song's very beginning a quarter of the time) and return
    (bars to render including pre-roll, first bar of the example, pre-roll bars)."""
    bar_seconds = 240.0 / song.tempo
    needed = math.ceil(seconds / bar_seconds) + 1
    sections = plan_sections(part_rng(seed, "form"), breakdown_weight, needed + 24)
    all_bars = plan_bars(sections, song)
    starts = [b.index for b in all_bars if b.index == b.section_start and b.index <= 16]
    rng = part_rng(seed, "start")
    first_bar = 0 if rng.random() < 0.25 else int(pick(rng, starts))
    preroll_bars = min(first_bar, math.ceil(PREROLL_SECONDS / bar_seconds))
    chosen = all_bars[first_bar - preroll_bars : first_bar + needed]
    return chosen, first_bar, preroll_bars


def draw_mixing(song: Song, style: Style, seed: int) -> Mixing:
    rng = part_rng(seed, "mixing")
    send = float(rng.uniform(*style.reverb_send))
    beat = 60.0 / song.tempo
    echo = rng.random() < style.echo_probability and song.lead is not None
    return Mixing(
        reverb_seconds=float(rng.uniform(*style.reverb_seconds)),
        reverb_send={"drums": 0.15 * send, "bass": 0.0, "harmony": send, "lead": 0.8 * send},
        echo_seconds=float(pick(rng, (0.5, 0.75, 1.0))) * beat,
        echo_feedback=float(rng.uniform(0.25, 0.5)),
        echo_send=float(rng.uniform(0.15, 0.3)) if echo else 0.0,
        stem_level_db={
            "drums": float(rng.uniform(-1.0, 1.0)),
            "bass": float(rng.uniform(-4.0, -1.0)),
            "harmony": float(rng.uniform(-7.0, -4.0)),
            "lead": float(rng.uniform(-5.0, -2.0)),
        },
    )


def arrange(song: Song, style: Style, seed: int, seconds: float) -> Score:
    bars, first_bar, preroll_bars = window_bars(song, seconds, seed, style.breakdown_weight)
    timing = Timing(float(song.tempo), first_bar, song.swing, song.humanize)
    notes = (
        drum_notes(song, bars, timing, seed)
        + bass_notes(song, bars, timing, seed)
        + harmony_notes(song, bars, timing, seed)
        + lead_notes(song, bars, timing, seed)
    )
    preroll = preroll_bars * 240.0 / song.tempo
    kept = tuple(sorted((n for n in notes if -preroll <= n.start < seconds), key=lambda n: (n.start, n.stem, n.pitch)))
    sections = []
    for bar in bars:
        start, end = timing.time(bar.index, 0), timing.time(bar.index + 1, 0)
        if sections and sections[-1].name == bar.section and bar.index != bar.section_start:
            sections[-1] = Section(bar.section, sections[-1].start, end)
        else:
            sections.append(Section(bar.section, start, end))
    return Score(kept, float(song.tempo), seconds, preroll, tuple(sections), draw_mixing(song, style, seed))

