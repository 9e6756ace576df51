"""What every voice of a performance talks to, for `lmdm live` (lmdm/live.py runs the show).

    REPL (lmdm> prompt) ─┐
    watched set file ────┼─▶ Stage.run(text) ─▶ Interpreter (lmdm_dsl) ─▶ LiveSession, between blocks
    OSC (lmdm.osc) ──────┘        │
                                  └─ status lines gain the audio engine's buffer and underruns

`say`/`complain` print whole lines from any thread (the REPL, the watcher and the main loop print
concurrently). `FileRecorder` (offline) and `EngineRecorder` (live) are the interpreter's
recorders for `record "x.wav"`: confined to the recordings folder (`recording_path`), errors as one
line. `repl` is the lmdm> prompt, `play` the headless loop, `start_watching` the `--watch` thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from lmdm.audio import AudioEngine, Recorder, RecordError
from lmdm.audio.record import recording_path
from lmdm_dsl import Interpreter, run_repl, watch_file
from lmdm_dsl.repl import PROMPT, StatusLine, bar_and_beat, on_a_terminal

STATUS_SECONDS = 5.0  # a status line this often when nobody is typing
WATCH_SECONDS = 0.5  # how often --watch looks at the set file
HISTORY_FILE = "~/.lmdm_history"

_STATUS = re.compile(r"^(\[block \d+\] )?status: ")
_print_lock = threading.Lock()


def say(line: str) -> None:
    """Print one line to stdout; the REPL, the watcher and the main loop print from different threads."""
    with _print_lock:
        print(line, flush=True)


def complain(line: str) -> None:
    with _print_lock:
        print(line, file=sys.stderr, flush=True)


class Stage:
    """The interpreter as the REPL, the file watcher and OSC see it: ``run(text)`` and
    ``messages()``, with the audio engine's numbers (buffer, underruns) added to status lines."""

    def __init__(self, interpreter: Interpreter, engine: AudioEngine | None = None):
        self.interpreter = interpreter
        self.engine = engine

    def run(self, text: str, *, tag: str | None = None) -> list[str]:
        return [self._with_engine(line) for line in self.interpreter.run(text, tag=tag)]

    def messages(self) -> list[str]:
        """What scheduled statements said on the generation thread since the last call."""
        return [self._with_engine(line) for line in self.interpreter.messages()]

    def status(self) -> str:
        """The `status` line: block, real-time factor, prompt, tempo, ... (and buffer, underruns)."""
        return self.run("status")[0]

    def _with_engine(self, line: str) -> str:
        if self.engine is None or not _STATUS.match(line):
            return line
        stats = self.engine.stats()
        line += f" | buffer {stats.buffer_seconds:.1f} s | underruns {stats.underruns}"
        if stats.output_underflows:
            line += f" | device underflows {stats.output_underflows}"
        if stats.device_lost:
            line += " | NO AUDIO DEVICE (reopening)"
        if stats.producer_errors:
            line += f" | generation errors {stats.producer_errors}"
        return line


def show(lines: list[str]) -> None:
    for line in lines:
        say(line)


def show_from_file(lines: list[str]) -> None:
    """Messages from running a set file: an error is one line (line, column and reason; the
    REPL shows the source line and a caret under it as well)."""
    for line in lines:
        say(line.split("\n", 1)[0])


@contextlib.contextmanager
def _reported_as_value_error() -> Iterator[None]:
    """A RecordError becomes a ValueError, which the interpreter reports as one ``error:`` line."""
    try:
        yield
    except RecordError as error:
        raise ValueError(str(error)) from None


class FileRecorder:
    """The interpreter's recorder offline: `record "x.wav"` writes the blocks as they are pulled,
    into the recordings ``folder`` (``recording_path``: no ``..``, no links, no overwriting)."""

    def __init__(self, samplerate: int, channels: int, folder: Path):
        self._recorder = Recorder(samplerate, channels)
        self.folder = folder

    def start(self, path: str) -> None:
        with _reported_as_value_error():
            target = recording_path(self.folder, path)
            self._recorder.stop()  # a new `record` ends the previous file, as the audio engine does
            self._recorder.start(target)

    def stop(self) -> None:
        with _reported_as_value_error():
            self._recorder.stop()

    def write(self, block: np.ndarray) -> str | None:
        """Append ``block`` if recording; an error line if the recording had to stop."""
        if not self._recorder.recording:
            return None
        try:
            self._recorder.write(block)
        except RecordError as error:
            with contextlib.suppress(RecordError):
                self._recorder.stop()
            return f"error: recording stopped: {error}"
        return None


