"""The livecoding language: grammar, values, mini-notation, musical time, interpreter, REPL.

Runs against ``FakeLiveSession`` (tests/fakes.py), which implements the LiveSession contract.
"""

from __future__ import annotations

import os
import threading
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmdm_dsl import DSLError, DelaySpec, Interpreter, parse, parse_pattern, program_source, render
from lmdm_dsl import values as v
from lmdm_dsl.clock import Clock, after_at, block_at_or_after, boundary_at, ramp_frames
from lmdm_dsl.mini import Event, midi_of
from lmdm_dsl.repl import code_part, needs_more, run_repl, watch_file

from tests.fakes import FakeLiveSession
from tests.strategies import mini_source, simple_statements, statements

SETTINGS = settings(max_examples=int(os.environ.get("LMDM_DSL_EXAMPLES", "100")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


class FakeRecorder:
    def __init__(self):
        self.calls: list[tuple] = []

    def start(self, path: str) -> None:
        self.calls.append(("start", path))

    def stop(self) -> None:
        self.calls.append(("stop",))


def make(**session_options) -> tuple[FakeLiveSession, Interpreter]:
    session = FakeLiveSession(**session_options)
    return session, Interpreter(session, recorder=FakeRecorder())


def errors(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("error:")]


def fired_before(session: FakeLiveSession, call: tuple) -> int:
    """The index of the block generated right after ``call`` was made."""
    position = session.calls.index(call)
    return next(c[1] for c in session.calls[position:] if c[0] == "block")


# === grammar: every statement parses to a value and prints back ===================================

EXAMPLES = [
    "tempo 124",
    "tempo 96.5",
    'prompt "dub techno, deep chords"',
    'prompt "acid bass" * 0.7 + "ambient pads" * 0.3',
    'prompt "minimal house" over 4 bars',
    'prompt "glass" over 3 blocks',
    'prompt "a \\"quoted\\" word" * 2 + "back\\\\slash"',
    'sketch melody "c4 e4 g4 ~ <a4 b4>"',
    'sketch melody "[c4 e4]*2 g4@2 a4!2 60"',
    'sketch rhythm "x ~ x x ~ x ~ ~"',
    'sketch loudness "0.2 <0.5 1> ~"',
    "sketch loudness ramp 0.2 1.0 over 8 bars",
    "sketch off",
    "sketch melody off",
    "sketch rhythm off",
    "sketch loudness off",
    'delay 1 bar strength 0.6 feedback 0.3 mix 0.5 prompt <"glass bells" "warm strings">',
    "delay 3 beats",
    "delay 2 blocks mix 0.2",
    'delay prompt "echoes"',
    "delay",
    "delay off",
    "steps 6",
    "cfg 1.5",
    "seed 42",
    "regime block_causal",
    "regime encdec",
    'record "set.flac"',
    "record stop",
    "reset",
    "status",
    "cancel",
    "at next bar: tempo 130",
    "at next 4 bars: { tempo 130; prompt \"x\" }",
    "at next beat: steps 4",
    "in 2 blocks: cfg 3",
    "in 1 bar: { }",
    "every 4 bars: { prompt \"a\"; in 2 bars: prompt \"b\" }",
    "scene drop = { tempo 128; prompt \"peak\" over 2 bars }",
    "scene calm = steps 4",
    "play drop",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_every_statement_round_trips(text):
    program = parse(text)
    assert len(program) == 1
    assert parse(program_source(program)) == program


def test_values_hold_what_was_written():
    assert parse("tempo 124") == (v.Tempo(124),)
    prompt, = parse('prompt "acid bass" * 0.7 + "ambient pads" * 0.3 over 4 bars')
    assert prompt.session_prompt == (("acid bass", 0.7), ("ambient pads", 0.3))
    assert prompt.over == v.Span(4, "bar")
    assert parse('prompt "x"')[0].session_prompt == "x"
    delay, = parse('delay 1 bar strength 0.6 prompt <"glass bells" "warm strings">')
    assert delay == v.Delay(v.Span(1, "bar"), strength=0.6, prompts=("glass bells", "warm strings"))
    assert parse("delay") == (v.Delay(),)
    assert parse("sketch off") == (v.SketchOff(None),)
    every, = parse("every 4 bars: { steps 4; cfg 2 }")
    assert every == v.Every(v.Span(4, "bar"), (v.Steps(4), v.Cfg(2)))
    assert parse("at next bar: status") == (v.AtNext(v.Span(1, "bar"), (v.Status(),)),)


def test_comments_separators_blocks_and_continuations():
    text = """
    # a comment line
    tempo 124   // trailing comment
    steps 6; cfg 1.5
    scene drop = {
        prompt "acid bass" * 0.7 \\
             + "ambient pads" * 0.3   # continued line
        at next bar:
            tempo 130
    }
    play drop
    """
    program = parse(text)
    assert [type(s) for s in program] == [v.Tempo, v.Steps, v.Cfg, v.SceneDef, v.Play]
    scene = program[3]
    assert scene.body == (
        v.Prompt((v.PromptTerm("acid bass", 0.7), v.PromptTerm("ambient pads", 0.3))),
        v.AtNext(v.Span(1, "bar"), (v.Tempo(130),)),
    )
    assert parse("") == () and parse("# nothing\n\n// at all\n") == ()


def test_keywords_can_name_scenes_and_strings_keep_comment_marks():
    assert parse("scene tempo = reset\nplay tempo")[1] == v.Play("tempo")
    assert parse('prompt "http://x #1"')[0].terms[0].text == "http://x #1"


# === errors: one line with line/column, then the source line and a caret ========================


def error_of(text: str) -> DSLError:
    with pytest.raises(DSLError) as caught:
        parse(text)
    return caught.value


def test_value_error_points_at_the_value():
    error = error_of("steps 6\ntempo 500")
    assert (error.line, error.column) == (2, 7)
    assert "tempo must be between 20 and 400" in error.message
    assert str(error) == (
        "line 2, column 7: tempo must be between 20 and 400 BPM, got 500\n"
        "  tempo 500\n"
        "        ^"
    )


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        ("tempo 10", 1, 7, "tempo must be between 20 and 400"),
        ("steps 0", 1, 7, "steps must be between 1 and 64"),
        ("steps 65", 1, 7, "steps must be between 1 and 64"),
        ("steps 2.5", 1, 7, "whole number"),
        ("cfg 21", 1, 5, "cfg must be between 0 and 20"),
        ("seed -1", 1, 6, "seed must be between"),
        ('prompt "a" * -0.5 + "b"', 1, 14, "weight must be between 0"),
        ('prompt "a" * 0 + "b" * 0', 1, 1, "add up to zero"),
        ('prompt "   "', 1, 8, "cannot be empty"),
        ("delay 1 bar strength 1.5", 1, 22, "strength must be between 0 and 1"),
        ("delay feedback -0.1", 1, 16, "feedback must be between 0 and 1"),
        ("delay 0 beats", 1, 7, "more than zero"),
        ("delay mix 0.1 mix 0.2", 1, 19, "given twice"),
        ("sketch loudness ramp 0.2 1.5 over 8 bars", 1, 26, "loudness must be between 0 and 1"),
        ("every 0 bars: reset", 1, 7, "more than zero"),
        ("regime turbo", 1, 8, "regime must be one of block_causal, encdec, naive"),
        ('record "set.txt"', 1, 8, "only writes audio files"),
        ('record ".flac"', 1, 8, "only writes audio files"),
        ("tempo", 1, 6, "expected a number"),
        ("tempo fast", 1, 7, "unexpected 'fast'; expected a number"),
        ("tempoo 120", 1, 1, "unknown word 'tempoo' (did you mean 'tempo'?)"),
        ('prompt "a" ovr 4 bars', 1, 12, "unexpected 'ovr'; expected '*', '+', ';', 'over', end of"),
        ('prompt "unclosed', 1, 8, "never closed"),
        ("steps 4\n  at next bar tempo 120", 2, 15, "expected ':'"),
        ("scene x = {\n tempo 120\n", 2, 11, "expected"),
        ("$", 1, 1, "expected a statement"),
        ('sketch melody "c4 x e4"', 1, 19, "x has no meaning in a melody sketch"),
        ('sketch rhythm "x ~ c4"', 1, 20, "note c4 has no meaning in a rhythm sketch"),
        ('sketch melody "c4 [e4 g4"', 1, 25, "expected ']'"),
        ('sketch melody "<c4@2 e4>"', 1, 17, "@ has no meaning inside < >"),
        ('sketch melody "c4*0"', 1, 19, "whole number from 1 to 64"),
        ('sketch melody ""', 1, 16, "pattern is empty"),
        ('sketch loudness "0.5 2"', 1, 22, "2 has no meaning in a loudness sketch"),
    ],
)
def test_errors_have_position_message_and_caret(text, line, column, words):
    error = error_of(text)
    assert (error.line, error.column) == (line, column), str(error)
    assert words in error.message
    headline, source_line, caret = str(error).split("\n")
    assert headline == f"line {line}, column {column}: {error.message}"
    assert source_line == "  " + text.split("\n")[line - 1]
    assert caret == "  " + " " * (column - 1) + "^"


def test_a_bad_statement_rejects_the_whole_text():
    session, interpreter = make()
    messages = interpreter.run("steps 4\ntempo 999\ncfg 2")
    assert len(messages) == 1 and messages[0].startswith("error: line 2, column 7:")
    assert session.calls == []


# === mini-notation: patterns are functions of the cycle =====================================


def values_of(pattern, cycle):
    return [e.value for e in pattern.query(cycle)]


def test_sequence_shares_the_cycle_and_rests_leave_gaps():
    pattern = parse_pattern("c4 e4 g4 ~", "melody")
    assert pattern.query(0) == [
        Event(Fraction(0), Fraction(1, 4), 60),
        Event(Fraction(1, 4), Fraction(1, 4), 64),
        Event(Fraction(1, 2), Fraction(1, 4), 67),
    ]
    assert pattern.query(5) == pattern.query(0)


def test_alternation_takes_one_entry_per_cycle():
    pattern = parse_pattern("c4 e4 g4 ~ <a4 b4>", "melody")
    assert [values_of(pattern, c)[-1] for c in range(4)] == [69, 71, 69, 71]
    assert pattern.period == 2
    nested = parse_pattern("<a4 <b4 c5>>", "melody")
    assert [values_of(nested, c) for c in range(4)] == [[69], [71], [69], [72]]
    assert nested.period == 4


def test_subdivision_repeat_replicate_and_weight():
    pattern = parse_pattern("c4 [e4 g4]", "melody")
    assert [(e.start, e.duration) for e in pattern.query(0)] == [
        (Fraction(0), Fraction(1, 2)), (Fraction(1, 2), Fraction(1, 4)), (Fraction(3, 4), Fraction(1, 4))
    ]
    fast = parse_pattern("x*4 ~", "rhythm")
    assert [e.start for e in fast.query(0)] == [Fraction(k, 8) for k in range(4)]
    assert parse_pattern("a4!3 b4", "melody").query(0) == parse_pattern("a4 a4 a4 b4", "melody").query(0)
    wide = parse_pattern("c4@3 e4", "melody")
    assert [e.duration for e in wide.query(0)] == [Fraction(3, 4), Fraction(1, 4)]
    alternating = parse_pattern("<c4 e4>*2", "melody")
    assert values_of(alternating, 0) == [60, 64] and values_of(alternating, 1) == [60, 64]
    inside = parse_pattern("c4 [<a4 b4> c5]", "melody")
    assert values_of(inside, 0) == [60, 69, 72] and values_of(inside, 1) == [60, 71, 72]


def test_note_names_and_numbers():
    assert [midi_of(n) for n in ("c4", "a4", "c#4", "cs4", "eb3", "b", "c0")] == [60, 69, 61, 61, 51, 71, 12]
    assert values_of(parse_pattern("60 C4 - 72", "melody"), 0) == [60, 60, 72]
    assert values_of(parse_pattern("0 0.5 1 .25", "loudness"), 0) == [0, 0.5, 1, 0.25]


@SETTINGS
@given(mini_source(), st.integers(0, 50))
def test_patterns_repeat_with_their_period_and_stay_inside_the_cycle(source, cycle):
    pattern = parse_pattern(source, "melody")
    events = pattern.query(cycle)
    assert events == pattern.query(cycle + pattern.period)
    for event in events:
        assert 0 <= event.start < event.end <= 1
    for first, second in zip(events, events[1:]):
        assert first.end <= second.start
    assert parse_pattern(source, "melody") == pattern


def test_render_melody_rhythm_and_offsets():
    melody = parse_pattern("c4 ~ e4 g4", "melody")
    frames = render(melody, frames_per_cycle=8, n_frames=8)
    assert frames.tolist() == [60, 60, 0, 0, 64, 64, 67, 67]
    assert render(melody, 8, 8, start_cycle=0.5).tolist() == [64, 64, 67, 67, 60, 60, 0, 0]
    rhythm = parse_pattern("x ~ x x", "rhythm")
    assert render(rhythm, 8, 16).tolist() == [1, 0, 0, 0, 1, 0, 1, 0] * 2
    alternating = parse_pattern("<c4 e4>", "melody")
    assert render(alternating, 2, 6).tolist() == [60, 60, 64, 64, 60, 60]
    short = parse_pattern("c4*8", "melody")  # notes shorter than a frame still claim one
    assert render(short, 4, 4).tolist() == [60] * 4
    uneven = render(parse_pattern("c4 e4 g4", "melody"), 12.5, 25)
    assert uneven.dtype == np.float32 and uneven.shape == (25,)
    assert uneven[:5].tolist() == [60] * 5 and uneven[5] == 64 and uneven[12] == 67 and uneven[13] == 60


# === musical time =============================================================================


def test_clock_grid_functions():
    clock = Clock(bpm=120)
    bar, blocks = v.Span(1, "bar"), 2.0
    assert clock.bar_seconds == 2.0
    assert block_at_or_after(boundary_at(clock, bar, 3, blocks)) == 3  # on a bar line: that block
    assert block_at_or_after(boundary_at(clock, bar, 3, blocks, strictly_after=True)) == 4
    slow = Clock(bpm=124, origin_block=0)  # bars of 1.935 s
    assert block_at_or_after(boundary_at(slow, v.Span(4, "bar"), 3, 2.0)) == 4  # 7.74 s -> block 4 (8 s)
    assert block_at_or_after(boundary_at(slow, v.Span(1, "beat"), 1, 2.0)) == 2  # 2.42 s
    assert block_at_or_after(boundary_at(Clock(), v.Span(4, "block"), 5, 2.0)) == 8
    assert block_at_or_after(after_at(slow, v.Span(2, "block"), 3, 2.0)) == 5
    assert block_at_or_after(after_at(slow, v.Span(1, "bar"), 3, 2.0)) == 4
    assert slow.blocks(v.Span(4, "bar"), 2.0) == 4
    assert Clock(bpm=120).blocks(v.Span(4, "bar"), 2.0) == 4
    moved = Clock(bpm=120, origin_block=3)
    assert block_at_or_after(boundary_at(moved, v.Span(2, "bar"), 4, 2.0)) == 5
    assert moved.cycle_at(5, 2.0) == 2.0


def test_ramp_frames():
    frames = ramp_frames(0.0, 1.0, total_seconds=4.0, elapsed_seconds=2.0, n_frames=4, frame_rate=2.0)
    assert frames.tolist() == [0.5, 0.625, 0.75, 0.875]
    assert ramp_frames(0.2, 1.0, 4.0, 10.0, 3, 2.0).tolist() == pytest.approx([1.0] * 3)


def test_at_next_bar_fires_at_the_first_block_on_or_after_the_bar_line():
    session, interpreter = make()
    interpreter.run("tempo 124")  # typed before block 0: bars of 1.935 s from 0 s
    session.generate(3)  # blocks 0-2 done; "now" is block 3 (6 s)
    assert interpreter.run('at next bar: prompt "acid"') == ['at block 4: prompt "acid"']
    session.generate(3)
    assert fired_before(session, ("set_prompt", "acid", 0)) == 4
    assert interpreter.messages() == ['[block 4] prompt "acid"']


def test_in_blocks_and_in_bars():
    session, interpreter = make(block_seconds=1.5)
    interpreter.run("tempo 90")  # bars of 2.667 s
    session.generate(2)  # now: block 2 at 3 s
    interpreter.run("in 2 blocks: steps 5\nin 1 bar: steps 6\nat next 2 bars: steps 7")
    session.generate(6)
    assert fired_before(session, ("set_steps", 5)) == 4
    assert fired_before(session, ("set_steps", 6)) == 4  # 3 s + 2.667 s = 5.667 s -> block 4 (6 s)
    assert fired_before(session, ("set_steps", 7)) == 4  # the 2-bar line at 5.333 s


def test_every_repeats_on_the_bar_grid_and_follows_tempo_changes():
    session, interpreter = make()
    interpreter.run("tempo 124")
    session.generate(3)
    interpreter.run("every 4 bars: cfg 2")  # 4 bars = 7.74 s: 7.74, 15.48, 23.23 s -> blocks 4, 8, 12
    session.generate(11)
    assert [i for i, c in enumerate(session.calls) if c[0] == "set_cfg"]
    fired = [fired_before_index(session, i) for i, c in enumerate(session.calls) if c == ("set_cfg", 2.0)]
    assert fired == [4, 8, 12]
    interpreter.run("tempo 120")  # now block 14: bars of 2 s counted from block 14
    session.generate(10)
    fired = [fired_before_index(session, i) for i, c in enumerate(session.calls) if c == ("set_cfg", 2.0)]
    assert fired == [4, 8, 12, 14, 18, 22]


def fired_before_index(session, position):
    return next(c[1] for c in session.calls[position:] if c[0] == "block")


def test_every_inside_a_fired_body_does_not_fire_twice():
    session, interpreter = make()
    interpreter.run("every 2 bars: tempo 120")
    session.generate(6)
    assert [m for m in interpreter.messages() if "tempo" in m] == [
        "[block 0] tempo 120 BPM; bar 1 starts at block 0",
        "[block 2] tempo 120 BPM; bar 1 starts at block 2",
        "[block 4] tempo 120 BPM; bar 1 starts at block 4",
    ]


def test_prompt_over_bars_becomes_over_blocks():
    session, interpreter = make()
    interpreter.run("tempo 124")
    interpreter.run('prompt "minimal house" over 4 bars')  # 7.74 s / 2 s -> 4 blocks
    interpreter.run('prompt "a" * 0.7 + "b" * 0.3 over 3 blocks')
    interpreter.run('prompt "c" over 1 beat')
    assert session.calls_named("set_prompt") == [
        ("set_prompt", "minimal house", 4),
        ("set_prompt", (("a", 0.7), ("b", 0.3)), 3),
        ("set_prompt", "c", 1),
    ]


def test_reset_restarting_the_block_count_keeps_musical_time():
    session, interpreter = make(restart_count_on_reset=True)
    session.generate(10)
    interpreter.run("in 3 blocks: steps 5")  # now is block 10 -> block 13, i.e. 3 blocks on
    interpreter.run("reset")
    session.generate(5)
    assert fired_before(session, ("set_steps", 5)) == 3
    assert len(session.calls_named("reset")) == 1


def test_statements_typed_during_a_block_apply_from_the_next():
    session, interpreter = make()
    replies = []
    session.add_hook(lambda s, i: replies.append(interpreter.run("at next block: steps 3")) if i == 2 else None)
    session.generate(4)
    assert replies == [["at block 3: steps 3"]]
    assert fired_before(session, ("set_steps", 3)) == 3


def test_cancel_drops_the_schedule_and_identical_every_runs_once():
    session, interpreter = make()
    interpreter.run("every 1 bar: steps 3")
    assert interpreter.run("every 1 bar: steps 3") == ["already running: every 1 bar: steps 3"]
    interpreter.run("in 2 blocks: steps 4")
    assert len(interpreter.scheduled) == 2
    assert interpreter.run("cancel") == ["cancelled 2 scheduled statements"]
    session.generate(4)
    assert session.calls_named("set_steps") == []


# === scenes ===================================================================================


def test_scenes_are_defined_then_played_now_or_later():
    session, interpreter = make()
    assert interpreter.run("scene drop = {\n  tempo 128\n  prompt \"peak\" over 2 bars\n}") == [
        "scene drop defined (2 statements)"
    ]
    assert session.calls == []
    assert interpreter.run("play drop") == [
        "play drop", "tempo 128 BPM; bar 1 starts at block 0", 'prompt "peak" over 2 bars (2 blocks)'
    ]
    interpreter.run("scene calm = steps 4")
    interpreter.run("in 2 blocks: play calm")
    session.generate(3)
    assert fired_before(session, ("set_steps", 4)) == 2
    assert interpreter.run("scene calm = steps 5\nplay calm")[-1] == "steps 5"


def test_scene_errors():
    session, interpreter = make()
    interpreter.run("scene drop = tempo 128")
    assert interpreter.run("play drp") == ["error: no scene named 'drp' (did you mean 'drop'?)"]
    interpreter.run("scene a = play b\nscene b = { steps 2; play a }")
    messages = interpreter.run("play a")
    assert errors(messages) == ["error: scene 'a' plays itself (via a -> b -> a)"]
    assert session.calls_named("set_steps") == [("set_steps", 2)]


# === interpreter: features, recording, status, errors that never stop the music ===============


def test_sketch_and_delay_when_the_model_lacks_them():
    session, interpreter = make(features=())
    for text in ('sketch melody "c4 e4"', "sketch loudness ramp 0 1 over 2 bars", "sketch off"):
        assert interpreter.run(text) == ["error: sketch is not available in this model"]
    for text in ("delay 1 bar strength 0.6", "delay off"):
        assert interpreter.run(text) == ["error: delay is not available in this model"]
    session.generate(2)
    assert [c[0] for c in session.calls] == ["block", "block"]


def test_sketches_are_rendered_for_every_block():
    session, interpreter = make()  # 120 BPM, 2 s blocks = 1 bar, 25 frames/s = 50 frames per block
    assert interpreter.run('sketch melody "c4 ~ <e4 g4>"') == ['sketch melody "c4 ~ <e4 g4>" (repeats every 2 bars)']
    interpreter.run('sketch rhythm "x ~ x x"')
    session.generate(2)
    sketches = session.calls_named("set_sketch")
    melody = [frames for _, kind, frames in sketches if kind == "melody"]
    assert len(melody) == 2 and melody[0].shape == (50,)
    assert melody[0][0] == 60 and melody[0][20] == 0 and melody[0][40] == 64 and melody[1][40] == 67
    rhythm = [frames for _, kind, frames in sketches if kind == "rhythm"][0]
    assert np.flatnonzero(rhythm).tolist() == [0, 25, 37]
    interpreter.run("sketch off")
    assert session.calls[-3:] == [("set_sketch", k, None) for k in ("melody", "rhythm", "loudness")]
    session.generate(1)
    assert session.calls[-1] == ("block", 2)


def test_loudness_ramp_runs_from_now_and_holds():
    session, interpreter = make(frame_rate=2.0)  # 4 frames per 2 s block
    interpreter.run("sketch loudness ramp 0 1 over 2 blocks")
    session.generate(3)
    ramps = [frames.tolist() for _, _, frames in session.calls_named("set_sketch")]
    assert ramps == [[0, 0.125, 0.25, 0.375], [0.5, 0.625, 0.75, 0.875], [1, 1, 1, 1]]


def test_delay_spec_follows_the_tempo():
    session, interpreter = make()
    interpreter.run('delay 1 bar strength 0.6 feedback 0.3 mix 0.5 prompt <"glass bells" "warm strings">')
    interpreter.run("tempo 60")
    interpreter.run("delay 2 blocks")
    interpreter.run("delay off")
    assert [c[1] for c in session.calls_named("set_delay")] == [
        DelaySpec(1.0, 2.0, 0.6, 0.3, 0.5, ("glass bells", "warm strings")),
        DelaySpec(2.0, 4.0, 0.6, 0.3, 0.5, ("glass bells", "warm strings")),
        DelaySpec(2.0, 4.0, 0.6, 0.3, 0.5, ("glass bells", "warm strings")),  # only the time changed
        None,
    ]


def test_a_delay_statement_changes_only_the_options_it_gives():
    session, interpreter = make()  # 120 BPM and 2 s blocks: a beat is a quarter of a block
    interpreter.run('delay 3 beats feedback 0.4 mix 0.2 prompt "tape echo"')
    assert interpreter.run("delay strength 0.6") == [
        'delay 3 beats strength 0.6 feedback 0.4 mix 0.2 prompt "tape echo" (0.75 blocks)'
    ]
    interpreter.run("delay 2 blocks")
    interpreter.run('delay prompt <"a" "b">')
    interpreter.run("delay")  # nothing given: the delay stays as it is
    interpreter.run("delay 1 bar; delay mix 0.7; tempo 60")  # the re-timed delay keeps the new mix
    assert [c[1] for c in session.calls_named("set_delay")] == [
        DelaySpec(0.75, 1.5, 0.5, 0.4, 0.2, ("tape echo",)),
        DelaySpec(0.75, 1.5, 0.6, 0.4, 0.2, ("tape echo",)),
        DelaySpec(2.0, 4.0, 0.6, 0.4, 0.2, ("tape echo",)),
        DelaySpec(2.0, 4.0, 0.6, 0.4, 0.2, ("a", "b")),
        DelaySpec(2.0, 4.0, 0.6, 0.4, 0.2, ("a", "b")),
        DelaySpec(1.0, 2.0, 0.6, 0.4, 0.2, ("a", "b")),
        DelaySpec(1.0, 2.0, 0.6, 0.4, 0.7, ("a", "b")),
        DelaySpec(2.0, 4.0, 0.6, 0.4, 0.7, ("a", "b")),
    ]


def test_after_delay_off_left_out_options_take_their_defaults():
    session, interpreter = make()
    interpreter.run('delay 2 blocks strength 0.9 feedback 0.8 mix 0.1 prompt "x"; delay off')
    assert interpreter.run("delay strength 0.6") == ["delay 1 bar strength 0.6 feedback 0.3 mix 0.5 (1 blocks)"]
    assert session.calls_named("set_delay")[-1] == ("set_delay", DelaySpec(1.0, 2.0, 0.6, 0.3, 0.5, ()))


def test_a_partial_delay_is_a_value_that_names_only_what_was_written():
    partial, = parse("delay strength 0.6")
    assert partial == v.Delay(strength=0.6) and partial.given() == {"strength": 0.6}
    assert partial.to_source() == "delay strength 0.6"
    assert partial.updating(None) == v.Delay(v.Span(1, "bar"), 0.6, 0.3, 0.5)
    on = v.Delay(v.Span(3, "beat"), 0.2, 0.4, 0.9, ("a", "b"))
    assert partial.updating(on) == v.Delay(v.Span(3, "beat"), 0.6, 0.4, 0.9, ("a", "b"))
    assert v.Delay(prompts=[]) == v.Delay()  # an empty prompt list is no prompt given
    assert parse("delay feedback 0 strength 1")[0].to_source() == "delay strength 1 feedback 0"


def test_the_osc_delay_strength_message_keeps_the_other_delay_settings():
    from lmdm.osc import OscServer

    session, interpreter = make()
    interpreter.run("delay 2 blocks feedback 0.4 mix 0.25")
    replies = OscServer(interpreter).handle_message("/lmdm/delay/strength", [0.6])
    assert replies == [("/lmdm/reply", "delay 2 blocks strength 0.6 feedback 0.4 mix 0.25 (2 blocks)")]
    assert session.calls_named("set_delay")[-1] == ("set_delay", DelaySpec(2.0, 4.0, 0.6, 0.4, 0.25, ()))


def test_record(tmp_path):
    session, interpreter = make()
    path = str(tmp_path / "set.flac")
    assert interpreter.run(f'record "{path}"') == [f"recording to {path}"]
    assert interpreter.run("record stop") == ["recording stopped"]
    assert interpreter.recorder.calls == [("start", path), ("stop",)]
    (tmp_path / "old.wav").write_bytes(b"")
    assert interpreter.run(f'record "{tmp_path / "old.wav"}"') == [
        f"error: {tmp_path / 'old.wav'} already exists; record to a new file"
    ]
    nowhere = Interpreter(FakeLiveSession())
    assert nowhere.run('record "x.wav"') == ["error: recording is not available here"]
    assert nowhere.run("record stop") == ["error: recording is not available here"]


def test_status_line():
    session, interpreter = make()
    interpreter.run('tempo 124\nprompt "dub techno"\nsteps 6\ncfg 1.5\nregime encdec\nscene drop = reset')
    session.generate(3)
    assert interpreter.run("status") == [
        'status: block 3 | rtf 0.25 | prompt "dub techno" | tempo 124 BPM (bar 4) | regime encdec'
        " | steps 6 | cfg 1.5 | queued 0 | scenes drop"
    ]


def test_status_shows_a_prompt_mix_as_the_language_writes_it():
    session, interpreter = make()
    interpreter.run('prompt "minimal techno" * 0.6 + "say \\"hi\\"" * 0.4')
    session.generate(1)
    (line,) = interpreter.run("status")
    assert '| prompt "minimal techno" * 0.6 + "say \\"hi\\"" * 0.4 |' in line
    interpreter.run('prompt "a \\"quoted\\" word"')
    session.generate(1)
    assert '| prompt "a \\"quoted\\" word" |' in interpreter.run("status")[0]


def test_session_errors_become_one_error_line_each():
    class Picky(FakeLiveSession):
        def set_seed(self, seed):
            raise ValueError("this model has no\nseed")

    session = Picky()
    interpreter = Interpreter(session)
    assert interpreter.run("seed 3") == ["error: this model has no seed"]
    messages = interpreter.run("steps 4\nseed 3\ncfg 2")
    assert messages == ["steps 4", "error: line 2: this model has no seed", "cfg 2"]
    interpreter.run("in 1 block: seed 4")
    session.generate(2)  # the error surfaces as a message; the generation thread carries on
    assert interpreter.messages() == ["error: [block 1] this model has no seed"]


def test_hook_never_raises():
    class Broken(FakeLiveSession):
        def set_sketch(self, kind, frames):
            raise RuntimeError("boom")

    session = Broken()
    interpreter = Interpreter(session)
    interpreter.run('sketch melody "c4"')
    session.generate(3)  # reported once, then that sketch is off: no error on every block
    assert interpreter.messages() == ["error: [block 0] sketch melody: boom; that sketch is off"]


def test_run_and_hook_on_two_threads():
    session, interpreter = make()
    done = threading.Event()
    failures = []

    def generate():
        try:
            while not done.is_set():
                session.generate_block()
        except Exception as error:  # pragma: no cover - would fail the test
            failures.append(error)

    thread = threading.Thread(target=generate)
    thread.start()
    try:
        for k in range(150):
            interpreter.run(["tempo 130", "every 1 beat: steps 3", "cancel", 'prompt "x" over 1 bar',
                             "in 1 block: cfg 2", 'sketch rhythm "x*4"', "status"][k % 7])
    finally:
        done.set()
        thread.join(timeout=10)
    assert not thread.is_alive() and not failures
    assert not errors(interpreter.messages())


def test_close_removes_the_hook():
    session, interpreter = make()
    interpreter.run("in 0 blocks: steps 3")
    interpreter.close()
    session.generate(2)
    assert session.calls_named("set_steps") == []


# === Hypothesis: generated statements =========================================================



@SETTINGS
@given(st.lists(statements, min_size=1, max_size=5).map(tuple))
def test_generated_programs_round_trip(program):
    assert parse(program_source(program)) == program


def contains_reset(statement) -> bool:
    if isinstance(statement, v.Reset):
        return True
    return any(contains_reset(s) for s in getattr(statement, "body", ()))


@SETTINGS
@given(st.lists(statements, min_size=1, max_size=6), st.integers(0, 6))
def test_generated_statements_through_the_interpreter(program, blocks):
    session = FakeLiveSession(block_seconds=1.5, features=("sketch",))
    interpreter = Interpreter(session, recorder=FakeRecorder())
    for statement in program:
        messages = interpreter.run(statement.to_source())
        assert all(isinstance(m, str) for m in messages)
        if not isinstance(statement, v.Play):  # a scene may hold several failing statements
            assert len(errors(messages)) <= 1
        session.generate(blocks // 3)
    session.generate(blocks)
    interpreter.messages()
    if not any(contains_reset(s) for s in program):
        assert session.calls_named("reset") == []
    top_level_resets = sum(isinstance(s, v.Reset) for s in program)
    if all(isinstance(s, (v.Reset, v.Tempo, v.Steps, v.Prompt, v.Status)) for s in program):
        assert len(session.calls_named("reset")) == top_level_resets


@SETTINGS
@given(simple_statements)
def test_only_reset_calls_reset(statement):
    session, interpreter = make()
    interpreter.run(statement.to_source())
    session.generate(2)
    assert bool(session.calls_named("reset")) == isinstance(statement, v.Reset)


BREAKERS = list('{}[]<>"#/\\:;*+=~@!') + ["\n", " ", "-1", "999", "0", "x", "bars", "over", "tempo", "prompt"]


@SETTINGS
@given(st.lists(statements, min_size=1, max_size=3), st.data())
def test_broken_text_gives_exactly_one_error(program, data):
    text = program_source(program)
    cut = data.draw(st.integers(0, len(text)))
    kind = data.draw(st.sampled_from(["truncate", "delete", "insert"]))
    if kind == "truncate":
        broken = text[:cut]
    elif kind == "delete":
        broken = text[:cut] + text[cut + data.draw(st.integers(1, 6)):]
    else:
        broken = text[:cut] + data.draw(st.sampled_from(BREAKERS)) + text[cut:]
    session, interpreter = make(features=())
    try:
        parse(broken)
    except DSLError as error:
        assert interpreter.run(broken) == [f"error: {error}"]
        assert session.calls == []
        assert error.line >= 1 and error.column >= 1
        assert str(error).count("\n") == 2 and str(error).endswith("^")
    else:
        interpreter.run(broken)  # still fine: never raises


@SETTINGS
@given(
    st.sampled_from(["tempo", "steps", "cfg", "seed", "delay strength", "delay mix", "delay feedback",
                     "sketch loudness ramp 0.5"]),
    st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-10**30, 10**30)),
)
def test_out_of_range_values_are_one_error(keyword, number):
    text = f"{keyword} {v.num(number)}" + (" over 2 bars" if keyword.startswith("sketch") else "")
    session, interpreter = make()
    messages = interpreter.run(text)
    assert len(messages) == 1
    if messages[0].startswith("error:"):
        assert messages[0].startswith("error: line 1, column ")
    session.generate(1)


