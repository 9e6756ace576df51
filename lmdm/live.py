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

What the REPL, the watched file and OSC talk to (`Stage`), the printing, the `record` statements'
recorders and the prompt live in lmdm/stage.py; this module parses the command line and runs the
performance, offline or live.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile
import torch

from lmdm import stage as voice
from lmdm.audio import AudioEngine, AudioUnavailable, EngineConfig, RecordError
from lmdm.audio.config import SPLICE_STEPS
from lmdm.audio.record import output_problem, recordings_folder
from lmdm.render import MODEL_HELP, output_recorder, resolve_model
from lmdm.osc import OscError, OscServer
from lmdm.sync.heard import engine_heard, engine_output
from lmdm.sync.link import start_link
from lmdm.sync.midi import VIRTUAL as MIDI_VIRTUAL
from lmdm.sync.midi import start_midi
from lmdm.session import MAX_STEPS, LiveSession
from lmdm.session.rewind import REWIND_BLOCKS
from lmdm.model.placement import add_placement_arguments
from lmdm.threads import add_threads_argument
from lmdm_dsl import Interpreter
from lmdm_dsl.values import METER_RANGE, SEED_RANGE

OFFLINE_SECONDS = 60.0  # --offline without --seconds
AHEAD_SECONDS = 1.0  # generate when less than this much audio (and at least one block) is queued
MIN_AHEAD_SECONDS, MAX_AHEAD_SECONDS = 0.01, 8.0  # up to the engine's output ring (EngineConfig.buffer_seconds)
MAX_SECONDS = 86_400.0  # --seconds: at most a day of audio
MAX_LINK_QUANTUM = 64  # --link-quantum, in beats
MAX_LINK_LATENCY_MS = 2000.0  # --link-latency: a PA system far away, a Bluetooth speaker


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
    p.add_argument("--block-frames", type=int, metavar="N",
                   help="blocks of N latent frames, one of the lengths the model was trained on (default: its own; the bundled model "
                   "has only 25 = 1 s; recipes/default/lmdm_blocks.toml trains 25 and 12 = 0.48 s: changes heard sooner, docs/play_with_others.md)")
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
    live.add_argument("--splice-steps", type=int, default=SPLICE_STEPS, metavar="N",
                      help=f"with --splice: make the spliced block in at most N sampler steps (fewer: heard sooner; "
                           f"default {SPLICE_STEPS}; the session's steps to splice exactly the stream it makes)")
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
            voice.complain(f"lmdm live: {problem}")
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
        if a.splice_steps is not None and not 1 <= a.splice_steps <= MAX_STEPS:
            p.error(f"--splice-steps must be a whole number from 1 to {MAX_STEPS}, got {a.splice_steps}")
        if a.link_quantum is not None and not METER_RANGE[0] <= a.link_quantum <= MAX_LINK_QUANTUM:
            p.error(f"--link-quantum must be a whole number of beats from {METER_RANGE[0]} to {MAX_LINK_QUANTUM}, got {a.link_quantum}")
        if a.link_latency is not None and not (math.isfinite(a.link_latency) and 0 <= a.link_latency <= MAX_LINK_LATENCY_MS):
            p.error(f"--link-latency must be 0 to {MAX_LINK_LATENCY_MS:g} ms, got {a.link_latency:g}")

    text = ""
    if a.set is not None:
        try:
            text = a.set.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            voice.complain(f"lmdm live: cannot read the set file {a.set}: {error.strerror or error}")
            return 2
    try:
        given = a.record_dir is not None
        recordings = recordings_folder(a.record_dir if given else default_recordings(a.set), check=given)
    except RecordError as error:
        voice.complain(f"lmdm live: {error}")
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
        voice.complain(f"note: model {a.model!r} has random weights and a placeholder codec: expect tones, not music")
    try:
        session = LiveSession(model, seed=a.seed, threads=a.threads, device=a.model_device, dtype=a.model_dtype,
                              block_frames=getattr(a, "block_frames", None))
    except ValueError as error:  # a block length the model was not trained on
        raise InputFileError(f"lmdm live: --block-frames: {error}") from None
    if getattr(a, "input", None) not in (None, "device"):
        feed_file(session, a.input)
    return session