class EngineRecorder:
    """The interpreter's recorder live: the audio engine records every block it generates, into
    the recordings ``folder`` (``recording_path``)."""

    def __init__(self, engine: AudioEngine, folder: Path):
        self.engine = engine
        self.folder = folder

    def start(self, path: str) -> None:
        with _reported_as_value_error():
            self.engine.record(str(recording_path(self.folder, path)))

    def stop(self) -> None:
        with _reported_as_value_error():
            self.engine.stop_recording()


def start_watching(path: Path, stage: Stage) -> Callable[[], None]:
    """Re-run the set file on a background thread each time it is saved. Returns once the file
    has run (so the set is in place before the first block); call the result to stop watching."""
    stop, first_look = threading.Event(), threading.Event()

    def pause(seconds: float) -> None:  # watch_file's sleep, after each look at the file
        first_look.set()
        stop.wait(seconds)

    def watch() -> None:
        try:
            watch_file(path, stage, WATCH_SECONDS, print_fn=lambda line: show_from_file([line]), stop=stop, sleep=pause)
        finally:
            first_look.set()

    thread = threading.Thread(target=watch, name="lmdm-watch", daemon=True)
    thread.start()
    first_look.wait(10)

    def stop_watching() -> None:
        stop.set()
        thread.join(5)

    return stop_watching


def play(stage: Stage, seconds: float | None, *, tick: float = 0.1) -> None:
    """No REPL: print what scheduled statements say, and a status line every few seconds."""
    start = time.monotonic()
    next_status = start + STATUS_SECONDS
    while seconds is None or time.monotonic() - start < seconds:
        show(stage.messages())
        if time.monotonic() >= next_status:
            say(stage.status())
            next_status += STATUS_SECONDS
        left = tick if seconds is None else start + seconds - time.monotonic()
        time.sleep(max(0.0, min(tick, left)))


def repl(
    stage: Stage,
    input_fn: Callable[[str], str] = input,
    print_fn: Callable[[str], None] | None = None,
    *,
    history_file: str | os.PathLike | None = HISTORY_FILE,
) -> None:
    """The lmdm> prompt (``lmdm_dsl.run_repl``) until Ctrl-D or ``quit``; prints with ``say``
    unless given a ``print_fn``.

    Ctrl-C clears a half-typed entry; a second Ctrl-C in a row stops. With the real ``input`` on
    a terminal, prompt_toolkit gives multi-line editing, highlighting, a history kept in
    ``history_file`` and a bottom line (``repl_status``); elsewhere (a pipe) readline, if any.
    """
    print_fn = print_fn or say
    if input_fn is input and on_a_terminal():
        run_repl(stage, input, print_fn, history_file=history_file, status=lambda: repl_status(stage))
        return
    keys = _Keys(input_fn, print_fn)
    with _line_history(history_file if input_fn is input else None):
        run_repl(stage, keys, print_fn)
    if input_fn is input:
        print_fn("")  # end the last lmdm> line (Ctrl-D / Ctrl-C leave the cursor on it)


def repl_status(stage: Stage) -> StatusLine:
    """The REPL's bottom line: where the music is (block, bar and beat, tempo, prompt) and how the
    audio keeps up (buffer and ahead, real-time factor, underruns)."""
    session = stage.interpreter.session
    stats, clock = session.stats, stage.interpreter.clock
    bar, beat = bar_and_beat(clock, stats.blocks, session.block_seconds)
    audio = {}
    if stage.engine is not None:
        engine = stage.engine.stats()
        audio = {"buffer_seconds": engine.buffer_seconds, "underruns": engine.underruns,
                 "ahead_seconds": stage.engine.config.ahead_blocks * session.block_seconds}
    return StatusLine(block=stats.blocks, bar=bar, beat=beat, bpm=clock.bpm, prompt=str(stats.prompt),
                      rtf=stats.real_time_factor, **audio)


class _Keys:
    """``input`` for run_repl: a first Ctrl-C clears the entry (run_repl's rule), a second one in a
    row, at the empty prompt, ends the REPL as Ctrl-D does."""

    def __init__(self, input_fn: Callable[[str], str], print_fn: Callable[[str], None]):
        self.input_fn = input_fn
        self.print_fn = print_fn
        self.interrupted = False

    def __call__(self, prompt: str) -> str:
        try:
            line = self.input_fn(prompt)
        except KeyboardInterrupt:
            if self.interrupted and prompt == PROMPT:
                raise EOFError from None
            self.interrupted = True
            self.print_fn(("\n" if self.input_fn is input else "") + "(Ctrl-C again to stop)")
            raise
        self.interrupted = False
        return line


@contextlib.contextmanager
def _line_history(history_file: str | os.PathLike | None) -> Iterator[None]:
    """Line editing for ``input()`` and a history file, when readline exists and a file is given."""
    if history_file is None:
        yield
        return
    try:
        import readline
    except ImportError:  # plain input() still works
        yield
        return
    path = os.path.expanduser(os.fspath(history_file))
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(path)