@SETTINGS
@given(st.text(max_size=40))
def test_any_text_never_raises(text):
    session, interpreter = make()
    messages = interpreter.run(text)
    assert all(isinstance(m, str) for m in messages)
    try:
        parse(text)
    except DSLError:
        assert len(messages) == 1 and messages[0].startswith("error: ")


# === REPL and file watching ===================================================================


def test_code_part_and_needs_more():
    assert code_part('prompt "{#}" # { comment') == 'prompt "" '
    assert code_part("tempo 120 // {") == "tempo 120 "
    assert needs_more("scene drop = {")
    assert needs_more("scene drop = {\n  tempo 120") and not needs_more("scene drop = {\n  tempo 120\n}")
    assert needs_more('prompt "a" * 0.5 \\')
    assert needs_more("at next bar:") and needs_more("scene x =")
    assert not needs_more('prompt "{"') and not needs_more("tempo 120  # :")


def feed(lines):
    remaining = list(lines)

    def input_fn(prompt):
        prompts.append(prompt)
        if not remaining:
            raise EOFError
        line = remaining.pop(0)
        if line is KeyboardInterrupt:
            raise KeyboardInterrupt
        return line

    prompts: list[str] = []
    return input_fn, prompts


def test_repl_reads_multi_line_entries():
    session, interpreter = make()
    printed = []
    input_fn, prompts = feed([
        "tempo 124",
        "scene drop = {",
        "  steps 4",
        "}",
        'prompt "a" * 0.5 \\',
        '  + "b" * 0.5',
        "at next bar:",
        "  cfg 2",
        "tempo 999",
        "scene half = {",
        KeyboardInterrupt,
        "",
        "quit",
        "status",
    ])
    run_repl(interpreter, input_fn=input_fn, print_fn=printed.append)
    assert printed == [
        "tempo 124 BPM; bar 1 starts at block 0",
        "scene drop defined (1 statement)",
        'prompt "a" * 0.5 + "b" * 0.5',
        "at block 0: cfg 2",
        "error: line 1, column 7: tempo must be between 20 and 400 BPM, got 999\n  tempo 999\n        ^",
        "(entry cleared)",
    ]
    assert prompts[:4] == ["lmdm> ", "lmdm> ", "  ... ", "  ... "]
    assert session.calls_named("set_prompt") == [("set_prompt", (("a", 0.5), ("b", 0.5)), 0)]


