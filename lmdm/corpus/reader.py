"""Reading a corpus directory: list examples, load them whole, or draw aligned random crops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from lmdm.corpus.annotate import Annotations, hop_size
from lmdm.corpus.example import Attributes, Example
from lmdm.corpus.files import (
    META_NAME,
    SPLITS,
    annotations_path,
    mix_path,
    read_annotations,
    read_audio,
    read_index,
    read_meta,
    stems_path,
)
from lmdm.corpus.score import STEM_NAMES, Note


@attrs.frozen
class Entry:
    """One line of ``index.jsonl``."""

    id: str
    split: str
    caption: str
    frames: int
    attributes: Attributes

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Entry:
        attributes = Attributes.from_json(record)
        return cls(record["id"], record["split"], record["caption"], int(record["frames"]), attributes)


@attrs.frozen(eq=False)
class Crop:
    """A window of one example: audio, stems and annotations cut at the same frame boundaries."""

    audio: np.ndarray  # [frames * hop] float32
    stems: np.ndarray | None  # [4, frames * hop] float32 in STEM_NAMES order, or None if not loaded
    annotations: Annotations
    caption: str
    attributes: Attributes
    example_id: str
    start_frame: int


class CorpusReader:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / META_NAME).exists():
            raise FileNotFoundError(f"{self.root} is not a corpus directory (no {META_NAME})")
        self.meta = read_meta(self.root)
        self.sample_rate = int(self.meta["sample_rate"])
        self.frame_rate = float(self.meta["frame_rate"])
        self.hop = hop_size(self.sample_rate, self.frame_rate)
        self.entries: tuple[Entry, ...] = tuple(Entry.from_record(r) for r in read_index(self.root))
        self._by_id = {e.id: e for e in self.entries}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def entry(self, key: str | int | Entry) -> Entry:
        """An entry by id (``"000012"``), by position in the index, or passed through."""
        if isinstance(key, Entry):
            return key
        if isinstance(key, int):
            return self.entries[key]
        return self._by_id[key]

    def select(self, split: str | None = None, style: str | None = None) -> list[Entry]:
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
        return [
            e
            for e in self.entries
            if (split is None or e.split == split) and (style is None or e.attributes.style == style)
        ]

    def hours(self, split: str | None = None) -> float:
        return sum(e.attributes.seconds for e in self.select(split)) / 3600.0

    def load_audio(self, key: str | int | Entry, start_frame: int = 0, frames: int | None = None) -> np.ndarray:
        entry = self.entry(key)
        samples = None if frames is None else frames * self.hop
        return read_audio(mix_path(self.root, entry.id), start_frame * self.hop, samples)

    def load_stems(self, key: str | int | Entry, start_frame: int = 0, frames: int | None = None) -> np.ndarray:
        """``[4, samples]`` in STEM_NAMES order."""
        entry = self.entry(key)
        samples = None if frames is None else frames * self.hop
        return read_audio(stems_path(self.root, entry.id), start_frame * self.hop, samples)

    def load_annotations(self, key: str | int | Entry) -> Annotations:
        return read_annotations(self.root, self.entry(key).id)[0]

    def load_notes(self, key: str | int | Entry) -> tuple[Note, ...]:
        return read_annotations(self.root, self.entry(key).id)[1]

    def load(self, key: str | int | Entry) -> Example:
        """The whole example as written (audio rounded to 16 bits by FLAC)."""
        entry = self.entry(key)
        annotations, notes = read_annotations(self.root, entry.id)
        stems = self.load_stems(entry)
        return Example(
            audio=self.load_audio(entry),
            stems={name: stems[i] for i, name in enumerate(STEM_NAMES)},
            caption=entry.caption,
            attributes=entry.attributes,
            annotations=annotations,
            notes=notes,
        )

    def crop(self, key: str | int | Entry, start_frame: int, frames: int, *, with_stems: bool = True) -> Crop:
        entry = self.entry(key)
        if start_frame < 0 or start_frame + frames > entry.frames:
            raise ValueError(f"crop {start_frame}+{frames} outside example {entry.id} of {entry.frames} frames")
        return Crop(
            audio=self.load_audio(entry, start_frame, frames),
            stems=self.load_stems(entry, start_frame, frames) if with_stems else None,
            annotations=self.load_annotations(entry).slice(start_frame, start_frame + frames),
            caption=entry.caption,
            attributes=entry.attributes,
            example_id=entry.id,
            start_frame=start_frame,
        )

    def random_crops(
        self,
        seconds: float,
        *,
        split: str | None = "train",
        seed: int = 0,
        with_stems: bool = True,
    ) -> Iterator[Crop]:
        """Endless crops of ``seconds`` (rounded to whole frames) from random examples and
        random frame offsets, reproducible from ``seed``."""
        frames = max(1, int(round(seconds * self.frame_rate)))
        pool = [e for e in self.select(split) if e.frames >= frames]
        if not pool:
            raise ValueError(f"no {split or 'any'} example is at least {frames} frames long")
        rng = np.random.default_rng(seed)
        while True:
            entry = pool[int(rng.integers(len(pool)))]
            start = int(rng.integers(entry.frames - frames + 1))
            yield self.crop(entry, start, frames, with_stems=with_stems)

    def files(self, key: str | int | Entry) -> tuple[Path, Path, Path]:
        """(mix, stems, annotations) paths of an example."""
        name = self.entry(key).id
        return mix_path(self.root, name), stems_path(self.root, name), annotations_path(self.root, name)
