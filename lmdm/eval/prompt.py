"""What a prompt asks for, read with the corpus's own vocabulary, and the probe's label sets.

    parse_prompt("deep house with warm piano chords at 122 bpm, A minor")
    -> Asked(style='house', instruments=('piano',), tempo=122, key='A', ...)

Every phrase the caption generator can write for a style or an instrument (``caption.STYLE_WORDS``,
``caption.INSTRUMENT_WORDS``), plus the plain names ("lofi_hip_hop", "lofi hip hop"), is matched
case-insensitively as whole words, longest phrase first, so "trap drums" is an instrument and not
the style "trap", and "deep house" is one style phrase.
"""

from __future__ import annotations

import re

import attrs

from lmdm.conditioning.clock import prompt_tempo
from lmdm.corpus.caption import INSTRUMENT_WORDS, STYLE_WORDS
from lmdm.corpus.theory import PITCH_NAMES, SCALES

INSTRUMENT_NAMES: tuple[str, ...] = tuple(sorted(INSTRUMENT_WORDS))
KEY_NAMES: tuple[str, ...] = PITCH_NAMES
# Tempo buckets: bucket i holds [edges[i-1], edges[i]) BPM, open at both ends (8 buckets).
TEMPO_EDGES: tuple[float, ...] = (80.0, 95.0, 110.0, 122.0, 130.0, 140.0, 155.0)

_FLAT_SPELLINGS = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "Fb": "E", "E#": "F", "B#": "C"}


@attrs.frozen
class Asked:
    """The attributes a prompt names; None / () where it names none."""

    text: str
    style: str | None = None  # a corpus style name; the first one named
    instruments: tuple[str, ...] = attrs.field(default=(), converter=tuple)  # instrument names, in prompt order
    tempo: int | None = None  # BPM
    key: str | None = None  # tonic, spelled as in the corpus ("C#", "Eb", ...)


def _phrases() -> list[tuple[str, str, str]]:
    """(phrase, kind, name) for every style and instrument phrase, longest first."""
    table: list[tuple[str, str, str]] = []
    for kind, words in (("style", STYLE_WORDS), ("instrument", INSTRUMENT_WORDS)):
        for name, phrases in words.items():
            for phrase in {*phrases, name, name.replace("_", " ")}:
                table.append((phrase.lower(), kind, name))
    return sorted(table, key=lambda t: (-len(t[0]), t[0]))


PHRASES = _phrases()
_SCALE_WORDS = "|".join(sorted({s.replace("_", " ") for s in SCALES} | {"maj", "min"}, key=len, reverse=True))
_KEY_IN = re.compile(r"\bin\s+([A-G])([#b]?)(?![\w#])")


def find_phrases(text: str) -> list[tuple[int, str, str]]:
    """(position, kind, name) of every style/instrument phrase in text, without overlaps, in text order."""
    lowered = text.lower()
    taken = [False] * len(lowered)
    found: list[tuple[int, str, str]] = []
    for phrase, kind, name in PHRASES:
        for m in re.finditer(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", lowered):
            if not any(taken[m.start() : m.end()]):
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
                found.append((m.start(), kind, name))
    return sorted(found)


def parse_key(text: str) -> str | None:
    """'A minor', 'F# phrygian', 'Bb min', 'in Eb' -> tonic as the corpus spells it; None if absent."""
    for pattern in (re.compile(rf"(?<![\w#])([A-G])([#b]?)\s*(?:{_SCALE_WORDS})\b"), _KEY_IN):
        m = pattern.search(text)
        if m:
            name = m.group(1) + m.group(2)
            return _FLAT_SPELLINGS.get(name, name)
    return None


def parse_tempo(text: str) -> int | None:
    bpm = prompt_tempo(text)  # the same reading as LiveSession's clock
    return None if bpm is None else int(round(bpm))


def parse_prompt(text: str) -> Asked:
    found = find_phrases(text)
    styles = [name for _, kind, name in found if kind == "style"]
    instruments = list(dict.fromkeys(name for _, kind, name in found if kind == "instrument"))
    return Asked(
        text=text,
        style=styles[0] if styles else None,
        instruments=tuple(instruments),
        tempo=parse_tempo(text),
        key=parse_key(text),
    )

