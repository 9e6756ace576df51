"""The on-disk format of a corpus directory.

::

    corpus.json          settings the corpus was made with (format version, rates, seed, stems)
    index.jsonl          one JSON object per example: id, split, caption, attributes
    000000.flac          the mix: mono, 16-bit FLAC
    000000.stems.flac    the stems: 4 channels in STEM_NAMES order (drums, bass, harmony, lead)
    000000.npz           annotations (frame-rate arrays, see annotate.Annotations) + the notes
    ...

FLAC stores 16-bit integers, so reading back gives the float32 arrays rounded to 1/32768;
the decoded stems still sum to the decoded mix within 3e-4.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from lmdm.corpus.annotate import ARRAY_NAMES, Annotations
from lmdm.corpus.example import Example
from lmdm.corpus.score import STEM_NAMES, Note

FORMAT_VERSION = 1
META_NAME = "corpus.json"
INDEX_NAME = "index.jsonl"
SUBTYPE = "PCM_16"
SPLITS: tuple[str, ...] = ("train", "valid", "test")


def example_id(index: int) -> str:
    return f"{index:06d}"


def split_for(seed: int) -> str:
    """Deterministic split from the example seed: about 90 % train, 5 % valid, 5 % test."""
    bucket = zlib.crc32(str(seed).encode()) % 100
    return "train" if bucket < 90 else ("valid" if bucket < 95 else "test")


def mix_path(root: Path, name: str) -> Path:
    return root / f"{name}.flac"


def stems_path(root: Path, name: str) -> Path:
    return root / f"{name}.stems.flac"


def annotations_path(root: Path, name: str) -> Path:
    return root / f"{name}.npz"


def notes_to_arrays(notes: tuple[Note, ...]) -> dict[str, np.ndarray]:
    instruments = sorted({n.instrument for n in notes})
    return {
        "note_start": np.array([n.start for n in notes], dtype=np.float64),
        "note_duration": np.array([n.duration for n in notes], dtype=np.float64),
        "note_pitch": np.array([n.pitch for n in notes], dtype=np.int16),
        "note_velocity": np.array([n.velocity for n in notes], dtype=np.float64),
        "note_instrument": np.array([instruments.index(n.instrument) for n in notes], dtype=np.int16),
        "note_stem": np.array([STEM_NAMES.index(n.stem) for n in notes], dtype=np.int8),
        "instrument_names": np.array(instruments, dtype=np.str_),
    }


def arrays_to_notes(arrays: Any) -> tuple[Note, ...]:
    names = [str(s) for s in arrays["instrument_names"]]
    return tuple(
        Note(float(start), float(duration), int(pitch), float(velocity), names[int(instrument)], STEM_NAMES[int(stem)])
        for start, duration, pitch, velocity, instrument, stem in zip(
            arrays["note_start"],
            arrays["note_duration"],
            arrays["note_pitch"],
            arrays["note_velocity"],
            arrays["note_instrument"],
            arrays["note_stem"],
        )
    )


def write_example(root: Path, name: str, example: Example) -> None:
    rate = example.sample_rate
    soundfile.write(mix_path(root, name), example.audio, rate, subtype=SUBTYPE, format="FLAC")
    soundfile.write(stems_path(root, name), example.stem_array().T, rate, subtype=SUBTYPE, format="FLAC")
    arrays = example.annotations.arrays() | notes_to_arrays(example.notes)
    arrays["frame_rate"] = np.array(example.annotations.frame_rate, dtype=np.float64)
    with open(annotations_path(root, name), "wb") as f:
        np.savez_compressed(f, **arrays)


def index_record(name: str, example: Example) -> dict[str, Any]:
    """The ``index.jsonl`` line for an example: id, split, caption, frames, then its attributes."""
    return {
        "id": name,
        "split": split_for(example.attributes.seed),
        "caption": example.caption,
        "frames": example.annotations.frames,
        **example.attributes.to_json(),
    }


def read_annotations(root: Path, name: str) -> tuple[Annotations, tuple[Note, ...]]:
    with np.load(annotations_path(root, name)) as data:
        annotations = Annotations(float(data["frame_rate"]), **{k: data[k] for k in ARRAY_NAMES})
        return annotations, arrays_to_notes(data)


def read_audio(path: Path, start: int = 0, samples: int | None = None) -> np.ndarray:
    """float32 ``[samples]`` (mono) or ``[channels, samples]``, read from ``start``."""
    with soundfile.SoundFile(path) as f:
        f.seek(start)
        data = f.read(frames=-1 if samples is None else samples, dtype="float32", always_2d=True)
    return data[:, 0] if data.shape[1] == 1 else np.ascontiguousarray(data.T)


def write_meta(root: Path, meta: dict[str, Any]) -> None:
    (root / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(root: Path) -> dict[str, Any]:
    return json.loads((root / META_NAME).read_text())


def append_index(root: Path, record: dict[str, Any]) -> None:
    with open(root / INDEX_NAME, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_index(root: Path) -> list[dict[str, Any]]:
    path = root / INDEX_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_index(root: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite the index sorted by id (atomically, via a temporary file)."""
    temporary = root / (INDEX_NAME + ".tmp")
    temporary.write_text("".join(json.dumps(r) + "\n" for r in sorted(records, key=lambda r: r["id"])))
    temporary.replace(root / INDEX_NAME)
