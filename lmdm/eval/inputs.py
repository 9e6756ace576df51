"""What `lmdm eval` reads: audio files (or a folder, or a corpus directory) and their prompts.

- A file: .wav, .flac or .ogg, any rate and channel count (mixed to mono, resampled to 16 kHz).
- A folder: every audio file under it, sorted, except corpus stem files (``*.stems.flac``).
- A corpus directory (has ``corpus.json``): its mixes, optionally one split, and each caption
  as the prompt.
- A prompt per file from a sidecar ``NAME.txt`` (the text) or ``NAME.json`` (``{"prompt": ...}``).

Every problem is an `EvalInputError` with a one-line message naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
import soundfile

from lmdm.audio.resample import resample
from lmdm.eval.features import SAMPLE_RATE, as_mono

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
STEMS_SUFFIX = ".stems.flac"


class EvalInputError(ValueError):
    """Missing file, unreadable audio, empty folder, bad prompt file: one line, for the user."""


@attrs.frozen(eq=False)
class Item:
    """One signal to evaluate."""

    name: str  # path or a label such as "audio[0]"
    audio: np.ndarray  # [T] float32 mono at 16 kHz
    prompt: str | None

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def read_audio(path: str | Path) -> np.ndarray:
    """An audio file -> float32 [T] mono at 16 kHz."""
    path = Path(path)
    if not path.is_file():
        raise EvalInputError(f"no such file: {path}")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # [T, channels]
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        raise EvalInputError(f"cannot read audio file {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    audio = as_mono(data)
    if rate != SAMPLE_RATE:
        audio = resample(audio.astype(np.float64), rate, SAMPLE_RATE).astype(np.float32)
    if len(audio) == 0:
        raise EvalInputError(f"{path} holds no samples")
    return audio


def sidecar_prompt(path: Path) -> str | None:
    """The prompt of `path` from NAME.txt or NAME.json next to it, or None."""
    text, js = path.with_suffix(".txt"), path.with_suffix(".json")
    if text.is_file():
        return text.read_text().strip() or None
    if js.is_file():
        try:
            data = json.loads(js.read_text())
        except json.JSONDecodeError as e:
            raise EvalInputError(f"{js}: not JSON ({e.msg} at line {e.lineno})") from None
        prompt = data.get("prompt") if isinstance(data, dict) else None
        if prompt is not None and not isinstance(prompt, str):
            raise EvalInputError(f"{js}: \"prompt\" must be a string")
        return prompt
    return None


def is_corpus(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.json").is_file()


def corpus_files(root: Path, splits: Sequence[str] | None) -> list[tuple[Path, str]]:
    """(mix path, caption) of a corpus directory's examples in `splits` (all if None)."""
    from lmdm.corpus.reader import CorpusReader

    try:
        reader = CorpusReader(root)
    except (OSError, ValueError, KeyError) as e:
        raise EvalInputError(f"cannot read corpus {root}: {e}") from None
    entries = [e for e in reader.entries if splits is None or e.split in splits]
    if not entries:
        raise EvalInputError(f"corpus {root} has no examples in split {','.join(splits or [])}")
    return [(root / f"{e.id}.flac", e.caption) for e in entries]


def audio_files(path: str | Path) -> list[Path]:
    """A file -> [it]; a folder -> its audio files (recursively, sorted, no stem files)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            raise EvalInputError(f"{path}: not an audio file (expected {', '.join(AUDIO_SUFFIXES)})")
        return [path]
    if not path.is_dir():
        raise EvalInputError(f"no such file or directory: {path}")
    found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.endswith(STEMS_SUFFIX) and p.is_file())
    if not found:
        raise EvalInputError(f"no {'/'.join(AUDIO_SUFFIXES)} files under {path}")
    return found


def load_items(paths: Sequence[str | Path], splits: Sequence[str] | None = None) -> list[Item]:
    """Files, folders and corpus directories -> items with their sidecar (or caption) prompts."""
    items: list[Item] = []
    for path in map(Path, paths):
        if is_corpus(path):
            items += [Item(str(p), read_audio(p), caption) for p, caption in corpus_files(path, splits)]
        else:
            items += [Item(str(p), read_audio(p), sidecar_prompt(p)) for p in audio_files(path)]
    if not items:
        raise EvalInputError("nothing to evaluate")
    return items
