"""Audio entering from outside at any rate or channel count: it plays, or it is one line, at the edge.

Issue #20 class 6: a WAV at 1, 7, 44101 or 96001 Hz passed `LiveSession.feed_input` and failed later
inside the resampler, in the generating thread (fatal to `lmdm delay` and `lmdm live --offline
--input`). Rates from 8 to 384 kHz now work, odd ones included; the rest are refused where the audio
enters, naming the range.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lmdm
from lmdm import live
from lmdm.audio.resample import MAX_RATE, MIN_RATE
from lmdm.cli import main as lmdm_main

torch.set_num_threads(1)
MODEL = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)


def wav_bytes(rate: int, channels: int, sample_bytes: int, frames: int, seed: int = 0) -> bytes:
    """A PCM WAV file with exactly this header (any rate and channel count, sane or not)."""
    data = np.random.default_rng(seed).integers(0, 256, frames * channels * sample_bytes, dtype=np.uint8).tobytes()
    block = channels * sample_bytes
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, 8 * sample_bytes)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("rate", [8000, 11025, 44101, 96001, 384000])
def test_odd_rates_are_resampled_and_played(rate: int) -> None:
    session = lmdm.LiveSession(MODEL, steps=1, seed=0)
    session.feed_input(np.sin(np.arange(rate // 4) * 0.05).astype(np.float32), sample_rate=rate)
    block = session.next_block()
    assert block.shape == (session.block_samples, session.channels) and np.isfinite(block).all()
    # all of it but what the resampler still holds back for its filter (soxr: up to ~0.12 s from one 0.25 s chunk)
    assert 0.12 <= session.stats.input_seconds <= 0.25


@pytest.mark.parametrize("rate", [1, 7, 7999, 384001, 10**6, 44100.0, True, "44100"])
def test_rates_outside_8_to_384_khz_are_refused_where_the_audio_enters(rate) -> None:
    session = lmdm.LiveSession(MODEL, steps=1, seed=0)
    with pytest.raises(ValueError, match=f"from {MIN_RATE} to {MAX_RATE}") as e:
        session.feed_input(np.zeros(100, np.float32), sample_rate=rate)
    assert "\n" not in str(e.value)
    assert np.isfinite(session.next_block()).all()  # nothing was queued: the stream goes on


def test_channel_counts_are_checked_at_the_edge() -> None:
    session = lmdm.LiveSession(MODEL, steps=1, seed=0)
    with pytest.raises(ValueError, match="1 to 256 channels, got 0"):
        session.feed_input(np.zeros((100, 0), np.float32))
    with pytest.raises(ValueError, match="1 to 256 channels, got 300"):
        session.feed_input(np.zeros((10, 300), np.float32))
    session.feed_input(np.ones((1600, 16), np.float32) * 0.1, sample_rate=44101)  # 16 channels, mixed down
    assert np.isfinite(session.next_block()).all()


def test_live_offline_and_delay_take_odd_rate_files_and_refuse_impossible_ones(tmp_path, capsys) -> None:
    odd, slow = tmp_path / "odd.wav", tmp_path / "slow.wav"
    sf.write(odd, (0.3 * np.sin(np.arange(9600) * 0.03)).astype(np.float32), 96001)
    slow.write_bytes(wav_bytes(7, 2, 2, 14))
    out = tmp_path / "out.wav"
    assert live.main(["--offline", "--seconds", "1", "-o", str(out), "--model", "tiny", "--input", str(odd)]) == 0
    assert np.isfinite(sf.read(out)[0]).all()
    capsys.readouterr()
    assert live.main(["--offline", "--seconds", "1", "-o", str(out), "--model", "tiny", "--input", str(slow)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"lmdm live: cannot play the input file {slow}: input sample_rate must be a whole number of Hz from 8000 to 384000, got 7"
    assert lmdm_main(["delay", str(odd), "-o", str(out), "--model", "tiny", "--steps", "1", "--tail", "0.1", "--quiet"]) == 0
    assert sf.info(out).frames == round((9600 / 96001 + 0.1) * 16000)
    with pytest.raises(SystemExit) as e:
        lmdm_main(["delay", str(slow), "-o", str(out), "--model", "tiny", "--steps", "1", "--quiet"])
    assert e.value.code == 2 and "from 8000 to 384000, got 7" in capsys.readouterr().err.strip().splitlines()[-1]


@settings(max_examples=40, deadline=None)
@given(rate=st.integers(0, 10**6) | st.sampled_from([1, 7, 8000, 44101, 96001, 384000, 384001]),
       channels=st.integers(0, 16), sample_bytes=st.sampled_from([1, 2, 3, 4]), frames=st.integers(0, 400))
def test_any_wav_header_given_as_input_plays_or_is_one_line(rate: int, channels: int, sample_bytes: int, frames: int) -> None:
    """The `--input FILE` path of `lmdm live` (`live.feed_file`): the session keeps producing
    finite blocks, or the file is refused with one line before anything is queued."""
    session = lmdm.LiveSession(MODEL, steps=1, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.wav"
        path.write_bytes(wav_bytes(rate, channels, sample_bytes, frames))
        try:
            live.feed_file(session, str(path))
        except live.InputFileError as e:
            assert "\n" not in str(e) and str(e).startswith("lmdm live: cannot")
    block = session.next_block()
    assert block.shape == (session.block_samples, session.channels) and np.isfinite(block).all()
