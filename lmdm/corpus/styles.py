"""Styles: each one a distribution over tempo, mood, harmony, instruments and patterns.

A ``Style`` is plain data. The arranger draws one value from every tuple (uniformly unless
noted). Pattern and instrument names refer to ``patterns`` and ``instruments``/``drums``.
"""

from __future__ import annotations

import attrs

# Mood -> brightness: -1 prefers minor-like scales, +1 major-like, 0 either.
MOODS: dict[str, int] = {
    "dark": -1,
    "hypnotic": 0,
    "driving": 0,
    "tense": -1,
    "uplifting": 1,
    "groovy": 0,
    "warm": 1,
    "soulful": 0,
    "calm": 0,
    "dreamy": 1,
    "melancholic": -1,
    "peaceful": 1,
    "chill": 0,
    "nostalgic": -1,
    "mellow": 0,
    "happy": 1,
    "energetic": 0,
    "bright": 1,
    "relaxed": 1,
    "romantic": 1,
    "aggressive": -1,
    "moody": -1,
    "atmospheric": 0,
}

# Every style can be rendered at any tempo of this range ("any tempo" songs: write_corpus(any_tempo=...)),
# so that a model trained on them obeys a tempo outside a style's usual range.
ANY_TEMPO: tuple[int, int] = (60, 180)

BRIGHT_SCALES = frozenset({"major", "lydian", "mixolydian", "major_pentatonic"})
DARK_SCALES = frozenset({"minor", "phrygian", "dorian", "minor_pentatonic"})


