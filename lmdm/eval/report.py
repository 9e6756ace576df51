"""`evaluate`: audio (+ prompts) -> a `Report` with FD-probe, prompt adherence and scores over time.

    report = evaluate("outputs/", prompts="dub techno, deep chords")      # or sidecar NAME.txt / .json
    report.fd_probe, report.adherence.style_accuracy, report.files[0].segments[3].tempo_bpm

Per file, the probe sees non-overlapping windows (5 s); FD-probe fits one Gaussian to all windows of
all files and compares it with the reference (by default the training corpus's statistics shipped
with the probe). A segment (15 s by default) groups consecutive windows and gets the probe's style,
the asked style's probability, tempo, key, loudness, checks and its *drift*: the mean squared
Mahalanobis distance of its windows to the reference Gaussian, over the dimension (1 = a typical
corpus window; a rising drift over a long stream means it wanders away from the corpus).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from lmdm.audio.resample import resample
from lmdm.eval.features import SAMPLE_RATE, as_mono
from lmdm.eval.frechet import Gaussian, fit_gaussian, frechet_distance
from lmdm.eval.frechet import drift as drift_of
from lmdm.eval.inputs import EvalInputError, Item, is_corpus, load_items
from lmdm.analysis import Checks, Key, Loudness, audio_checks, key_of, loudness, tempo_bpm
from lmdm.eval.probe import Probe, ProbeOutput, load_probe
from lmdm.eval.prompt import Asked, parse_prompt

TEMPO_TOLERANCE = 0.04  # a tempo estimate within 4 % of the asked one counts as a hit (MIREX "accuracy 1")


@attrs.frozen
class Segment:
    start: float  # seconds
    end: float
    style: str  # the probe's most likely style
    style_probability: float  # its probability
    asked_probability: float | None  # probability of the style the prompt asks for
    tempo_bpm: float  # model-free (NaN if no onsets)
    key: str  # model-free, e.g. "A minor"
    rms_db: float
    drift: float  # mean squared Mahalanobis distance of the windows to the reference / D (1 = typical)
    flags: tuple[str, ...] = attrs.field(converter=tuple)


@attrs.frozen
class Adherence:
    """How well the audio matches what its prompts ask for, per probe window (tempo: per file)."""

    windows: int  # windows whose prompt names a style
    style_accuracy: float | None  # fraction of those windows whose top style is the asked one
    style_probability: float | None  # mean probability of the asked style
    style_chance: float  # 1 / number of styles: both style numbers for a probe that knows nothing
    instrument_probability: float | None  # mean probability of each asked instrument, over windows
    tempo_files: int  # files whose prompt names a tempo
    tempo_accuracy: float | None  # fraction of them within 4 % of it
    tempo_accuracy_octave: float | None  # the same, also accepting half, double, 2/3 and 3/2 the tempo
    key_files: int  # files whose prompt names a key
    key_accuracy: float | None  # fraction of them whose model-free key has the asked tonic


@attrs.frozen
class FileReport:
    name: str
    seconds: float
    prompt: str | None
    asked: Asked | None
    style: str  # the probe's most likely style over the whole file
    style_probability: float
    tempo_bpm: float
    key: str
    loudness: Loudness
    checks: Checks
    drift: float
    windows: int
    adherence: Adherence | None
    segments: tuple[Segment, ...] = attrs.field(converter=tuple)


@attrs.frozen
class Report:
    files: tuple[FileReport, ...] = attrs.field(converter=tuple)
    fd_probe: float
    windows: int  # probe windows in all files together
    reference: str  # what the FD compares with
    reference_windows: int
    adherence: Adherence | None
    landmarks: Mapping[str, float]  # FD-probe of held-out corpus, white noise, silence (from the probe's training)
    landmark_files: int | None  # how many held-out files the landmarks were measured on
    probe: str
    segment_seconds: float

    def to_json(self) -> dict[str, Any]:
        return jsonable(attrs.asdict(self, recurse=True))


def jsonable(value: Any) -> Any:
    """NaN -> None, tuples -> lists, numpy scalars -> Python, so json.dumps gives standard JSON."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


# ----------------------------------------------------------------------------------------------
# Small pure pieces


def tempo_hit(estimate: float, asked: float, tolerance: float = TEMPO_TOLERANCE, octave: bool = False) -> bool:
    factors = (1.0, 0.5, 2.0, 2.0 / 3.0, 1.5) if octave else (1.0,)
    return bool(np.isfinite(estimate)) and any(abs(estimate / (asked * f) - 1.0) <= tolerance for f in factors)


