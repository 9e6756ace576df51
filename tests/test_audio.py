"""Real-time audio: ring buffer, resampler, callback logic, generation, recording, devices.

Everything above the ``audio`` section runs without a sound device. Tests marked ``audio`` use
real sounddevice streams against JACK's dummy backend (``jack_server`` from tests/jack.py).
"""

from __future__ import annotations

import importlib.abc
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from lmdm.audio import (
    AudioEngine,
    AudioUnavailable,
    EngineConfig,
    Feeder,
    Playout,
    Recorder,
    RecordError,
    Resampler,
    RingBuffer,
    Step,
    list_devices,
    resample,
)
from lmdm.audio.devices import load_sounddevice
from lmdm.audio.record import recording_path, recordings_folder
from lmdm.audio.feeder import as_frames

# ---------------------------------------------------------------- ring buffer

ops = st.lists(st.tuples(st.sampled_from(["write", "read"]), st.integers(0, 80)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 64), channels=st.integers(1, 3), operations=ops)
def test_ring_preserves_order_and_counts(capacity: int, channels: int, operations: list) -> None:
    ring = RingBuffer(capacity, channels)
    model: list[int] = []  # frame numbers waiting, oldest first
    counter = 0
    for op, n in operations:
        if op == "write":
            frames = np.arange(counter, counter + n, dtype=np.float32)[:, None] + 1000 * np.arange(channels)
            written = ring.write(frames.astype(np.float32))
            assert written == min(n, capacity - len(model))
            model.extend(range(counter, counter + written))
            counter += n
        else:
            out = ring.read(n)
            assert len(out) == min(n, len(model))
            expected = np.array(model[: len(out)], dtype=np.float32)
            np.testing.assert_array_equal(out, expected[:, None] + 1000 * np.arange(channels))
            del model[: len(out)]
        assert ring.fill == len(model)
        assert ring.space == capacity - len(model)


def test_ring_read_into_fills_a_prefix_and_rejects_wrong_shapes() -> None:
    ring = RingBuffer(8, 2)
    assert ring.write(np.ones((5, 2), dtype=np.float32)) == 5
    out = np.full((7, 2), -1.0, dtype=np.float32)
    assert ring.read_into(out) == 5
    assert (out[:5] == 1).all() and (out[5:] == -1).all()
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        ring.write(np.ones((3, 1), dtype=np.float32))


# ---------------------------------------------------------------- resampler


def _sine(freq: float, rate: int, frames: int, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(frames) / rate)


def _db(x: np.ndarray, reference: float) -> float:
    return 20 * np.log10(np.sqrt(np.mean(x**2)) / reference + 1e-30)


