"""The arranger: seed + style -> a ``Song`` (the drawn choices) -> a ``Score`` (every note).

Three steps, each a plain function:

1. ``draw_song``: tempo, key, mood, instruments, patterns, progression from the style.
2. ``plan_bars``: a song form in 4/8-bar sections (intro, groove, theme, variation, breakdown,
   drop) saying per bar which parts play, where fills, crashes and build-ups go.
3. ``drum_notes`` / ``bass_notes`` / ``harmony_notes`` / ``lead_notes``: notes per part.

Every part draws from its own random stream (``part_rng``), so e.g. a change to the melody
generator leaves the drums of a seed untouched.

Where it lives: steps 1 and 2 (and ``Timing``) in ``lmdm.corpus.song``, step 3 in
``lmdm.corpus.parts``; here the window of the song the example plays, its mix and ``arrange``.
The names of both are importable from this module as well.
"""

from __future__ import annotations

import math

from lmdm.corpus.parts import (
    BASS_LOW,
    HARMONY_RANGE,
    LEAD_RANGE,
    STRUMMED,
    Motif,
    Voicings,
    acid_pattern,
    bass_notes,
    bass_pitch,
    chord_voicings,
    drum_notes,
    harmony_notes,
    kick_pattern,
    lead_notes,
    make_motif,
    realise_motif,
    velocity_jitter,
)
from lmdm.corpus.score import Mixing, Score, Section
from lmdm.corpus.song import (
    PADS,
    SECTION_LAYERS,
    Bar,
    Song,
    Timing,
    any_tempo_draw,
    chord_classes,
    chord_degree,
    draw_song,
    part_rng,
    pick,
    plan_bars,
    plan_sections,
    scales_for_mood,
)
from lmdm.corpus.styles import Style

PREROLL_SECONDS = 2.0  # at least this much music is rendered before the example starts


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


__all__ = [
    "BASS_LOW",
    "HARMONY_RANGE",
    "LEAD_RANGE",
    "PADS",
    "PREROLL_SECONDS",
    "SECTION_LAYERS",
    "STRUMMED",
    "Bar",
    "Motif",
    "Song",
    "Timing",
    "Voicings",
    "acid_pattern",
    "any_tempo_draw",
    "arrange",
    "bass_notes",
    "bass_pitch",
    "chord_classes",
    "chord_degree",
    "chord_voicings",
    "draw_mixing",
    "draw_song",
    "drum_notes",
    "harmony_notes",
    "kick_pattern",
    "lead_notes",
    "make_motif",
    "part_rng",
    "pick",
    "plan_bars",
    "plan_sections",
    "realise_motif",
    "scales_for_mood",
    "velocity_jitter",
    "window_bars",
]
