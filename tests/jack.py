"""A JACK dummy-backend server for real sounddevice streams in tests (no sound card needed).

``jack_server`` (session scope) starts ``jackd --no-realtime -d dummy -r 16000 -p 256``, waits
until ``jack_lsp`` answers, re-initialises PortAudio so it sees JACK, and yields the server's
rate and period. On teardown it terminates PortAudio *before* stopping jackd: PortAudio's JACK
client aborts the process at exit if its server vanished first.

Without jackd or PortAudio the requesting tests are skipped, unless the ``CI`` environment
variable is set: then they fail, so CI cannot pass by skipping silently.
If a JACK server is already running, it is used as is (and left running).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from typing import Iterator

import attrs
import pytest

JACK_RATE = 16000
JACK_PERIOD = 256
JACK_ENV = {"JACK_NO_AUDIO_RESERVATION": "1", "JACK_NO_START_SERVER": "1"}


@attrs.frozen
class JackServer:
    rate: int  # every stream must use this sample rate
    period: int  # frames per JACK cycle (0 if unknown: a server we did not start)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"audio tests need JACK in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _server_answers(env: dict[str, str]) -> bool:
    try:
        return subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        _unavailable("jackd not found (apt-get install jackd2)")
    for key, value in JACK_ENV.items():
        os.environ.setdefault(key, value)
    env = dict(os.environ)
    process = None
    period = 0
    if not _server_answers(env):
        log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would stall jackd
        process = subprocess.Popen(
            ["jackd", "--no-realtime", "-d", "dummy", "-r", str(JACK_RATE), "-p", str(JACK_PERIOD)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        period = JACK_PERIOD
        deadline = time.monotonic() + 10
        while not _server_answers(env):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                log.seek(0)
                tail = log.read().decode(errors="replace").strip()[-300:]
                _unavailable(f"jackd did not start: {tail}")
            time.sleep(0.1)
    try:
        import sounddevice as sd
    except OSError as exc:
        _stop(process)
        _unavailable(f"PortAudio not found ({exc}); apt-get install libportaudio2")
    sd._terminate()  # PortAudio found its host APIs at import time, maybe before jackd was up
    sd._initialize()
    try:
        rate = int(sd.query_devices(kind="output")["default_samplerate"])
    except sd.PortAudioError as exc:
        sd._terminate()
        _stop(process)
        _unavailable(f"PortAudio sees no JACK device: {exc}")
    try:
        yield JackServer(rate=rate, period=period)
    finally:
        sd._terminate()
        _stop(process)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