def test_repl_prints_what_fired_and_ends_at_eof():
    session, interpreter = make()
    printed = []

    def input_fn(prompt):
        if not inputs:
            raise EOFError
        session.generate(2)
        return inputs.pop(0)

    inputs = ["in 1 block: steps 3", "status"]
    run_repl(interpreter, input_fn=input_fn, print_fn=printed.append)
    assert printed[0] == "at block 3: steps 3" and "[block 3] steps 3" in printed


def test_watch_file_runs_the_file_when_it_changes(tmp_path):
    session, interpreter = make()
    path = tmp_path / "set.lmdm"
    path.write_text("tempo 124\nevery 1 bar: steps 3\n")
    printed = []
    edits = iter([
        lambda: None,  # unchanged: not run again
        lambda: (path.write_text("tempo 130\nevery 1 bar: steps 4\n"), os.utime(path, ns=(1, 10**18))),
        lambda: path.write_text("tempo 999\n"),  # a broken save: one error, the old set keeps running
        lambda: path.unlink(),
    ])
    runs = watch_file(path, interpreter, 0.01, print_fn=printed.append, max_polls=5, sleep=lambda s: next(edits)())
    assert runs == 3
    assert printed[:2] == ["tempo 124 BPM; bar 1 starts at block 0", "every 1 bar: steps 3 (first at block 0)"]
    assert "tempo 130 BPM; bar 1 starts at block 0" in printed
    assert sum(m.startswith("error: line 1, column 7: tempo must be") for m in printed) == 1
    assert printed[-1].startswith("error: cannot read")
    assert [body for _, body in interpreter.scheduled] == [(v.Steps(4),)]  # replaced, not piled up


