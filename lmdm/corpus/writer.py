"""Making a corpus directory: many examples in parallel, with a progress bar and resume.

Example ``i`` of a corpus made with seed ``s`` uses ``example_seed(s, i)`` and style
``styles[i % len(styles)]`` (so styles are balanced). Each finished example appends its line
to ``index.jsonl``; running ``write_corpus`` again on the same directory with the same
settings skips the examples already listed, and the index is rewritten sorted at the end.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from lmdm.corpus.example import INSTRUMENT_SOURCES, make_example
from lmdm.corpus.files import (
    FORMAT_VERSION,
    META_NAME,
    append_index,
    example_id,
    index_record,
    read_index,
    read_meta,
    write_example,
    write_index,
    write_meta,
)
from lmdm.corpus.sampled import find_soundfont
from lmdm.corpus.score import STEM_NAMES
from lmdm.corpus.styles import STYLE_NAMES, STYLES
from lmdm.progress import advance, progress as progress_bar


@attrs.frozen
class Job:
    index: int
    seed: int
    style: str
    seconds: float
    sample_rate: int
    frame_rate: float
    root: str
    any_tempo: float = 0.0
    instruments: str = "synth"
    soundfont: str | None = None


@attrs.frozen
class WriteReport:
    examples: int  # examples in the corpus when done
    written: int  # examples made by this call (the rest were already there)
    audio_hours: float  # audio in the whole corpus
    written_hours: float  # audio made by this call
    wall_seconds: float
    bytes_on_disk: int

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio made per second of wall time (all workers together), for this call."""
        return self.written_hours * 3600.0 / self.wall_seconds if self.wall_seconds > 0 else 0.0


def example_seed(corpus_seed: int, index: int) -> int:
    return (corpus_seed << 32) | index


def plan_jobs(
    root: Path,
    hours: float,
    seed: int,
    seconds_per_example: float,
    styles: Sequence[str],
    sample_rate: int,
    frame_rate: float,
    any_tempo: float = 0.0,
    instruments: str = "synth",
    soundfont: str | None = None,
) -> list[Job]:
    count = max(1, math.ceil(hours * 3600.0 / seconds_per_example))
    return [
        Job(i, example_seed(seed, i), styles[i % len(styles)], seconds_per_example, sample_rate, frame_rate, str(root),
            any_tempo, instruments, soundfont)
        for i in range(count)
    ]


def run_job(job: Job) -> dict[str, Any]:
    """Make one example and write its files (runs in a worker process)."""
    example = make_example(
        job.seed, job.seconds, style=job.style, sample_rate=job.sample_rate, frame_rate=job.frame_rate, any_tempo=job.any_tempo,
        instruments=job.instruments, soundfont=job.soundfont,
    )
    name = example_id(job.index)
    write_example(Path(job.root), name, example)
    return index_record(name, example)


def _check_meta(root: Path, meta: dict[str, Any]) -> None:
    if not (root / META_NAME).exists():
        return
    old = read_meta(root)
    keys = ("format_version", "seed", "sample_rate", "frame_rate", "seconds_per_example", "styles")
    defaults = {"any_tempo": 0.0, "instruments": "synth"}  # settings older corpora do not name
    if any(old.get(k) != meta.get(k) for k in keys) or any(old.get(k, d) != meta.get(k, d) for k, d in defaults.items()):
        raise ValueError(
            f"{root} holds a corpus made with other settings ({old}); use a new directory or the same settings"
        )


def write_corpus(
    out_dir: str | Path,
    hours: float,
    seed: int = 0,
    seconds_per_example: float = 40.0,
    workers: int = 2,
    progress: bool = True,
    *,
    styles: Sequence[str] | None = None,
    sample_rate: int = 16000,
    frame_rate: float = 25.0,
    any_tempo: float = 0.0,
    instruments: str = "synth",
    soundfont: str | Path | None = None,
) -> WriteReport:
    """Write about ``hours`` of examples to ``out_dir`` (see ``files`` for the format).

    ``workers > 1`` renders in that many ``spawn``-ed processes, so a script calling this must
    do so under ``if __name__ == "__main__":``. ``any_tempo``: the share of songs whose tempo is
    drawn from 60-180 BPM whatever their style (styles.ANY_TEMPO). ``instruments``: "synth" (numpy
    voices) or "sampled" (a GM soundfont through FluidSynth, lmdm.corpus.sampled; `soundfont` a
    path or file name, default the first installed). ``progress`` shows a bar on stderr when it is a
    terminal. Returns what was done; the corpus is then readable with ``CorpusReader``.
    """
    if hours <= 0 or seconds_per_example <= 0:
        raise ValueError("hours and seconds_per_example must be > 0")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0.0 <= any_tempo <= 1.0:
        raise ValueError(f"any_tempo is a share from 0 to 1, got {any_tempo!r}")
    styles = tuple(styles) if styles else STYLE_NAMES
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise ValueError(f"unknown styles {unknown}; choose from {', '.join(STYLE_NAMES)}")
    if instruments not in INSTRUMENT_SOURCES:
        raise ValueError(f"instruments must be one of {', '.join(INSTRUMENT_SOURCES)}, got {instruments!r}")
    font = str(find_soundfont(soundfont)) if instruments == "sampled" else None  # fails here, not in a worker
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "sample_rate": sample_rate,
        "frame_rate": frame_rate,
        "seconds_per_example": seconds_per_example,
        "styles": list(styles),
        "stems": list(STEM_NAMES),
        "audio": "16-bit FLAC, mono mix + 4-channel stems",
    }
    if any_tempo:
        meta["any_tempo"] = any_tempo
    if font is not None:
        meta["instruments"] = "sampled"
        meta["soundfont"] = Path(font).name
    _check_meta(root, meta)
    write_meta(root, meta)

    jobs = plan_jobs(root, hours, seed, seconds_per_example, styles, sample_rate, frame_rate, any_tempo, instruments, font)
    done = {r["id"]: r for r in read_index(root)}
    todo = [j for j in jobs if example_id(j.index) not in done]
    total_hours = len(jobs) * seconds_per_example / 3600.0
    started = time.monotonic()
    bar = progress_bar(total=len(jobs), desc="corpus", unit="ex", enabled=None if progress else False)
    bar.update(len(jobs) - len(todo))
    records = dict(done)
    made: list[float] = []  # seconds of audio of each example made by this call
    earlier_seconds = sum(r["seconds"] for r in done.values())

    def finish(record: dict[str, Any]) -> None:
        append_index(root, record)
        records[record["id"]] = record
        made.append(record["seconds"])
        advance(bar, 1, f"{(earlier_seconds + sum(made)) / 3600.0:.2f}/{total_hours:.2f} h audio")

    try:
        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                finish(run_job(job))
        else:
            context = multiprocessing.get_context("spawn")
            with context.Pool(processes=workers) as pool:
                for record in pool.imap_unordered(run_job, todo, chunksize=1):
                    finish(record)
    finally:
        bar.close()
    write_index(root, list(records.values()))
    size = sum(p.stat().st_size for p in root.iterdir() if p.is_file())
    return WriteReport(
        examples=len(records),
        written=len(todo),
        audio_hours=sum(r["seconds"] for r in records.values()) / 3600.0,
        written_hours=sum(made) / 3600.0,
        wall_seconds=time.monotonic() - started,
        bytes_on_disk=size,
    )
