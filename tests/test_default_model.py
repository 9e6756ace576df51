"""The bundled default model (lmdm/weights/default): present, small, loads with no argument, makes sound."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import lmdm
from lmdm.loading import DEFAULT_DIR
from lmdm.conditioning.sketch import has_sketch

MAX_BYTES = 50 * 2**20  # the budget for everything shipped in the package


def test_the_bundled_model_is_small_and_complete() -> None:
    files = sorted(p.name for p in DEFAULT_DIR.iterdir())
    assert {"config.json", "model.safetensors", "codec.json", "codec.safetensors", "vocab.json"} <= set(files)
    weights = Path(DEFAULT_DIR).parent
    assert sum(p.stat().st_size for p in weights.rglob("*") if p.is_file()) <= MAX_BYTES


def test_load_model_with_no_argument_streams_music_like_audio() -> None:
    torch.manual_seed(0)
    model = lmdm.load_model()
    assert model.name == "lmdm-default" and type(model.codec).__name__ == "ConvCodec"
    assert has_sketch(model.config.extra_add_inputs) and model.config.add_slice("accomp") is not None
    session = lmdm.LiveSession(model, prompt="lo-fi hip hop beat with warm piano chords at 80 bpm", steps=4)
    audio = session.render(seconds=3.0)
    assert audio.shape == (3 * model.sample_rate, 1) and np.isfinite(audio).all()
    rms = float(np.sqrt(np.mean(audio**2)))
    assert 1e-3 < rms < 0.7 and np.abs(audio).max() <= 1.5  # not silent, not blown up
    assert session.stats.cache_resets == 0 and session.supports("sketch") and session.supports("jam")


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_embedding_example_runs_as_it_is_on_the_bundled_model(tmp_path) -> None:
    done = subprocess.run([sys.executable, str(EXAMPLES / "embed_session.py"), str(tmp_path / "take.wav")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    audio, rate = sf.read(tmp_path / "take.wav")
    assert rate == 16000 and len(audio) == 10 * rate and np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
    assert "10 blocks of 1 s" in done.stdout and "acid bass" in done.stdout


@pytest.mark.parametrize("script, extra", [
    ("sketch_melody.py", ["--seconds", "3"]),
    ("jam_with_file.py", ["--mix-input"]),
    ("generative_delay.py", []),
])
def test_the_conditioning_examples_run_as_they_are_on_the_bundled_model(script, extra, tmp_path) -> None:
    out = tmp_path / "out.wav"
    done = subprocess.run([sys.executable, str(EXAMPLES / script), "-o", str(out), *extra],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    audio, rate = sf.read(out)
    assert rate == 16000 and len(audio) > rate and np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
