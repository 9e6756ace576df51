"""`lmdm live`: offline renders of a set, the REPL, and real-time play against JACK's dummy backend.

The real-time test runs `main()` in-process on a thread, plays the tiny model for a few seconds
and drives it over OSC on 127.0.0.1 while it plays.
"""

from __future__ import annotations

import os
import re
import runpy
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

import lmdm
import lmdm.live as live
import lmdm.stage as voice
from lmdm.audio import AudioUnavailable
from lmdm.cli import main as lmdm_main
from lmdm_dsl import Interpreter
from lmdm_dsl.repl import MORE, PROMPT
from tests.osc_client import OscClient

FIRST_SET = Path(__file__).resolve().parent.parent / "examples" / "first_set.lmdm"
TINY_RATE = 16000
TINY_BLOCK = 5120  # samples in one 0.32 s block of the tiny model


def _set(tmp_path: Path, text: str, name: str = "set.lmdm") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# === offline ====================================================================================


def test_first_set_renders_offline_to_exactly_the_asked_length(tmp_path, capsys):
    out = tmp_path / "first.wav"
    code = lmdm_main(["live", str(FIRST_SET), "--offline", "--seconds", "20", "-o", str(out), "--model", "tiny"])
    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    audio, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == TINY_RATE and audio.shape == (20 * TINY_RATE, 1)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert "tempo 122 BPM; bar 1 starts at block 0" in printed  # run() of the set
    assert "[block 0] play build" in printed  # scheduled statements, as they fire
    assert "error: line 37: sketch is not available in this model" in printed  # the model has no sketches
    assert printed[-1].startswith("status: block 63 | ") and printed[-1].endswith(f"wrote {out} (20.00 s at 16000 Hz)")