class InputFileError(ValueError):
    """--input names a file that cannot be read, or the session cannot be made as asked (one line)."""


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
        voice.complain(str(error))
        return 2
    try:
        output = output_recorder(session).start(out, overwrite=True)
    except RecordError as error:
        voice.complain(f"lmdm live: {error}")
        return 2
    recorder = voice.FileRecorder(session.sample_rate, session.channels, recordings)
    stage = voice.Stage(Interpreter(session, recorder=recorder))
    if a.set is not None:
        voice.show_from_file(stage.run(text, tag=str(a.set)))
    seconds = OFFLINE_SECONDS if a.seconds is None else a.seconds
    total = round(seconds * session.sample_rate)
    left = total
    try:
        with output:  # finishes the file (and encodes .flac/.ogg) however the loop ends
            while left > 0:
                block = session.read(min(left, session.block_samples))  # statements fire before each block
                output.write(block)
                problem = recorder.write(block)
                voice.show(stage.messages() + ([problem] if problem else []))
                left -= len(block)
    except RecordError as error:  # disk full, ...
        voice.complain(f"lmdm live: {error}")
        return 2
    except KeyboardInterrupt:  # the file is finished properly and holds what was made so far
        voice.complain(f"lmdm live: interrupted; {out} holds the first {(total - left) / session.sample_rate:.2f} s")
        return 130
    finally:
        with contextlib.suppress(ValueError):
            recorder.stop()
        stage.interpreter.close()
    voice.show(stage.messages())
    voice.say(f"{stage.status()} | wrote {out} ({total / session.sample_rate:.2f} s at {session.sample_rate} Hz)")
    return 0


# --- live: the audio engine pulls the blocks ----------------------------------------------------


def perform(a: argparse.Namespace, text: str, recordings: Path) -> int:
    """Play until Ctrl-D / quit (REPL), or ``--seconds`` / Ctrl-C (``--no-repl``), then shut down."""
    try:
        session = new_session(a)
    except InputFileError as error:
        voice.complain(str(error))
        return 2
    capture = getattr(a, "input", None) == "device"
    config = EngineConfig(
        model_rate=session.sample_rate, channels=session.channels, device=a.device,
        ahead_blocks=max(1.0, a.ahead / session.block_seconds), input_channels=1 if capture else 0,
        splice=a.splice, splice_margin_ms=a.splice_margin, splice_steps=a.splice_steps,
    )
    if a.splice and config.ahead_blocks > REWIND_BLOCKS:
        reach = REWIND_BLOCKS * session.block_seconds
        voice.complain(f"lmdm live: --splice makes the newest {REWIND_BLOCKS} blocks ({reach:g} s) again; with --ahead "
                       f"{a.ahead:g} the block being played is often older, and a change then waits as without "
                       f"--splice: use --ahead {reach:g} or less")
    engine = AudioEngine(session.next_block, config, on_notice=lambda line: voice.complain(f"lmdm live: {line}"),
                         splicer=session if a.splice else None)
    if capture:
        engine.producer = with_device_input(session, engine)  # read when the engine starts (_build)
    stage = voice.Stage(Interpreter(session, recorder=voice.EngineRecorder(engine, recordings)), engine)
    started = time.monotonic()

    def finish() -> None:
        stage.interpreter.close()
        voice.show(stage.messages())

    # what is started registers its own stop; they run in reverse: OSC, the watcher, the engine, the rest
    with _terminate_stops(), contextlib.ExitStack() as running:
        running.callback(finish)
        running.callback(engine.stop)  # joins the generation thread and finishes a recording
        try:
            if a.watch:
                running.callback(voice.start_watching(a.set, stage))  # returns once the set has run
            elif a.set is not None:
                voice.show_from_file(stage.run(text, tag=str(a.set)))
            osc = None
            if not a.no_osc:
                try:
                    osc = OscServer(stage, host=a.osc_host, port=a.osc_port).start()
                except OscError as error:
                    voice.complain(f"lmdm live: {error}; pick another --osc-port (0 = any free one) or use --no-osc")
                    return 2
                running.callback(osc.stop)
            try:
                engine.start()
            except AudioUnavailable as error:
                voice.complain(f"lmdm live: {error}. To render without an audio device: lmdm live SET --offline -o set.wav")
                return 2
            if a.midi_in is not None or a.midi_out is not None:  # a port that cannot open is one line; play goes on
                running.callback(start_midi(stage.interpreter, session, port_in=a.midi_in, port_out=a.midi_out, api=a.midi_api,
                                            heard=lambda: engine_heard(engine), say=lambda line: voice.complain(f"lmdm live: {line}")))
            if a.link:  # no [link] extra is one line; play goes on at the set's own tempo
                latency = None if a.link_latency is None else a.link_latency / 1000.0
                running.callback(start_link(session, clock=lambda: stage.interpreter.clock, quantum=a.link_quantum,
                                            heard=lambda: engine_output(engine, latency), say=lambda line: voice.complain(f"lmdm live: {line}")))
            started = time.monotonic()
            voice.say(banner(a, session, engine, osc))
            if a.no_repl:
                voice.play(stage, a.seconds)
            else:
                voice.repl(stage)
        except (KeyboardInterrupt, Terminated):
            voice.say("(stopping)")
    voice.say(f"{stage.status()} | stopped after {time.monotonic() - started:.1f} s")
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














def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