@attrs.frozen
class Style:
    name: str
    tempo: tuple[int, int]  # inclusive BPM range
    moods: tuple[str, ...]
    scales: tuple[str, ...]
    drum_kits: tuple[str, ...]
    drum_patterns: tuple[str, ...]
    basses: tuple[str, ...]
    bass_patterns: tuple[str, ...]  # "acid" and "follow_kick" are generated, not looked up
    harmony: tuple[str, ...]
    comp_patterns: tuple[str, ...]  # COMP_PATTERNS or ARPEGGIOS names
    leads: tuple[str, ...]
    progressions: tuple[tuple[int, ...], ...]  # scale degrees, 0-based
    chord_shapes: tuple[str, ...]
    chord_beats: tuple[int, ...]  # how long each chord lasts, in beats
    drums_probability: float = 1.0
    bass_probability: float = 1.0
    lead_probability: float = 0.8
    pad_probability: float = 0.3  # chance of a second, sustained pad under the comping
    lead_density: tuple[float, float] = (0.35, 0.6)  # chance of a note on each lead grid step
    lead_grid: tuple[int, ...] = (2,)  # lead rhythm grid in sixteenths (1 = 16ths, 2 = 8ths)
    swing: tuple[float, float] = (0.0, 0.0)  # delay of off-beat 16ths, as a fraction of a 16th
    humanize: float = 0.0  # standard deviation of timing jitter, seconds
    reverb_send: tuple[float, float] = (0.1, 0.3)
    reverb_seconds: tuple[float, float] = (1.0, 2.0)
    echo_probability: float = 0.3
    breakdown_weight: float = 1.0


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            name="techno",
            tempo=(122, 138),
            moods=("dark", "hypnotic", "driving", "tense"),
            scales=("minor", "phrygian", "dorian", "minor_pentatonic"),
            drum_kits=("909_drums",),
            drum_patterns=("techno_drive", "techno_minimal", "techno_rolling"),
            basses=("acid_bass", "sub_bass", "reese_bass"),
            bass_patterns=("acid", "rolling", "offbeat", "gallop"),
            harmony=("chord_stab", "supersaw_pad", "fm_bell", "synth_pluck"),
            comp_patterns=("stabs_offbeat", "stabs_house", "hold", "arp_up"),
            leads=("saw_lead", "fm_bell", "synth_pluck", "square_lead"),
            progressions=((0,), (0, 0, 5, 6), (0, 6), (0, 3), (0, 1)),
            chord_shapes=("triad", "power", "sus2"),
            chord_beats=(8, 16),
            lead_probability=0.55,
            lead_density=(0.25, 0.5),
            lead_grid=(1, 2),
            swing=(0.0, 0.05),
            reverb_send=(0.1, 0.25),
            breakdown_weight=1.5,
        ),
        Style(
            name="house",
            tempo=(118, 128),
            moods=("uplifting", "groovy", "warm", "soulful", "happy"),
            scales=("minor", "dorian", "major", "mixolydian"),
            drum_kits=("909_drums", "808_drums"),
            drum_patterns=("house_classic", "house_shuffle"),
            basses=("fm_bass", "sub_bass", "synth_bass", "organ"),
            bass_patterns=("offbeat", "offbeat_octave", "syncopated", "octaves"),
            harmony=("organ", "electric_piano", "chord_stab", "piano"),
            comp_patterns=("stabs_house", "stabs_offbeat", "charleston", "halves"),
            leads=("synth_pluck", "electric_piano", "saw_lead", "mallet"),
            progressions=((0, 5, 3, 4), (1, 4, 0, 0), (0, 3), (5, 3, 0, 4), (0, 2, 3, 4)),
            chord_shapes=("seventh", "ninth", "triad"),
            chord_beats=(4, 8),
            lead_probability=0.6,
            swing=(0.05, 0.15),
            reverb_send=(0.1, 0.3),
        ),
        Style(
            name="ambient",
            tempo=(60, 90),
            moods=("calm", "dreamy", "melancholic", "peaceful", "atmospheric"),
            scales=("major", "lydian", "dorian", "major_pentatonic", "minor"),
            drum_kits=("808_drums", "brush_drums"),
            drum_patterns=("ambient_pulse", "ambient_heartbeat"),
            basses=("sub_bass", "warm_pad"),
            bass_patterns=("whole", "halves"),
            harmony=("warm_pad", "supersaw_pad", "strings", "electric_piano"),
            comp_patterns=("hold", "hold", "halves", "arp_eighths"),
            leads=("fm_bell", "soft_lead", "mallet", "synth_pluck"),
            progressions=((0, 3), (0, 5, 3, 4), (0, 4, 5, 3), (0, 1), (3, 0)),
            chord_shapes=("add9", "sus2", "seventh", "triad"),
            chord_beats=(8, 16),
            drums_probability=0.3,
            bass_probability=0.6,
            lead_probability=0.7,
            pad_probability=0.1,
            lead_density=(0.15, 0.35),
            lead_grid=(2, 4),
            reverb_send=(0.35, 0.6),
            reverb_seconds=(2.5, 4.0),
            echo_probability=0.6,
            breakdown_weight=0.5,
        ),
        Style(
            name="lofi_hip_hop",
            tempo=(70, 92),
            moods=("chill", "nostalgic", "mellow", "melancholic", "relaxed"),
            scales=("minor", "dorian", "major"),
            drum_kits=("lofi_drums",),
            drum_patterns=("boom_bap", "lofi_lazy"),
            basses=("upright_bass", "sub_bass", "fm_bass"),
            bass_patterns=("lofi_bounce", "syncopated", "root_fifth", "walk"),
            harmony=("electric_piano", "piano", "nylon_guitar", "warm_pad"),
            comp_patterns=("lofi_lazy", "hold", "charleston", "halves"),
            leads=("soft_lead", "mallet", "fm_bell", "electric_piano"),
            progressions=((1, 4, 0, 0), (0, 5, 1, 4), (3, 2, 1, 0), (0, 3), (5, 4, 3, 4)),
            chord_shapes=("seventh", "ninth"),
            chord_beats=(4, 8),
            lead_probability=0.6,
            pad_probability=0.2,
            lead_density=(0.25, 0.45),
            swing=(0.12, 0.28),
            humanize=0.008,
            reverb_send=(0.15, 0.35),
        ),
        Style(
            name="pop",
            tempo=(92, 132),
            moods=("happy", "uplifting", "bright", "energetic", "nostalgic"),
            scales=("major", "mixolydian", "minor", "major_pentatonic"),
            drum_kits=("acoustic_drums", "808_drums"),
            drum_patterns=("pop_rock", "pop_disco", "pop_halftime"),
            basses=("synth_bass", "fm_bass", "upright_bass"),
            bass_patterns=("eighths", "pop_drive", "syncopated", "octaves"),
            harmony=("piano", "clean_guitar", "organ", "supersaw_pad"),
            comp_patterns=("strum_eighths", "pop_pulse", "halves", "hold"),
            leads=("square_lead", "saw_lead", "fm_bell", "synth_pluck"),
            progressions=((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (0, 5, 3, 4), (3, 4, 0, 0)),
            chord_shapes=("triad", "triad", "add9"),
            chord_beats=(4, 8),
            lead_probability=0.85,
            lead_density=(0.4, 0.65),
            reverb_send=(0.1, 0.3),
        ),
        Style(
            name="bossa_nova",
            tempo=(110, 140),
            moods=("warm", "relaxed", "romantic", "mellow", "melancholic"),
            scales=("major", "dorian", "minor"),
            drum_kits=("brush_drums",),
            drum_patterns=("bossa", "jazz_ride"),
            basses=("upright_bass",),
            bass_patterns=("root_fifth", "walk", "halves"),
            harmony=("nylon_guitar", "electric_piano", "piano"),
            comp_patterns=("bossa_comp", "charleston", "pop_pulse"),
            leads=("soft_lead", "electric_piano", "mallet"),
            progressions=((1, 4, 0, 5), (0, 1, 4, 0), (1, 4, 0, 0), (0, 5, 1, 4), (3, 2, 1, 0)),
            chord_shapes=("seventh", "ninth"),
            chord_beats=(4, 8),
            lead_probability=0.75,
            lead_density=(0.3, 0.5),
            humanize=0.006,
            reverb_send=(0.1, 0.25),
            breakdown_weight=0.4,
        ),
        Style(
            name="drum_and_bass",
            tempo=(160, 178),
            moods=("energetic", "dark", "atmospheric", "driving", "melancholic"),
            scales=("minor", "dorian", "phrygian"),
            drum_kits=("break_drums",),
            drum_patterns=("dnb_two_step", "dnb_break"),
            basses=("reese_bass", "sub_bass", "808_bass"),
            bass_patterns=("dnb_roll", "dnb_stab", "whole", "halves"),
            harmony=("supersaw_pad", "strings", "electric_piano", "warm_pad"),
            comp_patterns=("hold", "halves", "arp_updown"),
            leads=("fm_bell", "synth_pluck", "saw_lead", "soft_lead"),
            progressions=((0, 5, 2, 6), (0, 3), (0, 5), (0, 6, 5, 6), (5, 6, 0, 0)),
            chord_shapes=("seventh", "add9", "triad"),
            chord_beats=(8, 16),
            lead_probability=0.55,
            lead_density=(0.2, 0.45),
            lead_grid=(2, 4),
            reverb_send=(0.2, 0.4),
            reverb_seconds=(1.5, 3.0),
            breakdown_weight=1.3,
        ),
        Style(
            name="trap",
            tempo=(130, 150),
            moods=("dark", "aggressive", "moody", "tense", "melancholic"),
            scales=("minor", "phrygian", "minor_pentatonic"),
            drum_kits=("trap_drums",),
            drum_patterns=("trap", "trap_sparse"),
            basses=("808_bass",),
            bass_patterns=("follow_kick",),
            harmony=("fm_bell", "strings", "synth_pluck", "warm_pad"),
            comp_patterns=("hold", "arp_eighths", "halves"),
            leads=("fm_bell", "synth_pluck", "soft_lead", "mallet"),
            progressions=((0, 0, 5, 5), (0, 5, 6, 5), (0, 3), (0, 1), (5, 6)),
            chord_shapes=("triad", "seventh"),
            chord_beats=(8, 16),
            lead_probability=0.7,
            lead_density=(0.25, 0.5),
            lead_grid=(1, 2),
            reverb_send=(0.15, 0.35),
        ),
        Style(
            name="synthwave",
            tempo=(84, 118),
            moods=("nostalgic", "dreamy", "driving", "moody", "energetic"),
            scales=("minor", "dorian", "major"),
            drum_kits=("808_drums", "acoustic_drums"),
            drum_patterns=("synthwave", "synthwave_drive"),
            basses=("synth_bass", "fm_bass"),
            bass_patterns=("octaves", "eighths", "gallop"),
            harmony=("supersaw_pad", "strings", "synth_pluck", "electric_piano"),
            comp_patterns=("hold", "arp_up", "arp_updown", "halves"),
            leads=("saw_lead", "square_lead", "fm_bell"),
            progressions=((0, 5, 3, 4), (0, 3, 5, 4), (0, 6, 5, 6), (5, 3, 0, 4)),
            chord_shapes=("triad", "add9", "seventh"),
            chord_beats=(4, 8),
            lead_probability=0.8,
            lead_density=(0.3, 0.55),
            reverb_send=(0.2, 0.4),
            reverb_seconds=(1.5, 3.0),
            echo_probability=0.6,
        ),
    )
}

STYLE_NAMES: tuple[str, ...] = tuple(STYLES)
