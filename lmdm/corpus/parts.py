"""The arranger's third step: a ``Song``, its ``Bar``s and a ``Timing`` -> the notes of each part.

    drum_notes / bass_notes / harmony_notes / lead_notes: (Song, [Bar], Timing, seed) -> [Note]

Drums follow the style's patterns with fills and build-ups, bass follows the chords (or the kick),
harmony is voice-led chords (held, comped or arpeggiated), the lead plays two-bar motifs in phrases.
Each part draws from its own random stream (``lmdm.corpus.song.part_rng``).
"""

from __future__ import annotations

from collections.abc import Sequence

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
from lmdm.corpus.score import (
    CLOSED_HAT,
    CRASH,
    DRUM_VOICES,
    KICK,
    OPEN_HAT,
    SNARE,
    Note,
)
from lmdm.corpus.song import (
    Bar,
    Song,
    Timing,
    chord_classes,
    chord_degree,
    part_rng,
    pick,
)
from lmdm.corpus.theory import (
    harmony_scale,
    nearest_in_set,
    next_pitch_above,
    pitch_in_range,
    scale_pitch_classes,
    scale_pitches,
    voice_lead,
)

Voicings = dict[int, tuple[int, ...]]  # song bar index -> chord pitches

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
