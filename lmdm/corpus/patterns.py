"""Rhythm patterns as step strings, one character per sixteenth note (16 per 4/4 bar).

Drums and chords: ``X`` accent, ``x`` normal hit, ``o`` ghost (soft) hit, ``-`` hold the previous
hit (chords only), ``.`` rest. A pattern may be longer than a bar (32 steps = two bars); it
loops. Bass lines use the same grid with pitch letters instead of ``x``:
``R`` chord root, ``O`` root an octave up, ``5`` fifth, ``3`` third, ``7`` seventh of the chord,
``A`` approach: the scale note just below the *next* chord's root.
"""

from __future__ import annotations

STEPS_PER_BAR = 16
HIT_VELOCITY: dict[str, float] = {"X": 1.0, "x": 0.8, "o": 0.45}
BASS_TOKENS = frozenset("RO537A")

DRUM_PATTERNS: dict[str, dict[str, str]] = {
    "techno_drive": {
        "kick": "X...X...X...X...",
        "clap": "....x.......x...",
        "hat": "oxoooxoooxoooxoo",
        "open_hat": "..x...x...x...x.",
    },
    "techno_minimal": {
        "kick": "X...X...X...X...",
        "rim": "...x..x....x.x..",
        "hat": "..x...x...x...x.",
        "clap": "............x...",
    },
    "techno_rolling": {
        "kick": "X...X...X...X...",
        "hat": "xoxoxoxoxoxoxoxo",
        "clap": "....x.......x...",
        "low_tom": "...o.......o..o.",
    },
    "house_classic": {
        "kick": "X...X...X...X...",
        "clap": "....x.......x...",
        "hat": "x.o.x.o.x.o.x.o.",
        "open_hat": "..x...x...x...x.",
    },
    "house_shuffle": {
        "kick": "X...X...X...X...",
        "clap": "....x.......x...",
        "hat": "xoxxxoxxxoxxxoxx",
        "shaker": "o.o.o.o.o.o.o.o.",
        "open_hat": "..x...x...x...x.",
    },
    "boom_bap": {
        "kick": "X.....x...x.....",
        "snare": "....X.......X...",
        "hat": "x.x.x.xox.x.x.xo",
    },
    "lofi_lazy": {
        "kick": "X......x..X.....X.....x.........",
        "snare": "....X.......X..o....X.......X...",
        "hat": "x.xox.x.x.xox.x.x.xox.x.x.xox.xo",
    },
    "pop_rock": {
        "kick": "X.....x.X.......",
        "snare": "....X.......X...",
        "hat": "x.x.x.x.x.x.x.x.",
    },
    "pop_disco": {
        "kick": "X...X...X...X...",
        "snare": "....X.......X...",
        "hat": "x.x.x.x.x.x.x.x.",
        "open_hat": "..x...x...x...x.",
    },
    "pop_halftime": {
        "kick": "X.......X.x.....",
        "snare": "........X.......",
        "hat": "x.x.x.x.x.x.x.x.",
        "shaker": "oxoxoxoxoxoxoxox",
    },
    "bossa": {
        "kick": "X..x....X..x....",
        "rim": "x..x..x...x..x..",
        "shaker": "xoxoxoxoxoxoxoxo",
    },
    "jazz_ride": {
        "kick": "o.......o.......",
        "ride": "x...x.oxx...x.ox",
        "hat": "....x.......x...",
        "snare": "..........o.....",
    },
    "dnb_two_step": {
        "kick": "X.........X.....",
        "snare": "....X..o....X..o",
        "hat": "x.x.x.x.x.x.x.x.",
    },
    "dnb_break": {
        "kick": "X.X.......XX....X.X.......x.....",
        "snare": "....X..o.o..X..o....X..o.o..X...",
        "hat": "x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.",
        "ride": "x...x...x...x...x...x...x...x...",
    },
    "trap": {
        "kick": "X.........X.......X...X.........",
        "clap": "........X...............X.......",
        "hat": "x.x.x.x.x.x.x.x.",
        "open_hat": "..............x.",
    },
    "trap_sparse": {
        "kick": "X......X..X.....",
        "snare": "........X.......",
        "hat": "xxx.x.xxx.x.x.x.",
    },
    "ambient_pulse": {
        "kick": "X.......o.......",
        "rim": "....o.......o...",
        "shaker": "o.o.o.o.o.o.o.o.",
    },
    "ambient_heartbeat": {
        "kick": "X..o............",
        "hat": "....o.......o...",
    },
    "synthwave": {
        "kick": "X...X...X...X...",
        "snare": "....X.......X...",
        "hat": "x.x.x.x.x.x.x.x.",
    },
    "synthwave_drive": {
        "kick": "X.....x.X.......",
        "snare": "....X.......X...",
        "hat": "xoxoxoxoxoxoxoxo",
    },
}

# Fills replace every drum voice on the last ``len`` steps of a bar (the string is right-aligned).
FILLS: dict[str, dict[str, str]] = {
    "snare_roll": {"snare": "oxxX"},
    "snare_triplets": {"snare": "x.xX.xX."},
    "tom_run": {"high_tom": "xx......", "mid_tom": "..xx....", "low_tom": "....xx.X"},
    "kick_snare": {"kick": "x...x...", "snare": "..x.x.xX"},
    "open_hat_lift": {"kick": "x...", "open_hat": "..X."},
    "clap_stutter": {"clap": "xxoX"},
}

BASS_PATTERNS: dict[str, str] = {
    "offbeat": "..R...R...R...R.",
    "offbeat_octave": "..R...O...R...O.",
    "rolling": ".RRR.RRR.RRR.RRR",
    "gallop": "R.RR..RR..RR..RR",
    "eighths": "R-R-R-R-R-R-R-R-",
    "pop_drive": "R-R-R-R-5-5-R-A-",
    "octaves": "R-O-R-O-R-O-R-O-",
    "root_fifth": "R-----5-R-----5-",
    "walk": "R---3---5---A---",
    "whole": "R---------------",
    "halves": "R-------5-------",
    "syncopated": "R-----R---R-5-..",
    "lofi_bounce": "R-----.R--..5-A-",
    "dnb_roll": "R-------..R-R---",
    "dnb_stab": "R-.......R-.....",
    "dub": "R---..R-5-..A---",
}

COMP_PATTERNS: dict[str, str] = {
    "hold": "x---------------",
    "halves": "x-------x-------",
    "stabs_offbeat": "..x...x...x...x.",
    "stabs_house": "..x..x....x..x..",
    "strum_eighths": "X-x-x-x-X-x-x-x-",
    "pop_pulse": "X--x--x-x--x--x-",
    "bossa_comp": "x-.x-.x-.-x-.x-.",
    "lofi_lazy": "x-------.-x-----",
    "skank": "....x-......x-..",
    "charleston": "x-----x---------",
}

# Harmony rhythms that are not step strings: arpeggios over the chord tones.
ARPEGGIOS: dict[str, tuple[int, str]] = {
    # name: (steps per note, direction)
    "arp_up": (1, "up"),
    "arp_updown": (1, "updown"),
    "arp_eighths": (2, "up"),
}


def pattern_step(pattern: str, bar: int, step: int) -> str:
    """The character of a looping pattern at ``step`` (0..15) of ``bar``."""
    return pattern[(bar * STEPS_PER_BAR + step) % len(pattern)]


def hold_length(pattern: str, bar: int, step: int) -> int:
    """How many steps a hit at ``step`` lasts: itself plus the ``-`` holds that follow it in the bar."""
    length = 1
    while step + length < STEPS_PER_BAR and pattern_step(pattern, bar, step + length) == "-":
        length += 1
    return length
