"""Music theory as small pure functions: pitch names, scales, chords and voice leading.

Pitches are MIDI numbers (60 = middle C). Pitch classes are 0..11 with 0 = C.
A chord is described by a scale *degree* (0-based) of the song's harmony scale, so one
progression such as ``(0, 5, 3, 4)`` reads as I-vi-IV-V in major and i-VI-iv-v in minor.
"""

from __future__ import annotations

from collections.abc import Sequence

PITCH_NAMES: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}

# Chords need a seven-note scale to stack thirds on; pentatonic songs borrow their parent mode.
_HARMONY_PARENT: dict[str, str] = {"major_pentatonic": "major", "minor_pentatonic": "minor"}

# Chord shapes as steps along the seven-note scale, counted from the chord root.
CHORD_SHAPES: dict[str, tuple[int, ...]] = {
    "power": (0, 4),
    "triad": (0, 2, 4),
    "sus2": (0, 1, 4),
    "sus4": (0, 3, 4),
    "seventh": (0, 2, 4, 6),
    "add9": (0, 2, 4, 8),
    "ninth": (0, 2, 4, 6, 8),
}


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def pitch_class_name(pitch_class: int) -> str:
    return PITCH_NAMES[pitch_class % 12]


def key_name(tonic: int, scale: str) -> str:
    """``key_name(9, "minor") == "A minor"``; underscores become spaces."""
    return f"{pitch_class_name(tonic)} {scale.replace('_', ' ')}"


def harmony_scale(scale: str) -> str:
    """The seven-note scale chords are built from (pentatonic scales use their parent mode)."""
    return _HARMONY_PARENT.get(scale, scale)


def scale_pitch_classes(tonic: int, scale: str) -> frozenset[int]:
    return frozenset((tonic + step) % 12 for step in SCALES[scale])


def chord_pitch_classes(tonic: int, scale: str, degree: int, shape: str) -> tuple[int, ...]:
    """Pitch classes of the chord on ``degree`` of ``scale``, root first."""
    steps = SCALES[harmony_scale(scale)]
    return tuple((tonic + steps[(degree + s) % 7]) % 12 for s in CHORD_SHAPES[shape])


def pitch_in_range(pitch_class: int, low: int) -> int:
    """The lowest MIDI pitch >= ``low`` with the given pitch class."""
    return low + (pitch_class - low) % 12


def next_pitch_above(pitch: int, pitch_class: int) -> int:
    """The lowest MIDI pitch strictly above ``pitch`` with the given pitch class."""
    return pitch + 1 + (pitch_class - pitch - 1) % 12


def close_voicings(pitch_classes: Sequence[int], low: int, high: int) -> list[tuple[int, ...]]:
    """Every inversion of the chord, stacked upwards in close position, that fits in [low, high]."""
    voicings: list[tuple[int, ...]] = []
    count = len(pitch_classes)
    for inversion in range(count):
        order = [pitch_classes[(inversion + i) % count] for i in range(count)]
        for base in range(low, high + 1):
            if base % 12 != order[0] % 12:
                continue
            pitches = [base]
            for pitch_class in order[1:]:
                pitches.append(next_pitch_above(pitches[-1], pitch_class))
            if pitches[-1] <= high:
                voicings.append(tuple(pitches))
    return voicings


def voice_lead(pitch_classes: Sequence[int], previous: Sequence[int] | None, low: int, high: int) -> tuple[int, ...]:
    """Choose the close voicing nearest to ``previous`` (smallest summed movement of sorted voices).

    Without a previous chord, the voicing whose centre is nearest the middle of the range wins.
    """
    candidates = close_voicings(pitch_classes, low, high)
    if not candidates:
        raise ValueError(f"no voicing of {tuple(pitch_classes)} fits in [{low}, {high}]")
    if previous is None:
        middle = (low + high) / 2.0
        return min(candidates, key=lambda v: abs(sum(v) / len(v) - middle))
    prev = sorted(previous)

    def movement(voicing: tuple[int, ...]) -> float:
        # Compare the two chords as evenly spread point sets, so different sizes still compare.
        n = max(len(voicing), len(prev))
        a = [voicing[min(len(voicing) - 1, i * len(voicing) // n)] for i in range(n)]
        b = [prev[min(len(prev) - 1, i * len(prev) // n)] for i in range(n)]
        return sum(abs(x - y) for x, y in zip(a, b))

    return min(candidates, key=movement)


def nearest_in_set(pitch: int, allowed_pitch_classes: frozenset[int] | Sequence[int]) -> int:
    """The MIDI pitch nearest to ``pitch`` whose pitch class is allowed (ties go down)."""
    allowed = frozenset(allowed_pitch_classes)
    if not allowed:
        raise ValueError("empty pitch-class set")
    for distance in range(12):
        if (pitch - distance) % 12 in allowed:
            return pitch - distance
        if (pitch + distance) % 12 in allowed:
            return pitch + distance
    raise AssertionError("unreachable: some pitch class is within 6 semitones")


def scale_pitches(tonic: int, scale: str, low: int, high: int) -> list[int]:
    """All MIDI pitches of the scale in [low, high], ascending."""
    classes = scale_pitch_classes(tonic, scale)
    return [p for p in range(low, high + 1) if p % 12 in classes]


def beats_to_seconds(beats: float, tempo: float) -> float:
    return beats * 60.0 / tempo
