"""`lmdm live`: perform a set, through the speakers or offline into a file.

    lmdm live examples/first_set.lmdm                       # play it, then type at the lmdm> prompt
    lmdm live set.lmdm --watch                              # ...and re-run the file when it is saved
    lmdm live --no-repl --seconds 60                        # headless: OSC only, stop after 60 s
    lmdm live set.lmdm --offline --seconds 60 -o set.wav    # no audio device: render the set

One session, one interpreter: the set file, the REPL, the watched file and OSC messages all become
statements of the lmdm language (docs/language.md) run by the same `Interpreter`, which applies
them between blocks. Live, the audio engine's generation thread pulls the blocks; offline, this
process pulls exactly `--seconds` of audio itself, as fast as the model goes. Either way nothing a
performer types stops the music: errors are printed and play goes on. See docs/live.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile
import torch

from lmdm.audio import AudioEngine, AudioUnavailable, EngineConfig, Recorder, RecordError
from lmdm.audio.record import output_problem, recording_path, recordings_folder
from lmdm.cli import MODEL_HELP, output_recorder, resolve_model
from lmdm.osc import OscError, OscServer
from lmdm.sync.midi import VIRTUAL as MIDI_VIRTUAL
from lmdm.sync.midi import engine_heard, start_midi
from lmdm.sync.link import engine_output, start_link
from lmdm.session import LiveSession
from lmdm.model.placement import add_placement_arguments
from lmdm.threads import add_threads_argument
from lmdm_dsl import Interpreter, run_repl, watch_file
from lmdm_dsl.repl import PROMPT, StatusLine, bar_and_beat, on_a_terminal
from lmdm_dsl.values import METER_RANGE, SEED_RANGE

OFFLINE_SECONDS = 60.0  # --offline without --seconds
AHEAD_SECONDS = 1.0  # generate when less than this much audio (and at least one block) is queued
MIN_AHEAD_SECONDS, MAX_AHEAD_SECONDS = 0.01, 8.0  # up to the engine's output ring (EngineConfig.buffer_seconds)
MAX_SECONDS = 86_400.0  # --seconds: at most a day of audio
MAX_LINK_QUANTUM = 64  # --link-quantum, in beats
MAX_LINK_LATENCY_MS = 2000.0  # --link-latency: a PA system far away, a Bluetooth speaker
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


# --- what every voice of the performance talks to ---------------------------------------------


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


# --- `record` statements ------------------------------------------------------------------------


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


# --- the command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lmdm live",
        description="Perform a set: play it live (type statements, --watch the file, drive it over OSC) "
        "or render it --offline to a file. The language is in docs/language.md; this command in docs/live.md.",
    )
    p.add_argument("set", nargs="?", type=Path, help="a set file of lmdm statements, run first (e.g. examples/first_set.lmdm)")
    p.add_argument("--model", default="default", help=MODEL_HELP)
    p.add_argument("--seed", type=int, default=0, help="the session's random seed (default 0)")
    p.add_argument("--seconds", type=float, help="stop after this much audio (offline: default 60; live: needs --no-repl)")
    p.add_argument("--record-dir", type=Path, metavar="DIR",
                   help="the folder `record \"x.wav\"` writes into, typed, from the set or over OSC; it must exist "
                   "(default: the set file's folder, or the current directory without a set file)")
    add_threads_argument(p)
    add_placement_arguments(p)
    offline = p.add_argument_group("offline")
    offline.add_argument("--offline", action="store_true", help="render to a file instead of playing (no audio device needed)")
    offline.add_argument("-o", "--out", type=Path, default=Path("out.wav"), help="the rendered file: .wav, .flac or .ogg (default out.wav)")
    live = p.add_argument_group("live")
    live.add_argument("--device", type=_device, help="output device: a number or part of a name from `lmdm devices` (default: the system's)")
    live.add_argument("--ahead", type=float, default=AHEAD_SECONDS, metavar="SECONDS",
                      help=f"keep at least this much audio queued, and always one block (default {AHEAD_SECONDS:g})")
    live.add_argument("--splice", action="store_true",
                      help="hear a change sooner: the block being played is made again with it and spliced in "
                           "--splice-margin ahead of the play position (docs/play_with_others.md)")
    live.add_argument("--splice-margin", type=float, default=150.0, metavar="MS",
                      help="with --splice: how far ahead of the play position a change is spliced in (default 150 ms; "
                           "less than a block's compute time means some changes wait for the next block)")
    p.add_argument("--input", metavar="FILE|device",
                   help="a player's audio for `jam on` and `delay`: an audio file (offline or live), or 'device' (live: capture the input)")
    live.add_argument("--watch", action="store_true", help="re-run the set file each time it is saved")
    live.add_argument("--no-repl", action="store_true", help="no lmdm> prompt: play until --seconds or Ctrl-C, a status line every few seconds")
    live.add_argument("--osc-port", type=int, default=57120, help="OSC port (default 57120; 0 picks a free one)")
    live.add_argument("--osc-host", default="127.0.0.1", help="OSC address to listen on (default 127.0.0.1: this machine only)")
    live.add_argument("--no-osc", action="store_true", help="do not listen for OSC")
    live.add_argument("--midi-in", metavar="PORT", help="MIDI input for `midi cc/notes/clock in` statements: a port's name "
                      f"or part of it, or '{MIDI_VIRTUAL}' for lmdm's own port ([midi] extra; docs/play_with_others.md)")
    live.add_argument("--midi-out", metavar="PORT", help=f"MIDI output for `midi clock out`: a port's name or part of it, or '{MIDI_VIRTUAL}'")
    live.add_argument("--midi-api", metavar="NAME", help="the MIDI system: alsa, jack, core, winmm (default: the first that answers)")
    live.add_argument("--link", action="store_true", help="join the Ableton Link session on this network: the tempo and the "
                      "bar lines follow it, a `tempo` is proposed to it ([link] extra; docs/play_with_others.md)")
    live.add_argument("--link-quantum", type=int, metavar="BEATS",
                      help="Link's quantum: the beats its bar lines are shared over (default: the set's beats per bar)")
    live.add_argument("--link-latency", type=float, metavar="MS",
                      help="the output latency Link's bar lines are heard after, in ms (default: what the audio device reports)")
    return p


def _device(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if a.seconds is not None and not (math.isfinite(a.seconds) and 0 < a.seconds <= MAX_SECONDS):
        p.error(f"--seconds must be a number from 0 to {MAX_SECONDS:g} (24 h), got {a.seconds:g}")
    if not 0 <= a.seed <= SEED_RANGE[1]:
        p.error(f"--seed must be a whole number from 0 to {SEED_RANGE[1]}, got {a.seed}")
    if a.offline:
        if a.watch:
            p.error("--watch plays live; leave out --offline")
        if a.midi_in is not None or a.midi_out is not None:
            p.error("--midi-in and --midi-out play live; leave out --offline")
        if a.link:
            p.error("--link plays live; leave out --offline")
        problem = output_problem(a.out)  # the policy of every command's output (lmdm.audio.record)
        if problem:
            complain(f"lmdm live: {problem}")
            return 2
    else:
        if a.watch and a.set is None:
            p.error("--watch needs a set file")
        if a.seconds is not None and not a.no_repl:
            p.error("--seconds needs --no-repl when playing live (the REPL plays until Ctrl-D)")
        if not 0 <= a.osc_port <= 65535:
            p.error(f"--osc-port must be from 0 to 65535, got {a.osc_port}")
        if not (math.isfinite(a.ahead) and MIN_AHEAD_SECONDS <= a.ahead <= MAX_AHEAD_SECONDS):
            p.error(f"--ahead must be {MIN_AHEAD_SECONDS:g} to {MAX_AHEAD_SECONDS:g} seconds (the output buffer), got {a.ahead:g}")
        if not (math.isfinite(a.splice_margin) and 20.0 <= a.splice_margin <= 2000.0):
            p.error(f"--splice-margin must be 20 to 2000 ms, got {a.splice_margin:g}")
        if a.link_quantum is not None and not METER_RANGE[0] <= a.link_quantum <= MAX_LINK_QUANTUM:
            p.error(f"--link-quantum must be a whole number of beats from {METER_RANGE[0]} to {MAX_LINK_QUANTUM}, got {a.link_quantum}")
        if a.link_latency is not None and not (math.isfinite(a.link_latency) and 0 <= a.link_latency <= MAX_LINK_LATENCY_MS):
            p.error(f"--link-latency must be 0 to {MAX_LINK_LATENCY_MS:g} ms, got {a.link_latency:g}")

    text = ""
    if a.set is not None:
        try:
            text = a.set.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            complain(f"lmdm live: cannot read the set file {a.set}: {error.strerror or error}")
            return 2
    try:
        given = a.record_dir is not None
        recordings = recordings_folder(a.record_dir if given else default_recordings(a.set), check=given)
    except RecordError as error:
        complain(f"lmdm live: {error}")
        return 2
    with _no_denormals():
        return render_offline(a, text, recordings) if a.offline else perform(a, text, recordings)


def default_recordings(set_file: Path | None) -> Path:
    """Where `record` writes without --record-dir: the folder the set is played from (the set
    file's), or the current directory when there is no set file."""
    return set_file.parent if set_file is not None else Path.cwd()


@contextlib.contextmanager
def _no_denormals() -> Iterator[None]:
    """No subnormal slow paths while the audio must keep up (this thread's setting). The model's
    threads are the session's (``--threads``, lmdm/threads.py)."""
    flush = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flush:
            torch.set_flush_denormal(False)


def new_session(a: argparse.Namespace) -> LiveSession:
    model = resolve_model(a.model)
    if model.name == "random":
        complain(f"note: model {a.model!r} has random weights and a placeholder codec: expect tones, not music")
    session = LiveSession(model, seed=a.seed, threads=a.threads, device=a.model_device, dtype=a.model_dtype)
    if getattr(a, "input", None) not in (None, "device"):
        feed_file(session, a.input)
    return session


class InputFileError(ValueError):
    """--input names a file that cannot be read (one line)."""


def feed_file(session: LiveSession, path: str) -> None:
    """A player's part from an audio file: fed whole at the start; the session hears each frame only
    once it is a block old (its latency cutoff), so this plays along in time (jam on / delay)."""
    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as error:
        raise InputFileError(f"lmdm live: cannot read the input file {path}: {_one_line(error)}") from None
    try:  # its rate and channel count are checked there (8-384 kHz, odd rates resampled)
        session.feed_input(audio, sample_rate=rate)
    except ValueError as error:
        raise InputFileError(f"lmdm live: cannot play the input file {path}: {error}") from None


def with_device_input(session: LiveSession, engine: AudioEngine) -> Callable[[], np.ndarray]:
    """The engine's block source when the device's input is captured: what arrived since the last
    block is fed to the session (mono), then the next block is made. Input sample 0 is taken as
    block 0's first sample; device latency is not compensated (the model's latency cutoff and the
    delay time absorb a block or two)."""

    def next_block() -> np.ndarray:
        captured = engine.read_input()
        if len(captured):
            session.feed_input(captured.mean(axis=1))
        return session.next_block()

    return next_block


# --- offline: pull the blocks ourselves ---------------------------------------------------------


def render_offline(a: argparse.Namespace, text: str, recordings: Path) -> int:
    """Run the set, then pull exactly ``--seconds`` of audio into ``--out``, block by block, through
    a ``Recorder`` (``output_recorder``): a killed render leaves a valid WAV."""
    out: Path = a.out
    try:
        session = new_session(a)
    except InputFileError as error:
        complain(str(error))
        return 2
    try:
        output = output_recorder(session).start(out, overwrite=True)
    except RecordError as error:
        complain(f"lmdm live: {error}")
        return 2
    recorder = FileRecorder(session.sample_rate, session.channels, recordings)
    stage = Stage(Interpreter(session, recorder=recorder))
    if a.set is not None:
        show_from_file(stage.run(text, tag=str(a.set)))
    seconds = OFFLINE_SECONDS if a.seconds is None else a.seconds
    total = round(seconds * session.sample_rate)
    left = total
    try:
        with output:  # finishes the file (and encodes .flac/.ogg) however the loop ends
            while left > 0:
                block = session.read(min(left, session.block_samples))  # statements fire before each block
                output.write(block)
                problem = recorder.write(block)
                show(stage.messages() + ([problem] if problem else []))
                left -= len(block)
    except RecordError as error:  # disk full, ...
        complain(f"lmdm live: {error}")
        return 2
    except KeyboardInterrupt:  # the file is finished properly and holds what was made so far
        complain(f"lmdm live: interrupted; {out} holds the first {(total - left) / session.sample_rate:.2f} s")
        return 130
    finally:
        with contextlib.suppress(ValueError):
            recorder.stop()
        stage.interpreter.close()
    show(stage.messages())
    say(f"{stage.status()} | wrote {out} ({total / session.sample_rate:.2f} s at {session.sample_rate} Hz)")
    return 0


# --- live: the audio engine pulls the blocks ----------------------------------------------------


def perform(a: argparse.Namespace, text: str, recordings: Path) -> int:
    """Play until Ctrl-D / quit (REPL), or ``--seconds`` / Ctrl-C (``--no-repl``), then shut down."""
    try:
        session = new_session(a)
    except InputFileError as error:
        complain(str(error))
        return 2
    capture = getattr(a, "input", None) == "device"
    config = EngineConfig(
        model_rate=session.sample_rate, channels=session.channels, device=a.device,
        ahead_blocks=max(1.0, a.ahead / session.block_seconds), input_channels=1 if capture else 0,
        splice=a.splice, splice_margin_ms=a.splice_margin,
    )
    engine = AudioEngine(session.next_block, config, on_notice=lambda line: complain(f"lmdm live: {line}"),
                         splicer=session if a.splice else None)
    if capture:
        engine.producer = with_device_input(session, engine)  # read when the engine starts (_build)
    stage = Stage(Interpreter(session, recorder=EngineRecorder(engine, recordings)), engine)
    started = time.monotonic()

    def finish() -> None:
        stage.interpreter.close()
        show(stage.messages())

    # what is started registers its own stop; they run in reverse: OSC, the watcher, the engine, the rest
    with _terminate_stops(), contextlib.ExitStack() as running:
        running.callback(finish)
        running.callback(engine.stop)  # joins the generation thread and finishes a recording
        try:
            if a.watch:
                running.callback(start_watching(a.set, stage))  # returns once the set has run
            elif a.set is not None:
                show_from_file(stage.run(text, tag=str(a.set)))
            osc = None
            if not a.no_osc:
                try:
                    osc = OscServer(stage, host=a.osc_host, port=a.osc_port).start()
                except OscError as error:
                    complain(f"lmdm live: {error}; pick another --osc-port (0 = any free one) or use --no-osc")
                    return 2
                running.callback(osc.stop)
            try:
                engine.start()
            except AudioUnavailable as error:
                complain(f"lmdm live: {error}. To render without an audio device: lmdm live SET --offline -o set.wav")
                return 2
            if a.midi_in is not None or a.midi_out is not None:  # a port that cannot open is one line; play goes on
                running.callback(start_midi(stage.interpreter, session, port_in=a.midi_in, port_out=a.midi_out, api=a.midi_api,
                                            heard=lambda: engine_heard(engine), say=lambda line: complain(f"lmdm live: {line}")))
            if a.link:  # no [link] extra is one line; play goes on at the set's own tempo
                latency = None if a.link_latency is None else a.link_latency / 1000.0
                running.callback(start_link(session, clock=lambda: stage.interpreter.clock, quantum=a.link_quantum,
                                            heard=lambda: engine_output(engine, latency), say=lambda line: complain(f"lmdm live: {line}")))
            started = time.monotonic()
            say(banner(a, session, engine, osc))
            if a.no_repl:
                play(stage, a.seconds)
            else:
                repl(stage)
        except (KeyboardInterrupt, Terminated):
            say("(stopping)")
    say(f"{stage.status()} | stopped after {time.monotonic() - started:.1f} s")
    return 0


class Terminated(BaseException):
    """SIGTERM arrived (kill, systemd, a container stopping): stop as cleanly as for Ctrl-C."""


@contextlib.contextmanager
def _terminate_stops() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` in the main thread while the performance runs. (Not a
    KeyboardInterrupt: at the lmdm> prompt that only clears the entry.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def banner(a: argparse.Namespace, session: LiveSession, engine: AudioEngine, osc: OscServer | None) -> str:
    """Two lines: what is playing where, and how to stop."""
    device = "the default device" if a.device is None else f"device {a.device!r}"
    listening = "no OSC" if osc is None else f"OSC on {osc.host}:{osc.port}"
    first = (f"lmdm live: model {a.model}, {session.block_seconds:g} s blocks at {session.sample_rate} Hz, "
             f"playing on {device} at {engine.device_rate} Hz; {listening}")
    if a.no_repl:
        until = "Ctrl-C" if a.seconds is None else f"{a.seconds:g} s (or Ctrl-C)"
        return f"{first}\nplaying until {until}"
    return f"{first}\ntype statements (docs/language.md), `status` for a status line, Ctrl-D or `quit` to stop"


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


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