def adherence(
    outputs: Sequence[ProbeOutput], asked: Sequence[Asked | None], tempi: Sequence[float], keys: Sequence[Key], probe: Probe
) -> Adherence:
    """Prompt adherence over files: probe windows for style and instruments; one model-free tempo
    and key per file."""
    styles, instruments = probe.config.styles, probe.config.instruments
    hits: list[bool] = []
    p_style: list[float] = []
    p_inst: list[float] = []
    tempo_1: list[bool] = []
    tempo_2: list[bool] = []
    key_hits: list[bool] = []
    for out, ask, bpm, key in zip(outputs, asked, tempi, keys):
        if ask is None:
            continue
        if ask.style in styles:
            s = styles.index(ask.style)
            hits += list(out.style.argmax(axis=1) == s)
            p_style += list(out.style[:, s])
        for name in ask.instruments:
            if name in instruments:
                p_inst += list(out.instruments[:, instruments.index(name)])
        if ask.tempo is not None:
            tempo_1.append(tempo_hit(bpm, ask.tempo))
            tempo_2.append(tempo_hit(bpm, ask.tempo, octave=True))
        if ask.key is not None:
            key_hits.append(key.tonic == ask.key)

    def mean(values: list) -> float | None:
        return float(np.mean(values)) if values else None

    return Adherence(
        windows=len(hits),
        style_accuracy=mean(hits),
        style_probability=mean(p_style),
        style_chance=1.0 / len(styles),
        instrument_probability=mean(p_inst),
        tempo_files=len(tempo_1),
        tempo_accuracy=mean(tempo_1),
        tempo_accuracy_octave=mean(tempo_2),
        key_files=len(key_hits),
        key_accuracy=mean(key_hits),
    )


def segment_windows(count: int, per_segment: int) -> list[range]:
    """Window indices grouped into segments of `per_segment` consecutive windows (the last may be shorter)."""
    return [range(i, min(count, i + per_segment)) for i in range(0, count, per_segment)]


def segments(item: Item, out: ProbeOutput, asked: Asked | None, reference: Gaussian, segment_seconds: float, probe: Probe) -> list[Segment]:
    styles = probe.config.styles
    per_segment = max(1, int(round(segment_seconds / probe.config.window_seconds)))
    result = []
    for group in segment_windows(len(out.starts), per_segment):
        start, end = float(out.starts[group[0]]), float(out.starts[group[-1]] + out.seconds[group[-1]])
        audio = item.audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        probs = out.style[list(group)].mean(axis=0)
        top = int(np.argmax(probs))
        asked_p = float(probs[styles.index(asked.style)]) if asked is not None and asked.style in styles else None
        result.append(
            Segment(
                start=start,
                end=end,
                style=styles[top],
                style_probability=float(probs[top]),
                asked_probability=asked_p,
                tempo_bpm=tempo_bpm(audio, SAMPLE_RATE),
                key=str(key_of(audio, SAMPLE_RATE)),
                rms_db=loudness(audio, SAMPLE_RATE).rms_db,
                drift=drift_of(out.embeddings[list(group)], reference),
                flags=audio_checks(audio, SAMPLE_RATE).flags,
            )
        )
    return result


# ----------------------------------------------------------------------------------------------
# Inputs


AudioInput = str | Path | np.ndarray | Sequence[str | Path | np.ndarray]


def as_items(audio_or_paths: AudioInput, sample_rate: int, splits: Sequence[str] | None) -> list[Item]:
    """Paths (files, folders, corpus dirs) and/or arrays [T] or [T, channels] -> items (prompts from sidecars)."""
    single = isinstance(audio_or_paths, (str, Path)) or (isinstance(audio_or_paths, np.ndarray) and not _is_batch(audio_or_paths))
    things = [audio_or_paths] if single else list(audio_or_paths)  # type: ignore[arg-type]
    items: list[Item] = []
    for i, thing in enumerate(things):
        if isinstance(thing, (str, Path)):
            items += load_items([thing], splits)
        else:
            audio = as_mono(np.asarray(thing))
            if sample_rate != SAMPLE_RATE:
                audio = resample(audio.astype(np.float64), sample_rate, SAMPLE_RATE).astype(np.float32)
            if len(audio) == 0:
                raise EvalInputError(f"audio[{i}] holds no samples")
            items.append(Item(f"audio[{i}]", audio, None))
    if not items:
        raise EvalInputError("nothing to evaluate")
    return items


def _is_batch(array: np.ndarray) -> bool:
    """A 2-D array is one multi-channel signal [T, channels] when it has <= 8 columns, else [signals, T]."""
    return array.ndim == 2 and array.shape[1] > 8


def with_prompts(items: list[Item], prompts: str | Sequence[str | None] | Mapping[str, str] | None) -> list[Item]:
    if prompts is None:
        return items
    if isinstance(prompts, str):
        return [attrs.evolve(it, prompt=prompts) for it in items]
    if isinstance(prompts, Mapping):
        return [attrs.evolve(it, prompt=prompts.get(it.name, prompts.get(Path(it.name).name, it.prompt))) for it in items]
    prompts = list(prompts)
    if len(prompts) != len(items):
        raise EvalInputError(f"{len(prompts)} prompts for {len(items)} signals")
    return [attrs.evolve(it, prompt=p) for it, p in zip(items, prompts)]


