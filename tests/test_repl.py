"""The lmdm> prompt: the continuation rule, highlighting, the bottom line, and the prompt_toolkit
REPL end to end on a pipe (prompt_toolkit's own test input and a DummyOutput)."""

from __future__ import annotations

import threading
import time

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from lmdm_dsl import Interpreter
from lmdm_dsl.clock import Clock
from lmdm_dsl.repl import StatusLine, bar_and_beat, format_status, highlight, needs_more, run_repl, run_terminal
from tests.fakes import FakeLiveSession

ENTER, CTRL_C, CTRL_D, UP = "\r", "\x03", "\x04", "\x1b[A"


# --- the pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, more", [
    ("tempo 120", False),
    ("scene drop = {", True),
    ("scene drop = {\n  steps 4", True),
    ("scene drop = {\n  steps 4\n}", False),
    ("at next bar:", True),
    ("scene x =", True),
    ('prompt "a" \\', True),
    ('prompt "{ not a brace"', False),
    ("steps 4  # {", False),
    ("steps 4 // ends in =", False),
])
def test_an_entry_goes_on_while_braces_are_open_or_a_line_ends_in_a_continuation(text, more):
    assert needs_more(text) is more


def classes(line: str) -> list[tuple[str, str]]:
    return [(cls, text) for cls, text in highlight(line) if cls]


def test_highlighting_knows_the_grammar_words_strings_numbers_and_comments():
    assert classes('prompt "acid \\"bass\\"" * 0.7 over 4 bars  # drop') == [
        ("keyword", "prompt"), ("string", '"acid \\"bass\\""'), ("number", "0.7"), ("keyword", "over"),
        ("number", "4"), ("unit", "bars"), ("comment", "# drop"),
    ]
    assert classes("tempo 124 BPM") == [("keyword", "tempo"), ("number", "124"), ("keyword", "BPM")]
    assert classes("at next 2 beats: play drop_2") == [
        ("keyword", "at"), ("keyword", "next"), ("number", "2"), ("unit", "beats"), ("keyword", "play"), ("name", "drop_2"),
    ]
    assert classes("midi cc 7 -> cfg 0..8 // knob") == [
        ("keyword", "midi"), ("keyword", "cc"), ("number", "7"), ("keyword", "cfg"), ("number", "0"), ("number", "8"),
        ("comment", "// knob"),
    ]


def test_highlighting_takes_any_text_half_typed_or_wrong():
    assert classes('prompt "half typ') == [("keyword", "prompt"), ("string", '"half typ')]
    assert classes("tempos 12x") == [("name", "tempos"), ("number", "12"), ("name", "x")]  # not a keyword inside a word
    for line in ['prompt "a', "}}} ;; @@ -> .. é", "", "\\"]:
        assert "".join(text for _, text in highlight(line)) == line  # every character, once


def test_every_grammar_keyword_is_highlighted():
    for word in ("tempo", "prompt", "sketch", "delay", "jam", "midi", "every", "scene", "play", "record", "cancel"):
        assert classes(word) == [("keyword", word)]


def test_the_bottom_line():
    line = StatusLine(block=42, bar=11, beat=3, bpm=130.0, prompt="peak time techno", rtf=0.314,
                      buffer_seconds=1.23, ahead_seconds=1.0, underruns=0)
    assert format_status(line) == (
        'block 42 | bar 11 beat 3 | 130 BPM | prompt "peak time techno" | buffer 1.2 s (ahead 1.0 s) | rtf 0.31 | underruns 0'
    )
    offline = StatusLine(block=0, bar=1, beat=1, bpm=97.5, prompt="x" * 200, rtf=2.0)
    text = format_status(offline)
    assert text.startswith("block 0 | bar 1 beat 1 | 97.5 BPM | prompt \"xxx") and text.endswith("… | rtf 2.00")
    assert "buffer" not in text and "underruns" not in text
    assert format_status("already a line") == "already a line"


def test_bar_and_beat_count_from_one_at_the_clock_origin():
    clock = Clock(bpm=120.0, beats_per_bar=4, origin_block=3)  # 2 s bars, 0.5 s beats
    assert bar_and_beat(clock, 3, 1.0) == (1, 1)
    assert bar_and_beat(clock, 4, 1.0) == (1, 3)
    assert bar_and_beat(clock, 5, 1.0) == (2, 1)
    assert bar_and_beat(clock, 2, 1.0) == (0, 3)  # before bar 1: counting in
    assert bar_and_beat(Clock(bpm=90.0, beats_per_bar=3), 1, 3.0) == (2, 2)  # 3/4 at 90 BPM: 2 s bars, 3 s in


# --- the prompt_toolkit REPL on a pipe ------------------------------------------------------------