@pytest.mark.parametrize(
    "src,dst,freq",
    [(16000, 48000, 440.0), (16000, 48000, 6500.0), (16000, 44100, 1000.0), (16000, 44100, 7000.0),
     (48000, 16000, 1000.0), (24000, 16000, 3000.0)],
)
def test_resampled_sine_keeps_its_frequency_with_low_distortion(src: int, dst: int, freq: float) -> None:
    y = resample(_sine(freq, src, 2 * src), src, dst)
    assert len(y) == 2 * dst
    core = slice(dst // 10, len(y) - dst // 10)  # edges start and end in silence
    segment = y[core]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    peak = np.fft.rfftfreq(len(segment), 1 / dst)[spectrum.argmax()]
    assert abs(peak - freq) <= dst / len(segment)  # within one FFT bin
    ideal = _sine(freq, dst, len(y))[core]
    gain = float(segment @ ideal / (ideal @ ideal))  # the pass band's gain at this frequency
    assert abs(20 * np.log10(gain)) < 0.05
    # everything that is not the sine: distortion, aliasing, imaging, noise
    assert _db(segment - gain * ideal, 0.5 / np.sqrt(2)) < -80


def test_downsampling_removes_tones_above_the_new_nyquist() -> None:
    y = resample(_sine(9000.0, 48000, 96000), 48000, 16000)  # 9 kHz cannot exist at 16 kHz
    assert _db(y[1600:-1600], 0.5 / np.sqrt(2)) < -80


def test_resampler_passes_dc_at_unit_gain_and_passthrough_is_exact() -> None:
    y = resample(np.ones(4000), 16000, 44100)
    np.testing.assert_allclose(y[500:-500], 1.0, atol=1e-4)
    x = np.random.default_rng(1).standard_normal((1000, 2)).astype(np.float32)
    np.testing.assert_array_equal(Resampler(16000, 16000, 2).process(x), x)


@settings(max_examples=35, deadline=None)
@given(
    rates=st.sampled_from([(16000, 48000), (16000, 44100), (48000, 16000), (44100, 16000),
                           (44101, 16000), (16000, 96001), (44100, 44099), (7, 16000)]),  # usual and odd rates
    cuts=st.lists(st.integers(1, 2999), max_size=8),
)
def test_blockwise_resampling_equals_whole_signal(rates: tuple[int, int], cuts: list[int]) -> None:
    src, dst = rates
    x = np.random.default_rng(0).standard_normal((3000, 2)).astype(np.float32) * 0.3
    whole = Resampler(src, dst, 2)
    expected = np.concatenate([whole.process(x), whole.flush()])
    assert abs(len(expected) - len(x) * dst / src) <= 1
    streaming = Resampler(src, dst, 2)
    bounds = [0, *sorted(set(cuts)), len(x)]
    pieces = [streaming.process(x[a:b]) for a, b in zip(bounds, bounds[1:])] + [streaming.flush()]
    np.testing.assert_allclose(np.concatenate(pieces), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(expected, resample(x, src, dst), rtol=0, atol=1e-6)


def test_resampler_rejects_bad_rates_and_shapes() -> None:
    with pytest.raises(ValueError, match="whole numbers"):
        Resampler(16000, 44100.5)
    with pytest.raises(ValueError, match=r"\[n, 1\]"):
        Resampler(16000, 48000).process(np.zeros((10, 2), dtype=np.float32))
    assert Resampler(44101, 16000).process(np.zeros((0, 1), dtype=np.float32)).shape == (0, 1)  # an empty block


@pytest.mark.parametrize(
    "src,dst,freq",
    [(44101, 16000, 1000.0), (96001, 16000, 7000.0), (16000, 96001, 6500.0), (44100, 44099, 3000.0), (8000, 384000, 3000.0),
     (384000, 8000, 3000.0), (11025, 16000, 3000.0)],
)
def test_odd_rates_resample_as_cleanly_as_the_usual_ones(src: int, dst: int, freq: float) -> None:
    """Rates such as 44101 or 96001 Hz (a ratio of 16000/44101) resample as far below the tone as the usual rates."""
    y = resample(_sine(freq, src, src), src, dst)
    assert len(y) == dst
    core = slice(dst // 10, len(y) - dst // 10)
    ideal = _sine(freq, dst, len(y))[core]
    gain = float(y[core] @ ideal / (ideal @ ideal))
    assert abs(20 * np.log10(gain)) < 0.05 and _db(y[core] - gain * ideal, 0.5 / np.sqrt(2)) < -80


# ---------------------------------------------------------------- playout (the callback logic)


class FakeClock:
    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _ramp_frames(start: int, count: int) -> np.ndarray:
    """Frames whose values are their own positions in the stream (to check nothing is lost)."""
    return np.arange(start, start + count, dtype=np.float32)[:, None]


def test_playout_primes_silently_then_plays_in_order() -> None:
    ring, clock = RingBuffer(4096), FakeClock(0.016)
    playout = Playout(ring, fade_frames=80)
    out = np.full((256, 1), 9.0, dtype=np.float32)
    playout.fill(out, clock())
    assert (out == 0).all() and playout.underruns == 0 and playout.starved_frames == 0
    ring.write(np.ones((2000, 1), dtype=np.float32))
    played = []
    for _ in range(3):
        playout.fill(out, clock())
        played.append(out.copy())
    audio = np.concatenate(played)[:, 0]
    np.testing.assert_allclose(audio[:80], np.arange(1, 81) / 80, rtol=1e-6)  # fade in
    assert (audio[80:] == 1).all()
    assert playout.callbacks == 4 and playout.frames_played == 768
    assert playout.last_interval == pytest.approx(0.016)


def test_underrun_fades_out_counts_and_fades_back_in_without_losing_frames() -> None:
    ring, clock, fade = RingBuffer(8192), FakeClock(0.016), 80
    playout = Playout(ring, fade_frames=fade)
    ring.write(np.ones((1000, 1), dtype=np.float32))
    outputs = []
    for _ in range(6):  # 1000 frames last 3 full callbacks, then the ring runs dry
        out = np.empty((256, 1), dtype=np.float32)
        playout.fill(out, clock())
        outputs.append(out)
    audio = np.concatenate(outputs)[:, 0]
    assert playout.underruns == 1  # one dropout, however long
    assert playout.frames_played == 1000
    assert playout.starved_frames == 6 * 256 - 1000
    assert audio[999] == 0 and (audio[1000:] == 0).all()  # faded to exactly zero, then silence
    tail = audio[1000 - fade : 1000]
    assert (np.diff(tail) < 0).all()  # a monotonic fade-out over the last `fade` frames
    assert (np.abs(np.diff(audio)) <= 1 / fade + 1e-6).all()  # no step anywhere: no click

    ring.write(np.ones((2000, 1), dtype=np.float32))
    out = np.empty((256, 1), dtype=np.float32)
    playout.fill(out, clock())
    np.testing.assert_allclose(out[:fade, 0], np.arange(1, fade + 1) / fade, rtol=1e-6)
    assert (out[fade:] == 1).all() and playout.underruns == 1


def test_playout_resumes_exactly_where_it_stopped() -> None:
    def frames(first: int, stop: int) -> np.ndarray:
        """Channel 0 is 1.0 (it shows the fade gain); channel 1 is the frame's stream position."""
        position = np.arange(first, stop) + 1.0
        return np.stack([np.ones_like(position), position], axis=1).astype(np.float32)

    ring = RingBuffer(8192, 2)
    playout = Playout(ring, fade_frames=16)
    ring.write(frames(0, 700))
    heard = []
    for t in range(12):
        if t == 8:
            ring.write(frames(700, 2000))
        out = np.empty((128, 2), dtype=np.float32)
        playout.fill(out, float(t))
        heard.append(out)
    audio = np.concatenate(heard)
    gain = audio[:, 0]
    positions = np.round(audio[gain > 0, 1] / gain[gain > 0]).astype(int)
    assert playout.underruns == 1
    assert positions[0] == 1 and positions[-1] == playout.frames_played == 700 + 4 * 128
    gaps = np.diff(positions)
    # every frame heard once, in order; only the last fade-out frame (gain exactly 0) is inaudible
    assert set(gaps.tolist()) == {1, 2} and (gaps == 2).sum() == 1


# ---------------------------------------------------------------- feeder (the generation side)


def _feeder(producer, *, ahead_blocks: float = 1.0, on_error=None, src=16000, dst=16000):
    ring = RingBuffer(dst * 8)
    feeder = Feeder(producer, ring, Resampler(src, dst, 1), ahead_blocks=ahead_blocks, on_error=on_error)
    return feeder, ring


def test_feeder_keeps_about_one_block_ahead() -> None:
    calls = []

    def producer() -> np.ndarray:
        calls.append(1)
        return np.full(3200, 0.25, dtype=np.float32)

    feeder, ring = _feeder(producer)
    assert feeder.step() is Step.GENERATED and ring.fill == 3200
    assert feeder.step() is Step.WAITING  # one block ahead is enough
    ring.read(100)
    assert feeder.step() is Step.GENERATED and ring.fill == 6300
    assert len(calls) == 2 and feeder.blocks == 2


def test_producer_errors_are_counted_reported_and_playback_continues() -> None:
    calls, reported = [0], []

    def flaky() -> np.ndarray:
        calls[0] += 1
        if calls[0] % 2 == 0:
            raise RuntimeError(f"model exploded #{calls[0]}")
        return np.full(1600, 0.5, dtype=np.float32)

    feeder, ring = _feeder(flaky, on_error=reported.append)
    playout = Playout(ring, fade_frames=40)
    out = np.empty((256, 1), dtype=np.float32)
    states = []
    for t in range(60):
        states.append(feeder.step())
        playout.fill(out, t * 0.016)
        assert np.isfinite(out).all()
    assert feeder.errors == len(reported) == states.count(Step.FAILED) > 5
    assert all(isinstance(e, RuntimeError) for e in reported)
    assert feeder.blocks > 5 and playout.frames_played > 5 * 1600 - 256


@pytest.mark.parametrize(
    "bad,message",
    [(None, "None"), (np.zeros((10, 2)), "shape"), (np.zeros(0), "empty"), ("noise", "could not convert")],
)
def test_unusable_blocks_count_as_producer_errors(bad: object, message: str) -> None:
    reported: list[BaseException] = []
    feeder, ring = _feeder(lambda: bad, on_error=reported.append)
    assert feeder.step() is Step.FAILED
    assert feeder.errors == 1 and message in str(reported[0]) and ring.fill == 0


def test_blocks_are_sanitised_and_resampled_to_the_device_rate() -> None:
    block = np.array([0.5, np.nan, np.inf, -3.0] * 400, dtype=np.float32)
    np.testing.assert_array_equal(as_frames(block, 1)[:4, 0], [0.5, 0.0, 0.0, -1.0])
    feeder, ring = _feeder(lambda: np.zeros(1600, dtype=np.float32), src=16000, dst=48000)
    assert feeder.step() is Step.GENERATED
    first = ring.read()
    assert feeder.step() is Step.GENERATED
    # two 0.1 s blocks at 48 kHz, less what the resampler still holds back (soxr: tens of ms at most)
    assert 2 * 4800 - 0.06 * 48000 <= len(first) + ring.fill <= 2 * 4800


def test_feeder_thread_survives_a_producer_that_always_fails() -> None:
    def broken() -> np.ndarray:
        raise ValueError("no model loaded")

    feeder, _ = _feeder(broken)
    stop = threading.Event()
    thread = threading.Thread(target=feeder.run, args=(stop, 0.001, 0.005))
    thread.start()
    time.sleep(0.1)
    assert thread.is_alive() and feeder.errors >= 3
    stop.set()
    thread.join(2)
    assert not thread.is_alive()


# ---------------------------------------------------------------- recorder


def test_recorder_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "set.wav"
    x = _sine(440, 16000, 16000).astype(np.float32)
    with Recorder(16000).start(path) as rec:
        rec.write(x[:7000])
        rec.write(x[7000:, None])
    y, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and rec.frames_written == 16000
    np.testing.assert_allclose(y, x, atol=1e-6)


@pytest.mark.parametrize("suffix", [".flac", ".ogg"])
def test_encoded_recordings_go_through_a_wav_spool(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"set{suffix}"
    x = _sine(440, 16000, 16000).astype(np.float32)
    rec = Recorder(16000).start(path)
    rec.write(x)
    spool = tmp_path / f"set{suffix}.part.wav"
    assert spool.exists() and not path.exists()  # while playing, a crash-safe WAV
    assert len(sf.read(spool)[0]) == 16000
    rec.stop()
    assert path.exists() and not spool.exists()
    y, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and len(y) == 16000
    if suffix == ".flac":  # lossless
        np.testing.assert_allclose(y, x, atol=1e-5)


def test_recorder_gives_one_line_errors(tmp_path: Path) -> None:
    for path, message in [
        (tmp_path / "missing" / "set.wav", "No such file or directory"),
        (tmp_path / "set.mp3", "are .wav, .flac or .ogg"),
        (tmp_path, "are .wav, .flac or .ogg"),
    ]:
        with pytest.raises(RecordError, match=message) as info:
            Recorder(16000).start(path)
        assert "\n" not in str(info.value)
    existing = tmp_path / "old.wav"
    existing.write_bytes(b"precious")
    with pytest.raises(RecordError, match="already exists"):
        Recorder(16000).start(existing)
    assert existing.read_bytes() == b"precious"
    with pytest.raises(RecordError, match="not recording"):
        Recorder(16000).write(np.zeros(10, dtype=np.float32))


def test_recorder_never_writes_through_a_symbolic_link(tmp_path: Path) -> None:
    """A name that is a symbolic link, even one pointing nowhere, is refused (O_EXCL): the file it
    points to is neither created nor touched (issue #20)."""
    precious = tmp_path / "precious.wav"
    precious.write_bytes(b"precious")
    for name, points_to in [("dangling.wav", tmp_path / "elsewhere.wav"), ("existing.wav", precious),
                            ("set.flac.part.wav", tmp_path / "spooled.wav")]:
        (tmp_path / name).symlink_to(points_to)
    for name in ("dangling.wav", "existing.wav", "set.flac"):
        with pytest.raises(RecordError, match="already exists"):
            Recorder(16000).start(tmp_path / name)
    assert not (tmp_path / "elsewhere.wav").exists() and not (tmp_path / "spooled.wav").exists()
    assert precious.read_bytes() == b"precious"


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    """A recordings folder with a subfolder, a file, and links in and out of it."""
    folder = tmp_path / "recordings"
    (folder / "sub").mkdir(parents=True)
    (folder / "old.wav").write_bytes(b"old")
    (folder / "dangling.wav").symlink_to(tmp_path / "outside.wav")
    (folder / "out").symlink_to(tmp_path)
    return recordings_folder(folder)


@pytest.mark.parametrize(
    "name,reason",
    [
        ("../x.wav", "'..' is not allowed"),
        ("sub/../../x.wav", "'..' is not allowed"),
        ("/tmp/x.wav", "outside the recordings folder"),
        ("dangling.wav", "is a symbolic link"),
        ("out/x.wav", "is a symbolic link"),
        ("old.wav", "already exists"),
        ("nosub/x.wav", "there is no folder"),
        ("old.wav/x.wav", "there is no folder"),
        ("x.mp3", "recordings are .wav, .flac or .ogg files"),
        ("sub", "recordings are .wav, .flac or .ogg files"),
        ("", "record needs a file name"),
        ("a\\b.wav", "record needs a file name"),
        ("x\x00.wav", "record needs a file name"),
    ],
)
def test_recording_paths_stay_in_the_recordings_folder(recordings: Path, name: str, reason: str) -> None:
    with pytest.raises(RecordError, match=re.escape(reason)) as info:
        recording_path(recordings, name)
    assert "\n" not in str(info.value)


def test_recording_paths_inside_the_folder(recordings: Path) -> None:
    assert recording_path(recordings, "take.wav") == recordings / "take.wav"
    assert recording_path(recordings, "sub/take.flac") == recordings / "sub" / "take.flac"
    assert recording_path(recordings, "./sub//take.ogg") == recordings / "sub" / "take.ogg"
    assert recording_path(recordings, str(recordings / "sub" / "abs.wav")) == recordings / "sub" / "abs.wav"


@settings(max_examples=300, deadline=None)
@given(name=st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["..", ".", "", "sub", "out", "old.wav", "dangling.wav", "x.wav", "y.flac", "/tmp", "~", "a\nb"]),
             max_size=5).map("/".join),
))
def test_any_record_name_is_refused_or_lands_inside_the_folder(tmp_path_factory, name: str) -> None:
    folder = tmp_path_factory.getbasetemp() / "any-record-name"
    if not folder.exists():
        (folder / "sub").mkdir(parents=True)
        (folder / "old.wav").write_bytes(b"old")
        (folder / "dangling.wav").symlink_to(folder.parent / "outside.wav")
        (folder / "out").symlink_to(folder.parent)
    folder = recordings_folder(folder)
    try:
        path = recording_path(folder, name)
    except RecordError as error:
        assert "\n" not in str(error)
        return
    assert Path(os.path.realpath(path)).is_relative_to(folder) and not os.path.lexists(path)
    assert path.suffix.lower() in (".wav", ".flac", ".ogg")


def test_a_recordings_folder_must_be_a_writable_folder(tmp_path: Path) -> None:
    (tmp_path / "file.wav").write_bytes(b"")
    for path, reason in [(tmp_path / "missing", "does not exist"), (tmp_path / "file.wav", "is not a folder"),
                         (Path("/proc"), "system folder")]:
        with pytest.raises(RecordError, match=reason):
            recordings_folder(path)
    assert recordings_folder(tmp_path / "missing", check=False) == Path(os.path.realpath(tmp_path / "missing"))


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from lmdm.audio import Recorder
    rec = Recorder(16000, 2, sync_seconds=0.25).start(sys.argv[1])
    for i in range(100000):
        block = np.full((4000, 2), ((i % 50) - 25) / 32, dtype=np.float32)
        rec.write(block)
        print(i + 1, flush=True)
    """
)


def test_recording_is_valid_after_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    blocks = 0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        while blocks < 20 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            blocks = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    assert proc.returncode == -signal.SIGKILL and blocks >= 20
    data, rate = sf.read(path, dtype="float32")  # libsndfile
    assert rate == 16000 and data.shape[1] == 2 and len(data) >= blocks * 4000
    expected = np.repeat(((np.arange(len(data) // 4000) % 50) - 25) / 32, 4000)
    np.testing.assert_allclose(data[: len(expected), 0], expected, atol=1e-6)
    with wave.open(str(path)) as strict:  # a strict reader trusts the header alone
        assert strict.getnchannels() == 2 and strict.getnframes() >= blocks * 4000


# ---------------------------------------------------------------- devices and lazy import


def test_importing_lmdm_audio_does_not_load_portaudio() -> None:
    code = "import sys, lmdm.audio; assert 'sounddevice' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


class _NoPortAudio(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # noqa: ANN001
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_missing_portaudio_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(AudioUnavailable, match="apt-get install libportaudio2") as info:
        load_sounddevice()
    assert "\n" not in str(info.value)
    assert "libportaudio2" in list_devices()
    with pytest.raises(AudioUnavailable):
        AudioEngine(lambda: np.zeros(10)).start()


def test_missing_sounddevice_package_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(AudioUnavailable, match="pip install sounddevice"):
        load_sounddevice()


def test_list_devices_always_returns_text() -> None:
    text = list_devices()
    assert isinstance(text, str) and text.strip()


def test_engine_config_validates_at_the_edge() -> None:
    with pytest.raises(ValueError):
        EngineConfig(model_rate=0)
    with pytest.raises(ValueError):
        EngineConfig(ahead_blocks=-1)


# ---------------------------------------------------------------- real streams (JACK dummy)


class SineProducer:
    """Continuous sine blocks, optionally slow (sleep before returning)."""

    def __init__(self, rate: int, block_seconds: float = 0.5, delay: float = 0.0) -> None:
        self.rate, self.frames, self.delay, self.position = rate, int(rate * block_seconds), delay, 0

    def __call__(self) -> np.ndarray:
        if self.delay:
            time.sleep(self.delay)
        t = np.arange(self.position, self.position + self.frames)
        self.position += self.frames
        return (0.5 * np.sin(2 * np.pi * 440 * t / self.rate)).astype(np.float32)


class RecordingClock:
    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self) -> float:
        now = time.monotonic()
        self.times.append(now)
        return now


def _wait_for(condition, timeout: float = 5.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.audio
def test_callbacks_are_paced_by_the_device_and_a_fast_producer_never_underruns(jack_server) -> None:
    clock = RecordingClock()
    cfg = EngineConfig(model_rate=jack_server.rate)
    engine = AudioEngine(SineProducer(jack_server.rate), cfg, clock=clock)
    with engine:
        assert _wait_for(lambda: engine.stats().frames_played > 0)
        time.sleep(1.0)
        stats = engine.stats()
    intervals = np.diff(clock.times)
    expected = (jack_server.period or 256) / jack_server.rate
    assert np.median(intervals) == pytest.approx(expected, rel=0.2)
    assert np.mean(intervals) == pytest.approx(expected, rel=0.2)
    assert stats.last_callback_interval < 5 * expected
    assert stats.underruns == 0 and stats.producer_errors == 0 and stats.callback_errors == 0
    assert stats.frames_played >= 0.8 * jack_server.rate and stats.buffer_seconds > 0.2


@pytest.mark.audio
def test_a_slow_producer_causes_counted_underruns_not_a_crash(jack_server) -> None:
    slow = SineProducer(jack_server.rate, block_seconds=0.1, delay=0.25)  # 0.1 s of audio per 0.25 s
    engine = AudioEngine(slow, EngineConfig(model_rate=jack_server.rate))
    with engine:
        assert _wait_for(lambda: engine.stats().underruns >= 2)
        before = engine.stats().callbacks
        time.sleep(0.2)
        stats = engine.stats()
    assert stats.callbacks > before  # the stream kept running through the dropouts
    assert stats.frames_played > 0 and stats.starved_frames > 0 and stats.callback_errors == 0


@pytest.mark.audio
def test_producer_errors_in_a_live_stream_are_survived(jack_server) -> None:
    inner, calls, errors = SineProducer(jack_server.rate, block_seconds=0.2), [0], []

    def flaky() -> np.ndarray:
        calls[0] += 1
        if calls[0] % 3 == 0:
            raise RuntimeError("boom")
        return inner()

    cfg = EngineConfig(model_rate=jack_server.rate, backoff_s=0.01)
    with AudioEngine(flaky, cfg, on_error=errors.append) as engine:
        assert _wait_for(lambda: engine.stats().producer_errors >= 3)
        stats = engine.stats()
    assert stats.producer_errors == len(errors) >= 3 and stats.frames_played > 0
    assert stats.blocks_generated >= 6


@pytest.mark.audio
def test_clean_shutdown_and_restart(jack_server) -> None:
    cfg = EngineConfig(model_rate=jack_server.rate)
    engine = AudioEngine(SineProducer(jack_server.rate, delay=0.05), cfg)
    threads_before = threading.active_count()
    for _ in range(2):
        engine.start()
        assert engine.running
        with pytest.raises(RuntimeError, match="already running"):
            engine.start()
        assert _wait_for(lambda: engine.stats().frames_played > 0)
        started = time.monotonic()
        engine.stop()
        assert time.monotonic() - started < 2.0
        assert not engine.running and not engine.stats().running
        assert threading.active_count() == threads_before
        engine.stop()  # twice is fine


@pytest.mark.audio
def test_resampling_in_the_live_path_and_recording(jack_server, tmp_path: Path) -> None:
    model_rate = 24000 if jack_server.rate != 24000 else 16000
    engine = AudioEngine(SineProducer(model_rate, block_seconds=0.25), EngineConfig(model_rate=model_rate))
    engine.record(str(tmp_path / "live.wav"))
    with engine:
        assert engine.device_rate == jack_server.rate
        assert _wait_for(lambda: engine.stats().frames_played > jack_server.rate // 2)
    stats = engine.stats()  # after stop: the generation thread has finished its last block
    assert stats.underruns == 0
    info = sf.info(tmp_path / "live.wav")
    assert info.samplerate == model_rate and info.frames == stats.blocks_generated * model_rate // 4


@pytest.mark.audio
def test_duplex_stream_captures_input_frames(jack_server) -> None:
    cfg = EngineConfig(model_rate=jack_server.rate, input_channels=1)
    with AudioEngine(SineProducer(jack_server.rate), cfg) as engine:
        assert _wait_for(lambda: engine.stats().callbacks > 2)
        # route our own output back into our input, so the capture is not just silence
        # (PortAudio numbers its JACK ports per stream: out_0, out_1, ...)
        ports = subprocess.run(["jack_lsp"], capture_output=True, text=True, timeout=5).stdout.split()
        ours = [next(p for p in ports if p.startswith(f"PortAudio:{kind}_")) for kind in ("out", "in")]
        subprocess.run(["jack_connect", *ours], check=True, capture_output=True, timeout=5)
        time.sleep(0.8)
        captured = engine.read_input()
        partial = engine.read_input(100)
    assert captured.ndim == 2 and captured.shape[1] == 1
    assert len(captured) >= 0.5 * jack_server.rate  # the full rate comes in
    assert len(partial) <= 100
    assert np.abs(captured).max() == pytest.approx(0.5, abs=0.05)  # our sine came back


@pytest.mark.audio
def test_the_bundled_model_plays_live_without_underruns(jack_server) -> None:
    """The default model through the real engine: paced by the device, ahead of it, no underruns."""
    import lmdm

    model = lmdm.load_model()
    if model.sample_rate != jack_server.rate:
        pytest.skip(f"JACK runs at {jack_server.rate} Hz, the model at {model.sample_rate} Hz")
    session = lmdm.LiveSession(model, prompt="deep house groove with warm chords", steps=8)
    session.next_block()  # the first block (cache bootstrap) is made before the stream opens, as lmdm live does
    engine = AudioEngine(session.next_block, EngineConfig(model_rate=model.sample_rate, ahead_blocks=2.0))
    with engine:
        assert _wait_for(lambda: engine.stats().frames_played > 0)
        time.sleep(4.0)
        stats = engine.stats()
    assert stats.producer_errors == 0 and stats.callback_errors == 0
    assert stats.underruns == 0, stats.summary()
    assert stats.frames_played >= 3 * model.sample_rate
    assert session.stats.last_compute_ms < 0.5 * 1000 * session.block_seconds  # steady state (the first block also warms up)


# ---------------------------------------------------------------- status flags, device loss (issue #20)


class _Flags:
    """A stand-in for sounddevice.CallbackFlags."""

    def __init__(self, **flags: bool) -> None:
        self.__dict__.update(flags)

    def __bool__(self) -> bool:
        return any(self.__dict__.values())


def test_output_underflows_are_counted_apart_from_other_portaudio_flags() -> None:
    engine = AudioEngine(SineProducer(16000), EngineConfig(model_rate=16000))
    token = object()
    engine._hand_over(token)
    play = engine._output_callback(token)
    out = np.zeros((256, 1), dtype=np.float32)
    # JACK reports its xruns as both flags; priming is not a dropout
    for status in (_Flags(output_underflow=True, input_overflow=True), _Flags(priming_output=True), _Flags(), 0):
        play(out, 256, None, status)
    stats = engine.stats()
    assert stats.xruns == 2 and stats.output_underflows == 1
    assert (stats.flags.input_overflow, stats.flags.priming_output, stats.flags.output_overflow) == (1, 1, 0)
    assert "1 output underflows (other PortAudio flags: input_overflow 1, priming_output 1)" in stats.summary()
    engine._output_callback(object())(out, 256, None, _Flags(output_underflow=True))  # a stream left behind
    assert engine.stats().output_underflows == 1 and not out.any()


def test_the_pacer_drains_the_ring_at_the_wall_clocks_pace() -> None:
    from lmdm.audio.playout import Pacer

    ring = RingBuffer(16000, 1)
    ring.write(np.ones((16000, 1), dtype=np.float32))
    pacer = Pacer(ring, 1000)
    pacer.start(10.0)
    assert pacer.advance(10.0) == 0
    taken = [pacer.advance(10.0 + t) for t in (0.0505, 0.1, 1.1)]
    assert abs(taken[0] - 50) <= 1 and abs(taken[1] - 50) <= 1 and abs(taken[2] - 1000) <= 1
    assert 1099 <= pacer.frames == sum(taken) <= 1100 and ring.fill == 16000 - pacer.frames  # fractions carried


def test_a_silent_device_is_reported_once_paced_by_the_clock_and_reopened(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watchdog with a fake stream that never calls back: after stall_s it says so once, the
    generation thread keeps making blocks at real-time pace, and a reopened device plays again."""
    notices: list[str] = []
    opened: list[object] = []
    cfg = EngineConfig(model_rate=16000, first_callback_s=0.2, stall_s=0.2, reopen_s=0.3, watch_s=0.02, poll_s=0.005)
    engine = AudioEngine(SineProducer(16000, block_seconds=0.1), cfg, on_notice=notices.append)

    def fake_open(device: object) -> object:  # the first stream never calls back; the next one fails once
        opened.append(device)
        if len(opened) == 2:
            raise AudioUnavailable("no device")
        engine._hand_over(object())
        return object()

    monkeypatch.setattr(engine, "_open", fake_open)
    monkeypatch.setattr(engine, "_close", lambda stream, timeout: None)
    monkeypatch.setattr("lmdm.audio.engine.device_info", lambda device, kind: {"default_samplerate": 16000.0})
    with engine:
        assert _wait_for(lambda: engine.stats().device_lost, 3)
        blocks = engine.stats().blocks_generated
        time.sleep(0.25)
        lost = engine.stats()
        assert _wait_for(lambda: len(opened) >= 3, 5)  # one failed try, then back
        assert _wait_for(lambda: not engine.stats().device_lost, 1)
    assert lost.device_lost and "NO DEVICE" in lost.summary()
    assert lost.blocks_generated > blocks  # the clock took the audio: generation went on
    assert 0.15 * 16000 < lost.paced_frames < 0.6 * 16000  # ~0.25 s, not as fast as it can
    stats = engine.stats()
    assert stats.device_losses >= 1 and stats.reopens >= 1
    assert notices[0].startswith("audio device lost (no callback for") and "audio device back" in notices[1]


# ---------------------------------------------------------------- splicing a change into audio already made

INSTANT = lambda: 0.0  # noqa: E731 - a clock under which making a block takes no time: the splices' geometry alone

def test_rewrite_takes_back_what_the_producer_wrote_with_a_crossfade() -> None:
    ring = RingBuffer(16)
    ring.write(np.arange(10, dtype=np.float32)[:, None])
    ring.read(3)
    assert ring.rewrite(6, np.full((5, 1), 100.0, np.float32), fade=2) == 5
    assert ring.write_position == 11 and ring.fill == 8
    out = ring.read()[:, 0]
    assert out[:3].tolist() == [3, 4, 5]  # before the splice: as written
    assert out[3] == pytest.approx(6 * 2 / 3 + 100 / 3) and out[4] == pytest.approx(7 / 3 + 200 / 3)  # the fade
    assert out[5:].tolist() == [100, 100, 100]
    with pytest.raises(ValueError, match="not yet read"):
        ring.rewrite(2, np.zeros((1, 1), np.float32))


def test_a_spliced_change_is_heard_from_the_splice_on_and_recorded_as_played(tmp_path) -> None:
    """The feeder splices a queued change into the block being played: before the splice the
    listener hears the old stream, after the fade the stream a session with the change queued before
    that block makes; the recording holds exactly what was played."""
    import lmdm
    from lmdm.audio.record import Recorder

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    S = model.block_samples
    live = lmdm.LiveSession(model, prompt="dub", steps=2)
    ring = RingBuffer(8 * S)
    feeder = Feeder(live.next_block, ring, Resampler(model.sample_rate, model.sample_rate, 1), ahead_blocks=2,
                    splicer=live, margin=S // 4, fade=16, guard=8, clock=INSTANT)
    recorder = Recorder(model.sample_rate, 1)
    recorder.start(str(tmp_path / "rec.wav"))
    feeder.set_recorder(recorder)
    heard = _splice_a_prompt_change(live, feeder, ring, S)
    feeder.set_recorder(None)
    recorder.stop()
    at = S + S // 2 + S // 4  # read position + margin
    old = lmdm.LiveSession(model, prompt="dub", steps=2).render(len(heard) / model.sample_rate)[:, 0]
    new_s = lmdm.LiveSession(model, prompt="dub", steps=2)
    first = new_s.next_block()
    new_s.set_prompt("glass choir")
    new = np.concatenate([first] + [new_s.next_block() for _ in range(4)])[: len(heard), 0]
    assert np.array_equal(heard[:at], old[:at])
    assert np.array_equal(heard[at + 16 :], new[at + 16 :]) and not np.array_equal(heard[at + 16 :], old[at + 16 :])
    import soundfile as sf

    rec, _ = sf.read(str(tmp_path / "rec.wav"), dtype="float32")
    assert np.allclose(rec[: len(heard)], heard, atol=2e-4)  # PCM_24


def _splice_a_prompt_change(live: object, feeder: Feeder, ring: RingBuffer, S: int) -> np.ndarray:
    """Fill the ring, play half-way into block 1, change the prompt (spliced at once), play on: what was heard."""
    while feeder.step() is Step.GENERATED:
        pass
    played = [ring.read(S + S // 2)]  # the listener is half-way through block 1
    live.set_prompt("glass choir")
    assert feeder.step() is Step.GENERATED and feeder.splices == 1
    for _ in range(6):
        feeder.step()
        played.append(ring.read(S // 2))
    return np.concatenate(played)[:, 0]


def _changed_at_block_1_in_one_step(model: object, *, quick: int, length: int) -> np.ndarray:
    """A 3-step session whose prompt changes before block 1, blocks 1 to ``quick`` made in one step."""
    import lmdm

    ref = lmdm.LiveSession(model, prompt="dub", steps=3)
    blocks = [ref.next_block()]
    ref.set_prompt("glass choir")
    ref.set_steps(1)
    blocks += [ref.next_block() for _ in range(quick)]
    ref.set_steps(3)
    while sum(len(b) for b in blocks) < length:
        blocks.append(ref.next_block())
    return np.concatenate(blocks)[:length, 0]


def test_a_splice_in_fewer_steps_plays_the_block_those_steps_make() -> None:
    """EngineConfig.splice_steps / Feeder(splice_steps=): the remade block is made in that many sampler
    steps (sooner ready), the blocks after it in the session's own."""
    import lmdm

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    S = model.block_samples
    live = lmdm.LiveSession(model, prompt="dub", steps=3)
    ring = RingBuffer(8 * S)
    feeder = Feeder(live.next_block, ring, Resampler(model.sample_rate, model.sample_rate, 1), ahead_blocks=2,
                    splicer=live, margin=S // 4, fade=16, guard=8, splice_steps=1, clock=INSTANT)
    heard = _splice_a_prompt_change(live, feeder, ring, S)
    at = S + S // 2 + S // 4
    new = _changed_at_block_1_in_one_step(model, quick=1, length=len(heard))
    assert np.array_equal(heard[at + 16 :], new[at + 16 :])
    with pytest.raises((ValueError, TypeError)):
        EngineConfig(splice_steps=0)


class _Timed:
    """A producer whose calls take ``seconds`` each on a clock of its own (the feeder's ``clock``)."""

    def __init__(self, producer, seconds: float) -> None:
        self.producer, self.seconds, self.now = producer, seconds, 0.0

    def __call__(self):
        self.now += self.seconds
        return self.producer()

    def clock(self) -> float:
        return self.now


def _filled_timed_feeder(model: object, *, steps: int, seconds: float, ahead_blocks: int, splice_steps: int | None = None):
    """A splicing feeder over a "dub" session whose blocks take ``seconds`` each, its ring filled."""
    import lmdm

    S, rate = model.block_samples, model.sample_rate
    live = lmdm.LiveSession(model, prompt="dub", steps=steps)
    timed = _Timed(live.next_block, seconds)
    ring = RingBuffer(8 * S)
    feeder = Feeder(timed, ring, Resampler(rate, rate, 1), ahead_blocks=ahead_blocks, splicer=live, margin=S // 4,
                    fade=16, guard=8, splice_steps=splice_steps, clock=timed.clock)
    while feeder.step() is Step.GENERATED:
        pass
    return live, timed, ring, feeder


def test_a_change_too_near_the_end_of_its_block_goes_into_the_next_block_from_its_start() -> None:
    """Real time first: remade there, the block would leave less than the next block takes to make
    (0.08 s a block here, twice that against 0.375 of a block left), so the change goes into the
    next block, from its start: the listener hears the old stream to the block line, then the
    stream a session with the change queued before that block makes, and nothing runs dry."""
    import lmdm

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    S, rate = model.block_samples, model.sample_rate
    live, timed, ring, feeder = _filled_timed_feeder(model, steps=2, seconds=0.08, ahead_blocks=3)
    assert 2 * round(0.08 * rate) + 8 > S - (S * 5 // 8)  # what is left of block 1 is too short
    played = [ring.read(S + S * 5 // 8)]  # the target (read + margin) is in block 1, 3/8 of it left
    live.set_prompt("glass choir")
    assert feeder.step() is Step.GENERATED and feeder.splices == 1 and feeder.late_splices == 0
    for _ in range(6):
        feeder.step()
        played.append(ring.read(S // 2))
    heard = np.concatenate(played)[:, 0]
    old = lmdm.LiveSession(model, prompt="dub", steps=2).render(len(heard) / rate)[:, 0]
    ref = lmdm.LiveSession(model, prompt="dub", steps=2)
    blocks = [ref.next_block(), ref.next_block()]
    ref.set_prompt("glass choir")
    new = np.concatenate(blocks + [ref.next_block() for _ in range(4)])[: len(heard), 0]
    assert np.array_equal(heard[: 2 * S], old[: 2 * S])
    assert np.array_equal(heard[2 * S + 16 :], new[2 * S + 16 :]) and not np.array_equal(heard[2 * S :], old[2 * S :])


def test_the_block_after_a_splice_that_left_little_ahead_is_made_in_the_splice_steps() -> None:
    """With splice_steps, a splice that leaves less audio ahead than a block of the session's steps
    takes to make (0.2 s here, against half a block of 0.32 s) hurries the next block: it is made in
    the splice's steps too, and the blocks after it in the session's own."""
    import lmdm

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    S = model.block_samples
    live, timed, ring, feeder = _filled_timed_feeder(model, steps=3, seconds=0.2, ahead_blocks=2, splice_steps=1)
    timed.seconds = 0.0  # blocks of one step: quick
    feeder.quick_s = 0.001  # as an earlier splice would have timed them (untimed: estimated from a full block)
    heard = _splice_a_prompt_change(live, feeder, ring, S)
    at = S + S // 2 + S // 4
    new = _changed_at_block_1_in_one_step(model, quick=2, length=len(heard))  # the remade block and the hurried one
    assert np.array_equal(heard[at + 16 :], new[at + 16 :])
    with pytest.raises(ValueError, match="hurry's steps"):
        live.hurry(0)


def test_before_a_quick_block_was_timed_a_splice_estimates_it_from_a_full_one() -> None:
    """A cold estimate errs on the safe side: with no block of splice_steps timed yet, remaking one
    step of three counts as (1/3 + 0.15) of a full block's 0.2 s, and with the block after it that
    is more than the half block left: the change waits for the block made next, unspliced, made in
    the session's own steps."""
    import lmdm

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    S = model.block_samples
    live, timed, ring, feeder = _filled_timed_feeder(model, steps=3, seconds=0.2, ahead_blocks=2, splice_steps=1)
    played = [ring.read(S + S // 2)]
    live.set_prompt("glass choir")
    assert feeder.step() is Step.GENERATED and feeder.splices == 0  # block 2, made with the change
    for _ in range(4):
        feeder.step()
        played.append(ring.read(S // 2))
    heard = np.concatenate(played)[:, 0]
    ref = lmdm.LiveSession(model, prompt="dub", steps=3)
    blocks = [ref.next_block(), ref.next_block()]
    ref.set_prompt("glass choir")
    new = np.concatenate(blocks + [ref.next_block() for _ in range(2)])[: len(heard), 0]
    assert np.array_equal(heard, new)


def test_a_splice_through_a_resampler_plays_the_new_stream_as_resampled_whole() -> None:
    """At another device rate a fresh resampler, primed with the audio before the remade block,
    takes over: after the splice the device plays the new stream as a resampler fed it from the
    start would (to 1e-4), and the blocks after it follow without a seam."""
    import lmdm

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    S, rate = model.block_samples, model.sample_rate
    live = lmdm.LiveSession(model, prompt="dub", steps=2)
    ring = RingBuffer(24 * S)
    feeder = Feeder(live.next_block, ring, Resampler(rate, 3 * rate, 1), ahead_blocks=2, splicer=live,
                    margin=3 * S // 4, fade=48, guard=24, clock=INSTANT)
    while feeder.step() is Step.GENERATED:
        pass
    played = [ring.read(3 * (S + S // 2))]
    live.set_prompt("glass choir")
    assert feeder.step() is Step.GENERATED and feeder.splices == 1 and feeder.late_splices == 0
    for _ in range(6):
        feeder.step()
        played.append(ring.read(3 * S // 2))
    heard = np.concatenate(played)[:, 0]
    at = 3 * (S + S // 2) + 3 * S // 4
    new_s = lmdm.LiveSession(model, prompt="dub", steps=2)
    first = new_s.next_block()
    new_s.set_prompt("glass choir")
    new = np.concatenate([first] + [new_s.next_block() for _ in range(5)])
    whole = Resampler(rate, 3 * rate, 1)
    ref = np.concatenate([whole.process(new[i * S:(i + 1) * S]) for i in range(6)])[: len(heard), 0]
    assert np.abs(heard[at + 48 :] - ref[at + 48 :]).max() <= 1e-4


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["write", "read", "rewrite"]), st.integers(0, 40), st.integers(0, 40)), max_size=40))
def test_rewrites_between_writes_and_reads_read_back_as_a_list_would(ops) -> None:
    """The ring against a plain list: writes append (what fits), reads take from the front, and a
    rewrite replaces everything from a position not yet read (what fits, no fade)."""
    ring, kept, read_so_far, counter = RingBuffer(50), [], 0, 0
    for op, a, b in ops:
        if op == "write":
            frames = np.arange(counter, counter + a, dtype=np.float32)[:, None]
            counter += a
            n = ring.write(frames)
            assert n == min(a, 50 - len(kept))
            kept += frames[:n, 0].tolist()
        elif op == "read":
            got = ring.read(a)[:, 0].tolist()
            assert got == kept[: len(got)] and len(got) == min(a, len(kept))
            kept, read_so_far = kept[len(got):], read_so_far + len(got)
        else:
            at = read_so_far + min(a, len(kept))
            frames = np.arange(counter, counter + b, dtype=np.float32)[:, None] + 0.5
            counter += b
            n = ring.rewrite(at, frames)
            assert n == min(b, 50 - (at - read_so_far))
            kept = kept[: at - read_so_far] + frames[:n, 0].tolist()
        assert ring.fill == len(kept) and ring.read_position == read_so_far
    assert ring.read()[:, 0].tolist() == kept