def test_example_set_parses():
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "first_set.lmdm")
    program = parse(open(path, encoding="utf-8").read())
    kinds = {type(s) for s in program}
    assert {v.Tempo, v.Prompt, v.AtNext, v.After, v.Every, v.SceneDef, v.SketchPattern} <= kinds


# === jam on / off (issue 6) ======================================================================


class JamSession(FakeLiveSession):
    """The fake session plus the jamming switch (``LiveSession.set_jam``)."""

    def set_jam(self, on: bool, follow: str | None = None) -> None:
        assert ("sketch" if follow in ("key", "beat") else "jam") in self.features, "set_jam called on a session without jamming"
        with self._lock:
            self.calls.append(("set_jam", on) if follow is None else ("set_jam", on, follow))


def test_jam_on_and_off_parse_print_and_reach_the_session():
    assert parse("jam on; jam off") == (v.Jam(True), v.Jam(False))
    assert [s.to_source() for s in parse("jam on\njam off")] == ["jam on", "jam off"]
    assert parse("scene on = jam off; play on") == (v.SceneDef("on", (v.Jam(False),)), v.Play("on"))  # 'on' is still a name
    session = JamSession(features=("jam",))
    interpreter = Interpreter(session)
    assert interpreter.run("jam off") == ["jam off (the input is not given to the model)"]
    assert interpreter.run("at next bar: jam on") == ["at block 0: jam on"]
    session.generate(1)
    assert session.calls_named("set_jam") == [("set_jam", False), ("set_jam", True)]
    _, plain = make(features=())
    assert plain.run("jam on") == ["error: jam is not available in this model"]
    assert plain.run("jam maybe")[0].startswith("error: line 1, column 5")