def test_a_set_with_a_syntax_error_still_renders(tmp_path, capsys):
    out = tmp_path / "broken.wav"
    path = _set(tmp_path, 'tempo 120\nprompt "unclosed\nsteps 2\n')
    assert live.main([str(path), "--offline", "--seconds", "1", "-o", str(out), "--model", "tiny"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2  # the error, in one line, then the status line
    assert printed[0].startswith("error: line 2, column 8: ")
    assert printed[1].startswith("status: block 4 | ") and "steps 8" in printed[1]  # nothing was applied
    assert sf.info(out).frames == TINY_RATE


def test_a_missing_set_file_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere.lmdm"
    assert live.main([str(missing), "--offline", "--seconds", "1", "-o", str(tmp_path / "x.wav"), "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lmdm live: cannot read the set file {missing}: No such file or directory"
    assert not (tmp_path / "x.wav").exists()


def test_an_unwritable_output_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "folder.wav"
    assert live.main([str(FIRST_SET), "--offline", "--seconds", "1", "-o", str(out), "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lmdm live: cannot write {out}: the folder {out.parent} does not exist (folders are not created)"
    assert not out.parent.exists()


def test_a_block_length_the_model_was_not_trained_on_is_one_line_and_exit_2(tmp_path, capsys):
    from lmdm import render

    out = tmp_path / "x.wav"
    assert live.main([str(FIRST_SET), "--offline", "--seconds", "1", "-o", str(out), "--model", "tiny", "--block-frames", "7"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "lmdm live: --block-frames: this model plays blocks of 8 frames (0.32 s), not 7"
    with pytest.raises(SystemExit) as exit_:
        render.main(["house", "--seconds", "1", "-o", str(out), "--model", "tiny", "--block-frames", "7"])
    assert exit_.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith("plays blocks of 8 frames (0.32 s), not 7")
    assert not out.exists()


def test_command_line_mistakes_say_what_was_meant(tmp_path, capsys):
    """A misspelled regime or sampler gets "did you mean"; an unknown --model lists the names; `lmdm
    devices --help` is help, not a device list; all exit 2 before any music."""
    from lmdm import cli, render

    out = str(tmp_path / "x.wav")
    for argv, words in ((["--regime", "block_casual"], "did you mean 'block_causal'? choose from block_causal, encdec, naive"),
                        (["--sampler", "ping"], "did you mean 'pingpong'?"),
                        (["--model", "nope"], "no checkpoint at nope: it does not exist (--model: default, small, tiny, or a checkpoint directory)")):
        with pytest.raises(SystemExit) as exit_:
            render.main(["house", "--seconds", "1", "-o", out, *argv])
        assert exit_.value.code == 2 and words in capsys.readouterr().err.splitlines()[-1]
    with pytest.raises(SystemExit) as exit_:
        cli.main(["devices", "--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("usage: lmdm devices")
    assert not Path(out).exists()


README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize(
    "out,reason",
    [
        ("missing/x.wav", "the folder missing does not exist (folders are not created)"),
        (str(README / "x.wav"), f"{README} is not a folder"),
        ("/proc/x.wav", "/proc is a system folder (/proc, /sys), not a place for audio"),
        ("{tmp}", "the output must end in .wav, .flac or .ogg, got"),
        ("x.mp3", "the output must end in .wav, .flac or .ogg, got 'x.mp3'"),
        ("{tmp}/folder.wav", "{tmp}/folder.wav is a folder"),
    ],
)
@pytest.mark.parametrize("command", ["render", "delay", "live"])
def test_every_command_refuses_a_bad_output_path_in_one_line_with_exit_2(tmp_path, monkeypatch, capsys, command, out, reason):
    """One policy for every command that writes audio (issue #20): folders are never created; the
    output's problem is one line on stderr, exit status 2, before any model is loaded."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.wav").mkdir()
    sf.write(tmp_path / "in.wav", np.zeros(1600, dtype=np.float32), TINY_RATE)  # delay's input
    out = out.format(tmp=tmp_path)
    argv = {"render": ["render", "a prompt", "--seconds", "1", "-o", out, "--model", "tiny"],
            "delay": ["delay", "in.wav", "-o", out, "--model", "tiny"],
            "live": ["live", "--offline", "--seconds", "1", "-o", out, "--model", "tiny"]}[command]
    try:
        code = lmdm_main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith(f"lmdm {command}: cannot write {out}: ") and reason.format(tmp=tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.wav", "in.wav"]


@pytest.mark.parametrize("command", ["live", "render"])
def test_an_offline_render_killed_with_sigkill_leaves_a_valid_wav(tmp_path, command):
    """`lmdm live --offline -o x.wav` (and `lmdm render`) keep the header of x.wav up to date as
    they go (issue #20): killed mid-render, the file opens in Python's strict `wave` module and in
    soundfile."""
    import subprocess
    import sys
    import wave

    out = tmp_path / "killed.wav"
    set_file = _set(tmp_path, 'prompt "warm pads"\nsteps 1\n')
    argv = {"live": ["live", str(set_file), "--offline", "--threads", "1"], "render": ["render", "warm pads", "--steps", "1"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmdm.cli", *argv[command], "--seconds", "3600", "-o", str(out), "--model", "tiny"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        enough = 44 + 3 * 2 * TINY_RATE * 3  # past the header and two syncs (24-bit mono, a sync a second)
        assert _wait_for(lambda: out.exists() and out.stat().st_size > enough, timeout=60, step=0.1)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    with wave.open(str(out), "rb") as file:
        frames, rate, width = file.getnframes(), file.getframerate(), file.getsampwidth()
    assert rate == TINY_RATE and width == 3 and frames >= 2 * TINY_RATE
    info = sf.info(out)
    assert info.samplerate == TINY_RATE and info.frames >= frames
    audio, _ = sf.read(out, frames=frames, dtype="float32")
    assert len(audio) == frames and np.isfinite(audio).all()


def test_record_statements_in_an_offline_set(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = _set(tmp_path, 'prompt "warm pads"\nin 2 blocks: record "take.wav"\nin 5 blocks: record stop\n')
    assert live.main([str(path), "--offline", "--seconds", "3", "-o", "all.wav", "--model", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "[block 2] recording to take.wav" in printed and "[block 5] recording stopped" in printed
    whole, _ = sf.read("all.wav", dtype="float32")
    take, rate = sf.read("take.wav", dtype="float32")
    assert rate == TINY_RATE and len(take) == 3 * TINY_BLOCK  # blocks 2, 3 and 4
    np.testing.assert_allclose(take, whole[2 * TINY_BLOCK:5 * TINY_BLOCK], atol=1e-6)  # both 24-bit WAV


def test_record_stays_in_the_folder_of_the_set(tmp_path, monkeypatch, capsys):
    """`record` writes only inside the recordings folder, by default the set file's folder (not the
    current directory): '..', absolute paths elsewhere, symbolic links and existing files are one
    error line each, and the set plays on (issue #20)."""
    sets = tmp_path / "sets"
    (sets / "sub").mkdir(parents=True)
    (sets / "old.wav").write_bytes(b"old")
    (sets / "link.wav").symlink_to(tmp_path / "nowhere.wav")
    (sets / "out").symlink_to(tmp_path)
    monkeypatch.chdir(tmp_path)
    refused = ["../escape.wav", str(tmp_path / "outside.wav"), "link.wav", "out/x.wav", "old.wav", "nosub/x.wav"]
    text = "".join(f'record "{name}"\n' for name in refused) + 'record "sub/take.wav"\nin 2 blocks: record stop\n'
    path = _set(sets, text)
    assert live.main([str(path), "--offline", "--seconds", "1", "-o", "all.wav", "--model", "tiny"]) == 0
    printed = capsys.readouterr().out.splitlines()
    errors = [line for line in printed if line.startswith("error:")]
    assert len(errors) == len(refused)
    for line, reason in zip(errors, ["'..' is not allowed", "outside the recordings folder", "is a symbolic link",
                                     "is a symbolic link", "already exists", "there is no folder"]):
        assert reason in line
    assert "recording to sub/take.wav" in printed and "[block 2] recording stopped" in printed
    assert sf.info(sets / "sub" / "take.wav").frames == 2 * TINY_BLOCK
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.wav", "sets"]  # nothing escaped
    assert (sets / "old.wav").read_bytes() == b"old" and not (tmp_path / "nowhere.wav").exists()


def test_record_dir_sets_the_recordings_folder(tmp_path, capsys):
    takes = tmp_path / "takes"
    takes.mkdir()
    path = _set(tmp_path, 'record "take.wav"\n')
    argv = [str(path), "--offline", "--seconds", "1", "-o", str(tmp_path / "all.wav"), "--model", "tiny"]
    assert live.main([*argv, "--record-dir", str(takes)]) == 0
    assert sf.info(takes / "take.wav").frames == TINY_RATE and not (tmp_path / "take.wav").exists()
    capsys.readouterr()
    assert live.main([*argv, "--record-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"lmdm live: the recordings folder {tmp_path / 'missing'}: the folder {tmp_path / 'missing'} "
                   "does not exist (folders are not created)")


def test_record_over_osc_stays_in_the_recordings_folder(tmp_path):
    """The same recorder answers OSC: `/lmdm/eval record "../x.wav"` is an /lmdm/error reply."""
    from lmdm.osc import ERROR, REPLY, OscServer

    session = lmdm.LiveSession(lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0), steps=1)
    recorder = voice.FileRecorder(session.sample_rate, session.channels, tmp_path / "recordings")
    (tmp_path / "recordings").mkdir()
    interpreter = Interpreter(session, recorder=recorder)
    try:
        server = OscServer(voice.Stage(interpreter))  # handled directly, no socket
        for statement in ['record "../x.wav"', 'record "/tmp/x.wav"', f'record "{tmp_path / "x.wav"}"']:
            builder = OscMessageBuilder(address="/lmdm/eval")
            builder.add_arg(statement)
            ((address, text),) = server.handle_packet(builder.build().dgram)
            assert address == ERROR and ("'..' is not allowed" in text or "outside the recordings folder" in text)
        builder = OscMessageBuilder(address="/lmdm/eval")
        builder.add_arg('record "take.wav"; record stop')
        assert server.handle_packet(builder.build().dgram) == [(REPLY, "recording to take.wav"), (REPLY, "recording stopped")]
    finally:
        interpreter.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recordings"]
    assert (tmp_path / "recordings" / "take.wav").exists()


def test_argument_mistakes_are_usage_errors(tmp_path, capsys):
    for argv in (["--seconds", "4"], ["--watch"], ["--offline", "--seconds", "0"], ["--record-dir"]):
        with pytest.raises(SystemExit) as exit_:
            live.main(argv)
        assert exit_.value.code == 2
    assert "--seconds needs --no-repl" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--offline", "--seed", "-1"], "--seed must be a whole number from 0"),
    (["--offline", "--seconds", "inf"], "--seconds must be a number from 0 to 86400"),
    (["--offline", "--seconds", "1e12"], "--seconds must be a number from 0 to 86400"),
    (["--no-repl", "--ahead", "inf"], "--ahead must be 0.01 to 8 seconds"),
    (["--no-repl", "--ahead", "1e-300"], "--ahead must be 0.01 to 8 seconds"),
])
def test_numbers_out_of_range_are_one_line_usage_errors(argv, words, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        live.main([*argv, "-o", str(tmp_path / "x.wav"), "--model", "tiny"] if "--offline" in argv else [*argv, "--model", "tiny"])
    assert exit_.value.code == 2 and words in capsys.readouterr().err.splitlines()[-1]


# === the REPL ===================================================================================


class Typist:
    """Fake ``input``: returns lines, raises what it is given, and runs callables between entries."""

    def __init__(self, *script):
        self.script = list(script)
        self.prompts: list[str] = []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        while self.script:
            item = self.script.pop(0)
            if callable(item) and not isinstance(item, type):
                item()
                continue
            if isinstance(item, type) or isinstance(item, BaseException):
                raise item
            return item
        raise EOFError


@pytest.fixture
def tiny_stage():
    session = lmdm.LiveSession(lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0), steps=2)
    interpreter = Interpreter(session)
    yield session, voice.Stage(interpreter)
    interpreter.close()


def test_the_repl_runs_statements_and_prints_what_fired(tiny_stage):
    session, stage = tiny_stage
    printed: list[str] = []
    typist = Typist(
        "tempo 130",
        "scene drop = {", "  steps 3", "}",  # one entry over three lines
        "in 0 blocks: play drop",
        session.next_block,  # the generation thread would do this...
        "",  # ...and the REPL prints what fired before its next prompt
        "cfg 99",
        "status",
    )
    voice.repl(stage, typist, printed.append, history_file=None)
    assert printed[0] == "tempo 130 BPM; bar 1 starts at block 0"
    assert printed[1] == "scene drop defined (1 statement)"
    assert printed[2] == "at block 0: play drop"
    assert printed[3:5] == ["[block 0] play drop", "[block 0] steps 3"]
    assert printed[5].startswith("error: line 1, column 5: cfg must be between 0 and 20")
    assert printed[6].startswith("status: block 1 | ") and "steps 3" in printed[6] and "tempo 130" in printed[6]
    assert typist.prompts[:4] == [PROMPT, PROMPT, MORE, MORE]
    assert session.stats.steps == 3


def test_ctrl_c_clears_the_entry_and_twice_in_a_row_quits(tiny_stage):
    _, stage = tiny_stage
    printed: list[str] = []
    typist = Typist("scene a = {", KeyboardInterrupt, "tempo 90", KeyboardInterrupt, KeyboardInterrupt, "tempo 100")
    voice.repl(stage, typist, printed.append, history_file=None)
    assert printed == [
        "(Ctrl-C again to stop)", "(entry cleared)",
        "tempo 90 BPM; bar 1 starts at block 0",
        "(Ctrl-C again to stop)", "(entry cleared)",
    ]
    assert typist.script == ["tempo 100"]  # the second Ctrl-C in a row ended the REPL


def test_sigterm_stops_a_performance_like_ctrl_c():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(live.Terminated):
        with live._terminate_stops():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) == before


# === real time, against JACK's dummy backend ====================================================


def _wait_for(condition, timeout: float = 5.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


@pytest.mark.audio
def test_live_play_driven_over_osc_with_a_watched_set(jack_server, tmp_path, monkeypatch):
    printed: list[str] = []
    monkeypatch.setattr(voice, "say", printed.append)  # main() prints from several threads
    path = _set(tmp_path, 'tempo 120\nprompt "intro"\n')
    take = tmp_path / "take.wav"
    result: list[int] = []
    argv = [str(path), "--watch", "--no-repl", "--seconds", "4", "--model", "tiny", "--osc-port", "0"]
    player = threading.Thread(target=lambda: result.append(live.main(argv)), name="test-live-main")
    player.start()
    client = None
    try:
        assert _wait_for(lambda: any("OSC on 127.0.0.1:" in line for line in printed), timeout=10)
        banner = next(line for line in printed if "OSC on 127.0.0.1:" in line)
        client = OscClient(int(re.search(r"OSC on 127\.0\.0\.1:(\d+)", banner).group(1)))
        assert "tempo 120 BPM; bar 1 starts at block 0" in printed and 'prompt "intro"' in printed

        assert client.ask("/lmdm/prompt", "acid bass") == [("/lmdm/reply", 'prompt "acid bass"')]
        assert client.ask("/lmdm/tempo", 128.0)[0][1].startswith("tempo 128 BPM; bar 1 starts at block ")
        assert client.ask("/lmdm/eval", f'record "{take}"') == [("/lmdm/reply", f"recording to {take}")]
        assert client.ask("/lmdm/delay/strength", 0.6) == [("/lmdm/reply", "delay 1 bar strength 0.6 feedback 0.3 mix 0.5 (5.859 blocks)")]

        def status() -> str:
            (address, line), = client.ask("/lmdm/status")
            assert address == "/lmdm/reply"
            return line

        assert _wait_for(lambda: 'prompt "acid bass"' in status(), timeout=3)  # applied at the next block
        line = status()
        assert "tempo 128 BPM" in line and re.search(r"\| buffer \d+\.\d s \| underruns 0$", line)

        path.write_text('tempo 99\nprompt "outro"\n')  # --watch re-runs the saved file
        assert _wait_for(lambda: "tempo 99 BPM" in status(), timeout=3)
    finally:
        if client is not None:
            client.close()
        player.join(timeout=20)
    assert not player.is_alive() and result == [0]
    assert printed[-1].startswith("status: block ") and " | underruns 0 | stopped after " in printed[-1]
    assert int(re.match(r"status: block (\d+)", printed[-1]).group(1)) >= 10  # ~12 blocks in 4 s
    assert not {t.name for t in threading.enumerate()} & {"lmdm-generate", "lmdm-osc", "lmdm-watch"}
    recorded = sf.info(take)  # finished by the engine's shutdown
    assert recorded.samplerate == TINY_RATE and recorded.frames >= TINY_BLOCK


def test_an_osc_port_in_use_is_one_line_and_exit_2(capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert live.main(["--no-repl", "--seconds", "1", "--model", "tiny", "--osc-port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"lmdm live: cannot listen for OSC on 127.0.0.1:{port}: ") and "--no-osc" in err[-1]


def test_no_audio_device_is_one_line_suggesting_offline(monkeypatch, capsys):
    def no_portaudio():
        raise AudioUnavailable("PortAudio not found (test): on Debian/Ubuntu run `apt-get install libportaudio2`")

    monkeypatch.setattr("lmdm.audio.engine.load_sounddevice", no_portaudio)
    assert live.main(["--no-repl", "--seconds", "1", "--model", "tiny", "--no-osc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lmdm live: PortAudio not found (test)") and "--offline" in err[-1]


@pytest.mark.parametrize("ahead, warned", [("2", True), ("0.5", False)])
def test_splice_with_more_ahead_than_it_can_reach_says_so(monkeypatch, capsys, ahead, warned):
    def no_portaudio():
        raise AudioUnavailable("PortAudio not found (test)")

    monkeypatch.setattr("lmdm.audio.engine.load_sounddevice", no_portaudio)
    argv = ["--no-repl", "--seconds", "1", "--model", "tiny", "--no-osc", "--splice", "--ahead", ahead]
    assert live.main(argv) == 2
    err = capsys.readouterr().err
    assert ("--splice makes the newest 3 blocks (0.96 s) again; with --ahead 2 " in err) is warned
    assert ("use --ahead 0.96 or less" in err) is warned


# === the embedding example ======================================================================


def test_the_embedding_example_runs_as_is(tmp_path, capsys):
    import torch

    example = runpy.run_path(str(FIRST_SET.parent / "embed_session.py"), run_name="example")
    threads = torch.get_num_threads()
    try:
        assert example["main"](str(tmp_path / "embed.wav"), "tiny") == 0
    finally:
        torch.set_num_threads(threads)
    assert sf.info(tmp_path / "embed.wav").frames == 10 * TINY_RATE
    printed = capsys.readouterr().out
    assert "32 blocks of 0.32 s" in printed and "acid bass" in printed


def test_offline_set_plays_along_with_an_input_file(tmp_path, capsys):
    """--input FILE: the player's part is fed to the session; a generative delay re-imagines it."""
    player = tmp_path / "player.wav"
    t = np.arange(3 * TINY_RATE) / TINY_RATE
    sf.write(player, (0.5 * np.sin(2 * np.pi * 440 * t) * (t % 0.5 < 0.25)).astype(np.float32), TINY_RATE)
    path = _set(tmp_path, "steps 2\ndelay 1 bar strength 0.3 feedback 0 mix 1\n")
    outs = []
    for extra in ([], ["--input", str(player)]):
        out = tmp_path / f"take{len(outs)}.wav"
        assert live.main([str(path), "--offline", "--seconds", "3", "-o", str(out), "--model", "tiny", *extra]) == 0
        outs.append(sf.read(out)[0])
    capsys.readouterr()
    assert len(outs[0]) == len(outs[1]) == 3 * TINY_RATE
    assert not np.allclose(outs[0], outs[1])  # the delay line carries the player's part
    assert live.main([str(path), "--offline", "--seconds", "1", "-o", str(tmp_path / "x.wav"), "--model", "tiny",
                      "--input", str(tmp_path / "missing.wav")]) != 0
    assert "cannot read the input file" in capsys.readouterr().err


# === one thread policy (issue #20, class 8) =====================================================


@pytest.mark.parametrize("command", [["render", "x"], ["live"], ["delay", "in.wav"], ["bench"]])
@pytest.mark.parametrize("threads", ["0", str((os.cpu_count() or 1) + 1), "two"])
def test_every_playing_command_takes_the_same_checked_threads_option(command, threads, capsys):
    with pytest.raises(SystemExit) as exit_:
        lmdm_main([*command, "--threads", threads])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"--threads: must be a whole number from 1 to {os.cpu_count()}" in err


def test_a_session_computes_on_its_own_threads_and_gives_the_process_its_setting_back():
    import torch

    from lmdm.threads import PLAY_THREADS, check_threads

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    before = torch.get_num_threads()
    seen: list[int] = []
    try:
        torch.set_num_threads(os.cpu_count() or 1)
        session = lmdm.LiveSession(model)
        assert session.threads == PLAY_THREADS == 1
        session.add_hook(lambda s, block: seen.append(torch.get_num_threads()))
        session.next_block()
        assert seen == [1] and torch.get_num_threads() == (os.cpu_count() or 1)
        lmdm.LiveSession(model, threads=None).next_block()  # None: torch's own setting, untouched
        assert torch.get_num_threads() == (os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)
    for bad in (0, -1, 1.5, True, (os.cpu_count() or 1) + 1):
        with pytest.raises(ValueError, match="threads must be a whole number from 1 to"):
            check_threads(bad)
        with pytest.raises(ValueError, match="threads must be"):
            lmdm.LiveSession(model, threads=bad)


# === the audio device goes away mid-set (issue #20, class 12) ===================================


def _lines(stream, into: list[str]) -> threading.Thread:
    def read() -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.audio
@pytest.mark.parametrize("ending", ["seconds", "sigterm"])
def test_a_set_survives_its_jack_server_vanishing_and_still_ends(tmp_path, ending):
    """A JACK server of our own (named, so the session's shared one is untouched) is killed under
    a running `lmdm live --no-repl`: one line says so, the recording goes on at real-time pace,
    and the set ends at --seconds, or at once on SIGTERM, with exit code 0."""
    import shutil
    import subprocess
    import sys

    from tests.jack import JACK_ENV, _unavailable

    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        _unavailable("jackd not found (apt-get install jackd2)")
    name = f"lmdm-loss-{os.getpid()}-{ending}"
    env = {**os.environ, **JACK_ENV, "JACK_DEFAULT_SERVER": name, "OMP_NUM_THREADS": "1"}
    jackd = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "16000", "-p", "256"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = 8 if ending == "seconds" else 60
    try:
        assert _wait_for(lambda: subprocess.run(["jack_lsp"], env=env, capture_output=True).returncode == 0, 10, 0.1)
        set_file = _set(tmp_path, 'record "take.wav"\n')
        command = [sys.executable, "-m", "lmdm.cli", "live", str(set_file), "--model", "tiny", "--no-repl", "--no-osc",
                   "--seconds", str(seconds)]
        player = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out: list[str] = []
        err: list[str] = []
        readers = [_lines(player.stdout, out), _lines(player.stderr, err)]
        try:
            assert _wait_for(lambda: any("playing until" in line for line in out), 30), (out, err)
            time.sleep(1.0)
            jackd.terminate()  # the server goes; SIGKILL leaves JACK's shared-memory registry broken for later servers
            jackd.wait(5)
            lost_at = time.monotonic()
            assert _wait_for(lambda: any("audio device lost" in line for line in err), 5), err
            time.sleep(2.5)  # generation and the recording go on without a device
            if ending == "sigterm":
                player.send_signal(signal.SIGTERM)
                asked = time.monotonic()
                player.wait(10)
                assert time.monotonic() - asked < 5
            else:
                asked = time.monotonic()
                player.wait(seconds + 15)
        finally:
            if player.poll() is None:
                player.kill()
                player.wait()
        for reader in readers:
            reader.join(5)
        assert player.returncode == 0, (out, err)
        assert sum("audio device lost" in line for line in err) == 1
        assert any("NO AUDIO DEVICE" in line for line in out) or ending == "sigterm"
        assert "stopped after" in out[-1]
        recorded = sf.info(str(tmp_path / "take.wav")).duration
        # at real-time pace: the second before the loss and the time after it, less some slack
        assert recorded >= 0.5 + (asked - lost_at), (recorded, out)
        if ending == "seconds":
            assert seconds - 1 <= recorded <= seconds + 3
    finally:
        if jackd.poll() is None:
            jackd.terminate()
            jackd.wait(5)