def shuffled(items: list[Item], seed: int) -> list[Item]:
    """Give each item another item's prompt (a random derangement when there are >= 2): the floor of adherence."""
    if len(items) < 2:
        return items
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(items))
        if not np.any(order == np.arange(len(items))):
            break
    return [attrs.evolve(it, prompt=items[j].prompt) for it, j in zip(items, order)]


def reference_gaussian(reference: Gaussian | str | Path | Sequence[np.ndarray] | np.ndarray | None, probe: Probe) -> tuple[Gaussian, str]:
    """None -> the probe's shipped statistics; a Gaussian; embeddings [N, D]; audio paths/arrays -> embedded.
    A corpus directory as reference means its train split."""
    if reference is None:
        if probe.reference is None:
            raise EvalInputError(f"probe {probe.path} ships no reference statistics; pass --reference DIR")
        return probe.reference, str(probe.info.get("reference", "the probe's training corpus"))
    if isinstance(reference, Gaussian):
        return reference, "given statistics"
    if isinstance(reference, np.ndarray) and reference.ndim == 2 and reference.shape[1] == probe.config.embed_dim:
        return fit_gaussian(reference), f"{len(reference)} given embeddings"
    splits = ("train",) if isinstance(reference, (str, Path)) and is_corpus(Path(reference)) else None
    items = as_items(reference, SAMPLE_RATE, splits)
    embeddings = np.concatenate([probe.embed_audio(it.audio).embeddings for it in items])
    where = f"{reference} ({'train split, ' if splits else ''}{len(items)} files)" if isinstance(reference, (str, Path)) else f"{len(items)} given signals"
    return fit_gaussian(embeddings), where


# ----------------------------------------------------------------------------------------------
# The whole evaluation


def evaluate(
    audio_or_paths: AudioInput,
    reference: Gaussian | str | Path | Sequence[np.ndarray] | np.ndarray | None = None,
    prompts: str | Sequence[str | None] | Mapping[str, str] | None = None,
    *,
    probe: Probe | str | Path | None = None,
    segment_seconds: float = 15.0,
    sample_rate: int = SAMPLE_RATE,
    splits: Sequence[str] | None = None,
    shuffle_prompts: int | None = None,
) -> Report:
    """Evaluate audio files/folders/corpus dirs or arrays against a reference and the prompts.

    prompts: None (sidecar NAME.txt / NAME.json, or a corpus's captions), one prompt for all, one
    per signal, or {name: prompt}. splits: which splits of a corpus directory to read.
    shuffle_prompts: a seed to give every signal another one's prompt (the adherence floor).
    """
    probe = probe if isinstance(probe, Probe) else load_probe(probe)
    if segment_seconds < probe.config.window_seconds:
        raise EvalInputError(f"segments must be at least one probe window ({probe.config.window_seconds:g} s), got {segment_seconds:g} s")
    items = with_prompts(as_items(audio_or_paths, sample_rate, splits), prompts)
    if shuffle_prompts is not None:
        items = shuffled(items, shuffle_prompts)
    ref, ref_name = reference_gaussian(reference, probe)
    outputs = [probe.embed_audio(it.audio) for it in items]
    asked = [parse_prompt(it.prompt) if it.prompt else None for it in items]
    tempi = [tempo_bpm(it.audio, SAMPLE_RATE) for it in items]
    keys = [key_of(it.audio, SAMPLE_RATE) for it in items]
    files = []
    for it, out, ask, bpm, key in zip(items, outputs, asked, tempi, keys):
        probs = out.style.mean(axis=0)
        top = int(np.argmax(probs))
        files.append(
            FileReport(
                name=it.name,
                seconds=it.seconds,
                prompt=it.prompt,
                asked=ask,
                style=probe.config.styles[top],
                style_probability=float(probs[top]),
                tempo_bpm=bpm,
                key=str(key),
                loudness=loudness(it.audio, SAMPLE_RATE),
                checks=audio_checks(it.audio, SAMPLE_RATE),
                drift=drift_of(out.embeddings, ref),
                windows=len(out.starts),
                adherence=adherence([out], [ask], [bpm], [key], probe) if ask is not None else None,
                segments=segments(it, out, ask, ref, segment_seconds, probe),
            )
        )
    embeddings = np.concatenate([o.embeddings for o in outputs])
    return Report(
        files=tuple(files),
        fd_probe=frechet_distance(fit_gaussian(embeddings), ref),
        windows=len(embeddings),
        reference=ref_name,
        reference_windows=ref.count,
        adherence=adherence(outputs, asked, tempi, keys, probe) if any(a is not None for a in asked) else None,
        landmarks=dict(probe.info.get("landmarks", {})),
        landmark_files=probe.info.get("held_out_files"),
        probe=str(probe.path) if probe.path else "(in memory)",
        segment_seconds=segment_seconds,
    )
