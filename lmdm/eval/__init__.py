"""Evaluation of generated audio: a quality probe trained on the corpus, FD-probe, model-free measures.

    from lmdm.eval import evaluate, load_probe, fd_probe, tempo_bpm, key_of, audio_checks

    report = evaluate("outputs/", prompts="lo-fi hip hop beat at 80 bpm")   # -> Report
    report.fd_probe, report.adherence, report.files[0].segments
    tempo_bpm(audio, 16000), key_of(audio, 16000), audio_checks(audio)

See docs/evaluation.md. The command line is ``lmdm eval`` (or ``python -m lmdm.eval``);
the probe is trained with ``python -m lmdm.eval.train_probe``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmdm.eval.frechet import Gaussian, fit_gaussian, frechet_distance
from lmdm.eval.inputs import EvalInputError
from lmdm.analysis import Checks, Key, Loudness, audio_checks, key_of, loudness, tempo_bpm
from lmdm.eval.probe import Probe, ProbeConfig, ProbeError, ProbeOutput, load_probe
from lmdm.eval.prompt import Asked, parse_prompt
from lmdm.eval.report import Adherence, FileReport, Report, Segment, evaluate

EmbeddingsOrAudio = Gaussian | np.ndarray | Sequence[np.ndarray]


def _gaussian(x: EmbeddingsOrAudio, probe: Probe | None) -> Gaussian:
    if isinstance(x, Gaussian):
        return x
    if isinstance(x, np.ndarray) and x.ndim == 2 and (probe is None or x.shape[1] == probe.config.embed_dim):
        return fit_gaussian(x)
    probe = probe or load_probe()
    signals = [x] if isinstance(x, np.ndarray) and x.ndim == 1 else list(x)
    return fit_gaussian(np.concatenate([probe.embed_audio(np.asarray(s, np.float32)).embeddings for s in signals]))


def fd_probe(a: EmbeddingsOrAudio, b: EmbeddingsOrAudio, probe: Probe | None = None) -> float:
    """Fréchet distance between two sets: each a Gaussian, embeddings [N, D], or 16 kHz audio
    (one signal [T] or a list of them, embedded per 5 s window by `probe`, default the shipped one)."""
    return frechet_distance(_gaussian(a, probe), _gaussian(b, probe))


__all__ = [
    "Adherence",
    "Asked",
    "Checks",
    "EvalInputError",
    "FileReport",
    "Gaussian",
    "Key",
    "Loudness",
    "Probe",
    "ProbeConfig",
    "ProbeError",
    "ProbeOutput",
    "Report",
    "Segment",
    "audio_checks",
    "evaluate",
    "fd_probe",
    "fit_gaussian",
    "frechet_distance",
    "key_of",
    "load_probe",
    "loudness",
    "parse_prompt",
    "tempo_bpm",
]