def test_jam_key_beat_and_listen_choose_how_the_model_follows_the_player():
    assert parse("jam key; jam beat; jam listen") == (v.Jam(True, "key"), v.Jam(True, "beat"), v.Jam(True, "listen"))
    assert [s.to_source() for s in parse("jam key\njam beat\njam listen")] == ["jam key", "jam beat", "jam listen"]
    session = JamSession(features=("jam", "sketch"))
    interpreter = Interpreter(session)
    assert interpreter.run("jam key") == ["jam key (the model follows the input's beat and notes)"]
    assert interpreter.run("jam beat") == ["jam beat (the model follows the input's beat)"]
    assert interpreter.run("jam listen") == ["jam listen (the model hears the input)"]
    session.generate(1)
    assert session.calls_named("set_jam") == [("set_jam", True, "key"), ("set_jam", True, "beat"), ("set_jam", True, "listen")]
    _, listen_only = make(features=("jam",))
    assert listen_only.run("jam beat") == ["error: sketch is not available in this model"]
    assert listen_only.run("jam key") == ["error: sketch is not available in this model"]
    with pytest.raises(ValueError):
        v.Jam(True, "telepathy")


def test_status_shows_the_sketches_and_the_delay_in_force():
    session, interpreter = make()
    interpreter.run('sketch rhythm "x ~"; delay 2 blocks mix 0.2')
    assert "| sketch rhythm | delay 2 blocks strength 0.5 feedback 0.3 mix 0.2" in interpreter.run("status")[0]


