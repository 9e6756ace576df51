"""Reading training/evaluation audio: files -> float32 mono numpy arrays at the codec's sample rate."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling of a 1-D signal by zero-padding or truncating its spectrum."""
    if rate_in == rate_out:
        return x
    n_out = round(len(x) * rate_out / rate_in)
    spectrum = np.fft.rfft(x)
    kept = np.zeros(n_out // 2 + 1, dtype=spectrum.dtype)
    k = min(len(spectrum), len(kept))
    kept[:k] = spectrum[:k]
    return (np.fft.irfft(kept, n_out) * (n_out / len(x))).astype(np.float32)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """A wav/flac file -> float32 [samples] mono at `sample_rate` (channels averaged, rate converted, both logged)."""
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # [samples, channels]
    except (sf.LibsndfileError, RuntimeError) as e:
        raise ValueError(f"cannot read audio file {path}: {e}") from e
    if data.shape[1] > 1:
        log.info("%s: %d channels, averaging to mono", path, data.shape[1])
    audio = data.mean(axis=1)
    if rate != sample_rate:
        log.info("%s: resampling %d Hz -> %d Hz", path, rate, sample_rate)
        audio = resample(audio, rate, sample_rate)
    return audio.astype(np.float32)


STEMS_SUFFIX = ".stems.flac"  # the corpus's multi-channel stem files (lmdm/corpus): one instrument group per channel


def load_stems(path: str | Path, sample_rate: int) -> list[np.ndarray]:
    """A corpus stems file -> one float32 mono array per channel (drums, bass, harmony, lead), at `sample_rate`."""
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # [samples, stems]
    except (sf.LibsndfileError, RuntimeError) as e:
        raise ValueError(f"cannot read audio file {path}: {e}") from e
    return [resample(np.ascontiguousarray(data[:, c]), rate, sample_rate).astype(np.float32) for c in range(data.shape[1])]


def load_corpus_split(directory: str | Path, sample_rate: int, split: str = "train") -> list[tuple[Path, np.ndarray]]:
    """A corpus directory (lmdm/corpus) -> its `split` as [(path, audio)]: each mix, then each of its stems."""
    from lmdm.corpus.reader import CorpusReader  # the corpus package is not needed to read plain folders

    reader = CorpusReader(directory)
    out: list[tuple[Path, np.ndarray]] = []
    for entry in reader.select(split):
        path = Path(directory) / f"{entry.id}.flac"
        out.append((path, resample(reader.load_audio(entry), reader.sample_rate, sample_rate)))
        out.extend((path, resample(np.ascontiguousarray(s), reader.sample_rate, sample_rate)) for s in reader.load_stems(entry))
    return out


def load_audio_dir(directory: str | Path, sample_rate: int) -> list[tuple[Path, np.ndarray]]:
    """Every .wav/.flac under `directory` (recursively, sorted) -> [(path, audio)].

    A corpus stems file (`*.stems.flac`) gives one entry per stem instead of a downmix, so a codec
    trained on the corpus also hears solo instruments (what a live player feeds in).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"audio directory {directory} does not exist")
    paths = sorted(p for p in directory.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not paths:
        raise ValueError(f"no {'/'.join(AUDIO_SUFFIXES)} files under {directory}")
    out: list[tuple[Path, np.ndarray]] = []
    for p in paths:
        if p.name.endswith(STEMS_SUFFIX):
            out.extend((p, stem) for stem in load_stems(p, sample_rate))
        else:
            out.append((p, load_audio(p, sample_rate)))
    return out