def terminal(keys: str, *, then=None, **options) -> tuple[FakeLiveSession, list[str]]:
    """Type ``keys`` at ``run_terminal`` (then, from another thread, ``then(session, pipe)``); what it printed."""
    session = FakeLiveSession()
    interpreter = Interpreter(session)
    printed: list[str] = []
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(keys)
        helper = None
        if then is not None:
            helper = threading.Thread(target=then, args=(session, pipe), daemon=True)
            helper.start()
        run_terminal(interpreter, printed.append, **options)
        if helper is not None:
            helper.join(5)
    interpreter.close()
    return session, printed


def test_a_multi_line_entry_a_typo_and_quit():
    session, printed = terminal(
        "scene drop = {" + ENTER + "steps 4" + ENTER + "}" + ENTER  # one entry, three lines
        + "tmepo 120" + ENTER  # a typo: one error, the loop goes on
        + "play drop" + ENTER
        + "quit" + ENTER
        + "steps 9" + ENTER,  # after quit: never read
        status=lambda: "a status line",
    )
    assert printed[0] == "scene drop defined (1 statement)"
    assert printed[1].startswith("error: line 1, column 1: unexpected 'tmepo'")
    assert printed[2:] == ["play drop", "steps 4"]
    assert session.calls_named("set_steps") == [("set_steps", 4)]


def test_block_messages_arrive_while_the_prompt_waits():
    def play_then_quit(session, pipe):
        time.sleep(0.3)
        session.generate(3)  # the generation thread: the scheduled statement fires at block 2
        deadline = time.monotonic() + 5
        while len(printed_so_far) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pipe.send_text(CTRL_D)

    printed_so_far: list[str] = []
    session = FakeLiveSession()
    interpreter = Interpreter(session)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("in 2 blocks: steps 3" + ENTER)
        helper = threading.Thread(target=play_then_quit, args=(session, pipe), daemon=True)
        helper.start()
        run_terminal(interpreter, printed_so_far.append)
        helper.join(5)
    assert printed_so_far == ["at block 2: steps 3", "[block 2] steps 3"]  # the reply says where it lands


def test_ctrl_c_clears_the_entry_and_twice_in_a_row_stops():
    session, printed = terminal(
        "scene a = {" + ENTER + "steps" + CTRL_C  # cleared, half typed
        + "steps 2" + ENTER
        + CTRL_C + CTRL_C  # twice in a row at an empty prompt: the end
        + "steps 5" + ENTER,
    )
    assert printed == ["(Ctrl-C again to stop)", "(entry cleared)", "steps 2", "(Ctrl-C again to stop)", "(entry cleared)"]
    assert session.calls_named("set_steps") == [("set_steps", 2)]


def test_the_history_file_is_read_and_kept(tmp_path):
    path = tmp_path / "history"
    path.write_text("tempo 90\n")  # one line per entry, as readline wrote it before
    _, printed = terminal(UP + ENTER + "scene s = {" + ENTER + "steps 3" + ENTER + "}" + ENTER + CTRL_D, history_file=path)
    assert printed == ["tempo 90 BPM; bar 1 starts at block 0", "scene s defined (1 statement)"]
    _, printed = terminal(UP + ENTER + CTRL_D, history_file=path)  # the multi-line entry comes back whole
    assert printed == ["scene s defined (1 statement)"]


def test_a_broken_status_or_history_file_never_ends_the_repl(tmp_path):
    def broken():
        raise RuntimeError("no stats yet")

    unwritable = tmp_path / "missing" / "history"
    _, printed = terminal("steps 2" + ENTER + CTRL_D, status=broken, history_file=unwritable)
    assert printed == ["steps 2"]


def test_without_a_terminal_run_repl_keeps_the_plain_loop():
    session = FakeLiveSession()
    lines = iter(["scene drop = {", "steps 4", "}", "play drop"])
    prompts: list[str] = []
    printed: list[str] = []

    def input_fn(prompt: str) -> str:
        prompts.append(prompt)
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    run_repl(Interpreter(session), input_fn, printed.append, status=lambda: "unused")
    assert prompts == ["lmdm> ", "  ... ", "  ... ", "lmdm> ", "lmdm> "]
    assert printed == ["scene drop defined (1 statement)", "play drop", "steps 4"]


def test_lmdm_live_builds_the_bottom_line_from_the_session_the_clock_and_the_engine():
    from types import SimpleNamespace

    from lmdm import stage

    session = FakeLiveSession(block_seconds=1.0)
    interpreter = Interpreter(session)
    interpreter.run("tempo 120")  # bar 1 at block 0; 2 s bars
    session.generate(3)
    engine = SimpleNamespace(stats=lambda: SimpleNamespace(buffer_seconds=0.75, underruns=2),
                             config=SimpleNamespace(ahead_blocks=1.5))
    assert format_status(stage.repl_status(stage.Stage(interpreter, engine))) == (
        'block 3 | bar 2 beat 3 | 120 BPM | prompt "" | buffer 0.8 s (ahead 1.5 s) | rtf 0.25 | underruns 2'
    )
    assert "buffer" not in format_status(stage.repl_status(stage.Stage(interpreter)))
