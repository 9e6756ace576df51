"""One training example: ``make_example(seed)`` -> audio, stems, caption, attributes, annotations.

The data path: seed -> ``draw_song`` (choices) -> ``arrange`` (notes) -> ``render_score``
(stems, mix) -> ``annotate`` (frames) and ``caption`` (text). Same seed, same arguments,
same arrays, bit for bit.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from lmdm.corpus.annotate import Annotations, annotate, hop_size
from lmdm.corpus.arrange import arrange, draw_song, part_rng, pick
from lmdm.corpus.caption import CaptionFacts, caption
from lmdm.corpus.render import render_score
from lmdm.corpus.sampled import SampledInstruments, find_soundfont
from lmdm.corpus.score import STEM_NAMES, Note
from lmdm.corpus.styles import STYLE_NAMES, STYLES
from lmdm.corpus.theory import key_name, pitch_class_name


INSTRUMENT_SOURCES = ("synth", "sampled")


@attrs.frozen
class Attributes:
    style: str
    tempo: int  # BPM
    key: str  # tonic, e.g. "A" or "Eb"
    scale: str  # a key of theory.SCALES, e.g. "minor", "dorian", "major_pentatonic"
    mood: str
    instruments: tuple[str, ...] = attrs.field(converter=tuple)  # heard in this example, drums first
    seed: int
    seconds: float
    sample_rate: int
    frame_rate: float
    renderer: str = "synth"  # "synth" (numpy voices) or "sampled:<soundfont file name>"

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["instruments"] = list(self.instruments)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attributes:
        names = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@attrs.frozen(eq=False)
class Example:
    audio: np.ndarray  # [samples] float32 mix, peaks <= -1 dBFS
    stems: dict[str, np.ndarray]  # STEM_NAMES -> [samples] float32; they sum exactly to audio
    caption: str
    attributes: Attributes
    annotations: Annotations
    notes: tuple[Note, ...]  # the score, times in seconds from the start (may start < 0)

    @property
    def sample_rate(self) -> int:
        return self.attributes.sample_rate

    def stem_array(self) -> np.ndarray:
        """``[4, samples]`` in ``STEM_NAMES`` order (drums, bass, harmony, lead)."""
        return np.stack([self.stems[name] for name in STEM_NAMES])


def heard_instruments(notes: tuple[Note, ...], seconds: float) -> tuple[str, ...]:
    """Instruments with at least one note sounding inside the example, in stem order."""
    heard: dict[str, int] = {}
    for note in notes:
        if note.start < seconds and note.end > 0 and note.instrument not in heard:
            heard[note.instrument] = STEM_NAMES.index(note.stem)
    return tuple(sorted(heard, key=lambda name: (heard[name], name)))


def make_example(
    seed: int,
    seconds: float = 40.0,
    *,
    style: str | None = None,
    sample_rate: int = 16000,
    frame_rate: float = 25.0,
    any_tempo: float = 0.0,
    instruments: str = "synth",
    soundfont: str | None = None,
) -> Example:
    """Generate one example. ``seconds`` is rounded to a whole number of frames.

    ``any_tempo``: the chance that the song's tempo is drawn from 60-180 BPM (styles.ANY_TEMPO)
    instead of its style's usual range; 0 gives the same example as always.
    ``instruments``: "synth" (the numpy voices) or "sampled" (a General MIDI soundfont played by
    FluidSynth: `soundfont`, a path or file name, or the first installed of sampled.SOUNDFONTS)."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if style is not None and style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLE_NAMES)}")
    if instruments not in INSTRUMENT_SOURCES:
        raise ValueError(f"instruments must be one of {', '.join(INSTRUMENT_SOURCES)}, got {instruments!r}")
    sampled = SampledInstruments(find_soundfont(soundfont), sample_rate) if instruments == "sampled" else None
    hop = hop_size(sample_rate, frame_rate)
    frames = max(1, int(round(seconds * frame_rate)))
    seconds = frames * hop / sample_rate
    style_name = style if style is not None else pick(part_rng(seed, "style"), STYLE_NAMES)
    song = draw_song(seed, STYLES[style_name], any_tempo)
    score = arrange(song, STYLES[style_name], seed, seconds)
    mix, stems = render_score(score, sample_rate, seed, sampled)
    attributes = Attributes(
        style=style_name,
        tempo=song.tempo,
        key=pitch_class_name(song.tonic),
        scale=song.scale,
        mood=song.mood,
        instruments=heard_instruments(score.notes, seconds),
        seed=seed,
        seconds=seconds,
        sample_rate=sample_rate,
        frame_rate=frame_rate,
        renderer="synth" if sampled is None else f"sampled:{sampled.soundfont.name}",
    )
    facts = CaptionFacts(
        style=style_name,
        tempo=song.tempo,
        key=key_name(song.tonic, song.scale),
        mood=song.mood,
        instruments=tuple(reversed(attributes.instruments)),
    )
    return Example(
        audio=mix,
        stems=stems,
        caption=caption(facts, part_rng(seed, "caption")),
        attributes=attributes,
        annotations=annotate(score, mix, sample_rate, frame_rate),
        notes=score.notes,
    )