# === bounded inputs (issue 20, class 1): every number and length has a range, named in one line ===


def one_line_error(message: str) -> bool:
    """An error is one line: the reason, then (for a text that did not parse) the source line and a caret."""
    lines = message.split("\n")
    return message.startswith("error: ") and (len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^"))


FRAME_RANGE = "a time must be 0 or from one latent frame (40 ms) to 100000"


@pytest.mark.parametrize("text", [
    "delay 1e-310 blocks",                           # repeats counted by dividing by the time: overflow on every block
    "delay 5e-324 bars",
    "every 1e-310 bars: steps 2",                    # the scheduler failed on every block, sketches with it
    "every 5e-324 blocks: steps 2",                  # its seconds round to 0: a division by zero
    "at next 1e-310 blocks: steps 2",
    "in 1e-300 bars: steps 2",
    'prompt "a" over 1e-300 bars',
    "sketch loudness ramp 0 1 over 1e-300 beats",
    "every 0.01 beats: steps 2",                     # 5 ms at 120 BPM: less than a frame
])
def test_a_time_shorter_than_one_latent_frame_is_refused_in_one_line(text):
    session, interpreter = make()  # 25 latent frames per second: a frame is 40 ms
    replies = interpreter.run(text)
    assert len(replies) == 1 and one_line_error(replies[0]) and FRAME_RANGE in replies[0]
    session.generate(4)
    assert interpreter.messages() == [] and interpreter.scheduled == []
    assert session.calls_named("set_delay") == []


def test_zero_and_exactly_one_frame_are_times_too():
    session, interpreter = make()  # 2 s blocks, 25 frames/s: a frame is 0.02 blocks
    assert not errors(interpreter.run("in 0 blocks: steps 3\nprompt \"a\" over 0 bars\nevery 0.02 blocks: cfg 2"))
    session.generate(3)
    assert len(session.calls_named("set_cfg")) == 3  # at most once per block
    assert fired_before(session, ("set_steps", 3)) == 0


def test_a_time_is_checked_against_the_session_s_own_frame():
    session, interpreter = make(frame_rate=2.0)  # a frame is 0.5 s
    [reply] = interpreter.run("every 1 beat: steps 2")  # 0.5 s at 120 BPM: one frame, allowed
    assert not reply.startswith("error")
    [reply] = interpreter.run("tempo 240\nevery 1 beat: cfg 2")[1:]  # 0.25 s
    assert reply == "error: line 2: a time must be 0 or from one latent frame (500 ms) to 100000 beats; 1 beat is 250 ms at 240 BPM"


def test_a_tempo_change_that_the_delay_cannot_follow_still_changes_the_tempo():
    class Bounded(FakeLiveSession):
        def set_delay(self, spec):
            if spec is not None and spec.time_blocks > 64:
                raise ValueError(f"delay time must be more than 0 and at most 64 blocks, got {spec.time_blocks!r}")
            super().set_delay(spec)

    session = Bounded()
    interpreter = Interpreter(session)
    interpreter.run("delay 16 bars")  # 32 s = 16 blocks at 120 BPM
    replies = interpreter.run("tempo 20")  # 192 s: too long for the delay
    assert replies[0] == "tempo 20 BPM; bar 1 starts at block 0"
    assert replies[1].startswith("error: the delay (16 bars) keeps its time: delay time must be")
    assert interpreter.clock.bpm == 20.0 and session.calls_named("set_delay")[-1][1].time_blocks == 16.0


@pytest.mark.parametrize("text, message", [
    ("seed 1" + "0" * 5000, "seed must be a whole number, got inf"),  # beyond Python's int conversion: was a VisitError
    ("steps 1e999", "steps must be a whole number, got inf"),
    ("every 1e999 bars: steps 2", "a time span must be between 0 and 100000, got inf"),
    ('prompt "a" * 1e400', "a prompt weight must be between 0 and 100, got inf"),
    ("prompt " + " + ".join(['"a"'] * 17), "a prompt mixes at most 16 texts, got 17"),
    ("delay prompt <" + " ".join(['"a"'] * 17) + ">", "a delay takes turns between at most 16 prompts, got 17"),
    ("scene " + "a" * 65 + " = steps 2", "a scene name is at most 64 characters, got 65"),
    ('prompt "' + "a" * 501 + '"', "a prompt is at most 500 characters, got 501"),
])
def test_numbers_and_lengths_out_of_range_are_one_line_errors(text, message):
    session, interpreter = make()
    [reply] = interpreter.run(text)
    assert one_line_error(reply) and message in reply.split("\n")[0]
    assert session.calls == []


def test_limits_sit_at_their_edges():
    _, interpreter = make()
    assert not errors(interpreter.run("prompt " + " + ".join(['"a"'] * 16)))
    assert not errors(interpreter.run("delay prompt <" + " ".join(['"a"'] * 16) + ">"))
    assert not errors(interpreter.run("scene " + "a" * 64 + " = steps 2"))
    assert not errors(interpreter.run("seed 9223372036854775807"))
    assert not errors(interpreter.run("at next bar: " * 16 + "steps 2"))


def test_a_long_text_and_deep_nesting_are_refused_before_lark_reads_them(monkeypatch):
    import lmdm_dsl.parser as parser

    class NoLark:
        def parse(self, text):
            raise AssertionError("Lark was given the text")

    monkeypatch.setattr(parser, "_PARSER", NoLark())
    long_text = "prompt " + " + ".join(['"a"'] * 20_000)  # 120 kB: held the parser and the encoder for seconds
    [reply] = Interpreter(FakeLiveSession()).run(long_text)
    assert one_line_error(reply) and "a text is at most 20000 characters, got 120004" in reply
    for deep in ["at next bar: " * 200 + "steps 2",                     # was a Python RecursionError message
                 "scene a = " + "{ every 1 bar: " * 17 + "steps 2" + " }" * 17,
                 "in 1 block:\n" * 17 + "steps 2"]:
        [reply] = Interpreter(FakeLiveSession()).run(deep)
        assert one_line_error(reply) and "bodies nest at most 16 deep" in reply
        assert "RecursionError" not in reply


def test_too_deep_counts_body_openers_only():
    from lmdm_dsl.parser import too_deep

    assert too_deep("at next bar: at next bar: steps 2", 2) is None
    assert too_deep("at next bar: at next bar: at next bar: steps 2", 2) == len("at next bar: at next bar: at next bar")
    assert too_deep("at next bar: steps 2; at next bar: steps 2; at next bar: steps 2", 1) is None  # ; ends a statement
    assert too_deep("every 1 bar:\n  every 1 bar: steps 2\nin 1 bar: steps 3", 2) is None  # a body on the next line
    continued = "every 1 bar: in 1 \\\n  bar: steps 2"  # a \ continues the line
    assert too_deep(continued, 1) == continued.rindex(":")
    assert too_deep(continued.replace("\\", ""), 1) is None  # without it, the line ends the statement
    assert too_deep('prompt "a: b: c = d"  # : : : =\nsteps 2 // : :', 0) is None  # strings and comments skipped
    assert too_deep("scene a = {\n  every 1 bar: steps 2\n  in 1 bar: steps 3\n}", 2) is None
    assert too_deep("scene a = {\n  every 1 bar: { in 1 bar: steps 2 }\n}", 2) is not None


def test_scenes_and_what_one_play_runs_are_capped():
    session, interpreter = make()
    for k in range(v.MAX_SCENES):
        interpreter.run(f"scene s{k} = steps 2")
    assert interpreter.run("scene one_more = steps 2") == ["error: too many scenes (at most 256); define one again to replace it"]
    assert not errors(interpreter.run("scene s0 = steps 3"))  # replacing one is fine
    session, interpreter = make()
    interpreter.run("scene x0 = steps 2")
    for k in range(1, 6):  # x5 would run 10^5 statements
        interpreter.run(f"scene x{k} = {{ " + "; ".join([f"play x{k - 1}"] * 10) + " }")
    replies = interpreter.run("play x5")
    assert errors(replies) == ["error: a play runs at most 1024 statements, its scenes' included; the rest of scene 'x1' is skipped"]
    assert len(session.calls_named("set_steps")) <= v.MAX_PLAYED


def test_the_interpreter_refuses_a_meter_out_of_range():
    with pytest.raises(ValueError, match="beats_per_bar must be a whole number from 1 to 16, got 0"):
        Interpreter(FakeLiveSession(), beats_per_bar=0)


# === the scheduler isolates its entries (issue 20, class 2) ======================================


def test_a_failing_entry_is_reported_once_and_dropped_and_the_others_go_on(monkeypatch):
    import lmdm_dsl.interpreter as interpreter_module

    real = interpreter_module.boundary_at

    def boundary_at(clock, span, block, block_seconds, *, strictly_after=False):
        if span == v.Span(3, "block") and strictly_after:
            raise OverflowError("cannot convert float infinity to integer")
        return real(clock, span, block, block_seconds, strictly_after=strictly_after)

    monkeypatch.setattr(interpreter_module, "boundary_at", boundary_at)
    session, interpreter = make()
    interpreter.run('every 1 block: steps 2\nevery 3 blocks: seed 1\nevery 2 blocks: cfg 2\nsketch rhythm "x ~"')
    session.generate(6)
    messages = interpreter.messages()
    assert errors(messages) == [
        "error: [block 0] every 3 blocks: seed 1: OverflowError: cannot convert float infinity to integer; dropped from the schedule"
    ]
    assert len(session.calls_named("set_steps")) == 6 and len(session.calls_named("set_cfg")) == 3
    assert len(session.calls_named("set_sketch")) == 6  # the sketch too, every block
    assert session.calls_named("set_seed") == []  # it failed before it ran
    assert [body for _, body in interpreter.scheduled] == [(v.Steps(2),), (v.Cfg(2.0),)]


def test_an_entry_that_cannot_follow_a_tempo_change_is_dropped_alone(monkeypatch):
    import lmdm_dsl.interpreter as interpreter_module

    real = interpreter_module.boundary_at
    monkeypatch.setattr(
        interpreter_module, "boundary_at",
        lambda clock, span, block, bs, strictly_after=False: (
            1 // 0 if span == v.Span(3, "bar") and clock.bpm == 90 else real(clock, span, block, bs, strictly_after=strictly_after)
        ),
    )
    session, interpreter = make()
    interpreter.run("every 3 bars: seed 1\nevery 1 bar: steps 2")
    session.generate(1)
    replies = interpreter.run("tempo 90")
    assert replies[0] == "tempo 90 BPM; bar 1 starts at block 1"
    assert replies[1:] == ["error: every 3 bars: seed 1: ZeroDivisionError: integer division or modulo by zero; dropped from the schedule"]
    session.generate(4)
    assert len(session.calls_named("set_steps")) == 4 and not errors(interpreter.messages())


# === every after a tempo change (issue 20, class 10) ==============================================


def fired_blocks(session: FakeLiveSession, call: tuple) -> list[int]:
    return [fired_before_index(session, i) for i, c in enumerate(session.calls) if c == call]


@pytest.mark.parametrize("tempo_change, expected", [
    ("at next block: tempo 120", [0, 4, 8, 10, 14, 18]),  # was 0, 4, 8, 11, 14: a block late, then 3 apart
    ("in 0 blocks: tempo 160", [0, 4, 8, 10, 13, 16, 19]),  # 4 bars at 160 BPM: 6 s, 3 blocks
    ("tempo 120", [0, 4, 8, 10, 14, 18]),  # typed: it always fired on the new grid's bar 1
])
def test_every_fires_on_the_new_grid_from_the_block_a_tempo_restarts_it(tempo_change, expected):
    session, interpreter = make()  # 2 s blocks at 120 BPM: 4 bars are 4 blocks
    interpreter.run("every 4 bars: cfg 2")
    session.generate(10)  # now is block 10
    interpreter.run(tempo_change)
    session.generate(10)
    assert fired_blocks(session, ("set_cfg", 2.0))[: len(expected)] == expected
    assert not errors(interpreter.messages())


def test_a_grid_restarted_by_a_fired_statement_fires_each_entry_once_in_that_block():
    session, interpreter = make()
    interpreter.run("every 1 bar: cfg 2\nevery 2 blocks: tempo 120")  # the grid restarts every 2 blocks
    session.generate(6)
    assert fired_blocks(session, ("set_cfg", 2.0)) == [0, 1, 2, 3, 4, 5]
