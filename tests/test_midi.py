"""MIDI in and out: the pure math (controller -> knob, smoothing, clock ticks -> BPM, keys -> melody),
the `midi` statements through the interpreter, and real ports through JACK's dummy backend.

The JACK tests open real MIDI ports with python-rtmidi's JACK API: the test plays a keyboard or a
drum machine (its own client, "test-*"), lmdm opens its ports as `lmdm_in.MidiIn` / `MidiOut`
would in `lmdm live`, and `jack_connect` (or rtmidi) joins them, so every message really travels
through the JACK server. Set LMDM_MIDI_MEASURE=1 (and -s) to print the measured latencies and
jitter (docs/play_with_others.md quotes them).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmdm.sync import midi as lm
from lmdm.sync import midi_clock as lc
from lmdm_dsl import Interpreter, parse, program_source
from lmdm_dsl import midi as m
from lmdm_dsl import values as v
from lmdm_dsl.clock import Clock
from tests.fakes import FakeLiveSession
from tests.osc_client import OscClient

rtmidi = pytest.importorskip("rtmidi")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MEASURE = bool(os.environ.get("LMDM_MIDI_MEASURE"))
SETTINGS = settings(max_examples=60, deadline=None)


def make(features=("sketch", "delay"), block_seconds: float = 2.0) -> tuple[FakeLiveSession, Interpreter]:
    session = FakeLiveSession(features=features, block_seconds=block_seconds)
    return session, Interpreter(session)


def calls(session: FakeLiveSession, name: str) -> list[tuple]:
    return session.calls_named(name)


# === pure: controller -> knob, smoothing, crossfade =============================================


def test_a_controller_runs_its_knob_from_low_to_high():
    assert m.position(0) == 0 and m.position(127) == 1 and m.position(64) == pytest.approx(0.504, abs=1e-3)
    assert m.knob_value(m.position(127), 1, 6) == 6 and m.knob_value(0.0, 1, 6) == 1
    assert m.knob_value(1.0, 0.9, 0.2) == pytest.approx(0.2)  # high may be below low: a knob turned round
    for bad in (-1, 128, 1.5, True):
        with pytest.raises(ValueError, match="0 to 127"):
            m.position(bad)


@SETTINGS
@given(st.floats(0, 1), st.floats(0, 1), st.floats(0.01, 10), st.floats(0, 10))
def test_smoothing_moves_towards_the_controller_never_past_it_and_lands(current, target, block_s, smooth_s):
    alpha = m.smoothing(block_s, smooth_s)
    assert 0 < alpha <= 1 and (alpha == 1) == (smooth_s <= 0 or alpha == 1)
    moved = m.smooth_step(current, target, alpha)
    assert min(current, target) - 1e-12 <= moved <= max(current, target) + 1e-12
    assert abs(target - moved) <= abs(target - current)
    pos = current
    for _ in range(10_000):
        pos = m.smooth_step(pos, target, alpha)
        if pos == target:
            break
    assert pos == target  # it lands exactly (within half a controller step it snaps)


def test_smoothing_is_a_time_constant_in_seconds_not_in_blocks():
    assert m.smoothing(2.0, 0) == 1.0
    assert m.smoothing(0.5, 0.5) == pytest.approx(1 - math.exp(-1))
    assert m.smoothing(2.0, 0.5) > m.smoothing(0.32, 0.5)  # a long block moves further in one step
    assert m.smooth_step(None, 0.7, 0.1) == 0.7  # the first value is taken as it is


@given(st.floats(0, 1))
def test_the_crossfade_weights_add_up_to_one(pos):
    (a, wa), (b, wb) = m.crossfade("dub", "ambient", pos)
    assert (a, b) == ("dub", "ambient") and wa + wb == pytest.approx(1) and wb == pos


# === pure: keys -> melody ========================================================================


def test_the_keys_are_taken_in_the_order_pressed_each_once():
    assert m.note_order({64: 2, 60: 1}, []) == (60, 64)
    assert m.note_order({}, [(3, 67), (4, 60), (5, 67)]) == (67, 60)  # released keys pressed since the last block count
    assert m.note_order({60: 9}, [(4, 60), (5, 62)]) == (60, 62)  # a key held since an earlier press keeps its first place
    assert len(m.note_order({n: n for n in range(40)}, [])) == m.MAX_NOTES


@SETTINGS
@given(st.dictionaries(st.integers(0, 127), st.integers(1, 500), max_size=20),
       st.lists(st.tuples(st.integers(1, 500), st.integers(0, 127)), max_size=20))
def test_note_order_is_a_subset_in_press_order(held, pressed):
    order = m.note_order(held, pressed)
    assert len(set(order)) == len(order) <= m.MAX_NOTES
    assert set(order) <= set(held) | {n for _, n in pressed}


def test_one_key_fills_the_block_and_several_take_turns_by_beat():
    one = m.note_frames((60,), 120, 0, 3, 2.0, 50, 25.0)
    assert (one == 60).all() and one.dtype == np.float32
    two = m.note_frames((60, 67), 120, 0, 0, 2.0, 50, 25.0)  # 2 s at 120 BPM: 4 beats of 12.5 frames
    assert list(two[[0, 12, 13, 25, 26, 38, 49]]) == [60, 60, 67, 60, 60, 67, 67]
    shifted = m.note_frames((60, 67), 120, 1, 1, 2.0, 50, 25.0)  # beats counted from the clock's bar 1
    assert (shifted == two).all()
    assert (m.note_frames((), 120, 0, 0, 2.0, 50, 25.0) == 0).all()


def test_a_loudness_knob_ramps_from_last_block_s_level():
    ramp = m.loudness_frames(0.2, 0.6, 4)
    assert ramp == pytest.approx([0.2, 0.3, 0.4, 0.5]) and ramp.dtype == np.float32
    assert (m.loudness_frames(0.5, 0.5, 3) == 0.5).all()


def test_a_followed_tempo_changes_the_tempo_only_by_half_a_bpm_or_more():
    assert m.tempo_change(None, 120) is None
    assert m.tempo_change(120.3, 120) is None
    assert m.tempo_change(124.04, 120) == 124.0
    assert m.tempo_change(119.5, 120) == 119.5


# === pure: bytes -> events, ports, clock ticks ====================================================


@pytest.mark.parametrize("data, event", [
    ([0xB0, 7, 100], lm.Event("control", 1, 7, 100)),
    ([0xBF, 1, 0], lm.Event("control", 16, 1, 0)),
    ([0x91, 60, 90], lm.Event("note", 2, 60, 90)),
    ([0x90, 60, 0], lm.Event("note", 1, 60, 0)),  # note on with velocity 0 is a key up
    ([0x80, 60, 64], lm.Event("note", 1, 60, 0)),
    ([0xF8], lm.Event("clock")),
    ([0xFA], lm.Event("start")),
    ([0xFB], lm.Event("continue")),
    ([0xFC], lm.Event("stop")),
    ([0xE0, 0, 64], None),  # pitch bend: well-formed, not used
    ([0xF0, 1, 2, 0xF7], None),  # sysex
    ([0xFE], None),  # active sensing
])
def test_decode(data, event):
    assert lm.decode(data) == event


@pytest.mark.parametrize("data", [[], [0x90, 60], [0xE0], [0xF2, 1], [0xF4], [0xB0, 200, 1], [60, 1, 2], [0x90, 60, 1, 2]])
def test_bytes_that_are_not_one_midi_message_are_a_value_error(data):
    with pytest.raises(ValueError):
        lm.decode(data)


@SETTINGS
@given(st.lists(st.integers(0, 255), max_size=6))
def test_decode_gives_an_event_none_or_a_value_error_for_any_bytes(data):
    try:
        result = lm.decode(data)
    except ValueError:
        return
    assert result is None or isinstance(result, lm.Event)


def test_find_port_by_name_or_part_of_it_else_one_line_naming_the_ports():
    names = ["Midi Through:Port-0 14:0", "nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0", "TR-8:TR-8 MIDI 1 24:0"]
    assert lm.find_port(names, names[2]) == 2
    assert lm.find_port(names, "nanokontrol") == 1
    with pytest.raises(lm.MidiError, match="several") as several:
        lm.find_port(names, "MIDI 1")
    with pytest.raises(lm.MidiError) as none:
        lm.find_port(names, "Launchpad", "output")
    message = str(none.value)
    assert "\n" not in message and "no MIDI output port matches 'Launchpad'" in message and "'TR-8:TR-8 MIDI 1 24:0'" in message
    assert "\n" not in str(several.value)
    assert "available: none" in str(pytest.raises(lm.MidiError, lm.find_port, [], "x").value)


@SETTINGS
@given(st.floats(*v.TEMPO_RANGE), st.floats(0, 0.002), st.integers(0, 2**16))
def test_the_tempo_of_jittery_ticks_is_fitted_within_a_fraction_of_a_bpm(bpm, jitter, seed):
    tick = 60 / bpm / lc.TICKS_PER_BEAT
    times = np.arange(lm.FOLLOW_TICKS) * tick + np.random.default_rng(seed).uniform(-jitter, jitter, lm.FOLLOW_TICKS)
    assert lm.ticks_bpm(np.arange(10) * tick) == pytest.approx(bpm, rel=1e-9)
    # the least-squares interval is off by at most 3 / N of the jitter (sum |k| / sum k^2 for N ticks):
    # 96 ticks with up to 2 ms of jitter are within 0.3% at 120 BPM, 1% at 400
    worst = 3 / lm.FOLLOW_TICKS * jitter / tick
    assert abs(lm.ticks_bpm(times) - bpm) <= bpm * worst / (1 - worst) + 1e-9 * bpm


def test_the_clock_follower_waits_for_two_beats_and_starts_afresh_after_a_gap():
    follower = lm.ClockFollower()
    tick = 60 / 100 / 24
    told = [follower.tick(k * tick) for k in range(lm.MIN_TICKS)]
    assert told[:-1] == [None] * (lm.MIN_TICKS - 1) and told[-1] == pytest.approx(100)
    assert follower.tick(10.0) is None  # a gap: the clock stopped and came back
    assert [follower.tick(10.0 + k * tick / 2) for k in range(1, lm.MIN_TICKS)][-1] == pytest.approx(200)


def test_bar_one_and_the_first_tick():
    clock = Clock(bpm=120, origin_block=5)
    assert lc.bar_one_at(clock, 2.0, heard_s=9.0, now=100.0) == 101.0  # block 5 starts at 10 s, heard in 1 s
    assert lc.first_tick(0.0, 0.1, 0.25) == 3 and lc.first_tick(0.0, 0.1, 0.3) == 3
    assert lc.first_tick(0.0, 0.1, 0.25, every=96) == 96 and lc.first_tick(0.0, 0.1, -5.0, every=96) == -0


def test_midi_in_counts_what_it_ignores_and_never_raises():
    bridge = m.MidiBridge()
    port = lm.MidiIn(bridge, "virtual")
    for data in ([0xB0, 1, 64], [0x90, 60], [0xF4], [0xE0, 0, 64], [0xF0, 1, 0xF7], [0x90, 64, 100], [0xF8]):
        port.receive(data, 0.0)
    assert port.stats == lm.MidiInStats(received=7, used=3, ignored=2, malformed=2, errors=0)
    port.bridge = None  # a bug in handing on: counted, not raised
    port.receive([0xB0, 1, 1], 0.0)
    assert port.stats.errors == 1
    snapshot = bridge.take()
    assert snapshot.controls[(1, 1)][1] == pytest.approx(64 / 127) and (1, 64) in snapshot.held


def test_a_knob_or_a_key_nudges_the_session_and_the_clock_does_not():
    nudges = []
    port = lm.MidiIn(m.MidiBridge(), "virtual", on_change=lambda: nudges.append(1))
    for data in ([0xF8], [0xF8], [0xFA]):  # clock ticks and a start: no splice for those
        port.receive(data, 0.0)
    assert nudges == []
    port.receive([0xB0, 7, 100], 0.0)
    port.receive([0x90, 60, 90], 0.0)
    assert nudges == [1, 1]


def test_without_the_extra_the_error_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mido", None)  # import mido -> ImportError
    with pytest.raises(lm.MidiUnavailable) as error:
        lm.MidiIn(m.MidiBridge(), "virtual").start()
    assert "\n" not in str(error.value) and "pip install 'lmdm[midi]'" in str(error.value)
    lines: list[str] = []
    stop = lm.start_midi(Interpreter(FakeLiveSession()), FakeLiveSession(), port_in="virtual", say=lines.append)
    stop()
    assert len(lines) == 1 and lines[0].startswith("error: MIDI in: MIDI needs the [midi] extra") and "playing on" in lines[0]


def test_the_runtime_never_imports_the_measuring_or_command_modules():
    code = ("import sys, lmdm.sync.midi, lmdm_dsl.midi; "
            "print(sorted(n for n in sys.modules if n.startswith(('lmdm.eval', 'lmdm.train', 'lmdm.cli', 'lmdm.render', 'mido', 'rtmidi'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    assert out.strip() == "[]"  # nor mido/rtmidi until a port opens


# === the language ================================================================================

MIDI_EXAMPLES = [
    "midi cc 1 -> cfg",
    "midi cc 1 -> cfg 1 .. 6",
    "midi cc 21 channel 10 -> delay strength 0.9 .. 0.1 smooth 2 beats",
    "midi cc 74 -> delay mix smooth 0 blocks",
    "midi cc 75 -> delay feedback",
    'midi cc 7 -> prompt "dub techno" .. "ambient pads"',
    "midi cc 11 -> sketch loudness 0.2 .. 1",
    "midi cc 7 off",
    "midi cc 7 channel 2 off",
    "midi notes -> melody",
    "midi notes channel 1 -> melody",
    "midi notes off",
    "midi clock in", "midi clock out", "midi clock in off", "midi clock out off", "midi clock off",
    "midi start: play intro",
    'midi stop: { prompt "outro" over 2 bars; cfg 1 }',
    "midi off",
]


@pytest.mark.parametrize("text", MIDI_EXAMPLES)
def test_every_midi_statement_round_trips(text):
    program = parse(text)
    assert len(program) == 1 and program_source(program) == text
    assert parse(program_source(program)) == program


def test_a_range_may_be_written_without_spaces():
    assert parse("midi cc 1 -> cfg 1..6") == parse("midi cc 1 -> cfg 1 .. 6")
    assert parse("midi cc 1 -> delay mix .2..1") == (v.MidiMap(1, "delay mix", 0.2, 1.0),)


midi_maps = st.one_of(
    st.builds(v.MidiMap, st.integers(0, 127), st.sampled_from(["cfg", "delay mix", "sketch loudness"]),
              st.none(), st.none(), st.none(), st.none() | st.integers(1, 16),
              st.none() | st.builds(v.Span, st.integers(0, 8), st.sampled_from(v.UNITS))),
    st.tuples(st.integers(0, 127), st.floats(0, 1), st.floats(0, 1)).map(lambda t: v.MidiMap(t[0], "delay strength", t[1], t[2])),
    st.tuples(st.integers(0, 127), st.floats(0, 20), st.floats(0, 20)).map(lambda t: v.MidiMap(t[0], "cfg", t[1], t[2])),
    st.builds(lambda c, a, b: v.MidiMap(c, "prompt", prompts=(a, b)), st.integers(0, 127),
              st.sampled_from(["dub", 'say "hi"', "a\\b"]), st.sampled_from(["ambient", "x"])),
    st.builds(v.MidiUnmap, st.integers(0, 127), st.none() | st.integers(1, 16)),
    st.builds(v.MidiNotes, st.booleans()),
    st.builds(v.MidiClock, st.sampled_from(["in", "out"]), st.booleans()),
    st.just(v.MidiOff()),
)


@SETTINGS
@given(st.lists(midi_maps, min_size=1, max_size=4).map(tuple))
def test_generated_midi_statements_round_trip(program):
    assert parse(program_source(program)) == program


@pytest.mark.parametrize("text, message", [
    ("midi cc 128 -> cfg", "a MIDI control number must be between 0 and 127, got 128"),
    ("midi cc 1.5 -> cfg", "a MIDI control number must be a whole number, got 1.5"),
    ("midi cc 1 channel 0 -> cfg", "a MIDI channel must be between 1 and 16, got 0"),
    ("midi notes channel 17 -> melody", "a MIDI channel must be between 1 and 16, got 17"),
    ("midi cc 1 -> cfg 0 .. 30", "cfg must be between 0 and 20, got 30"),
    ("midi cc 1 -> delay mix -0.5 .. 1", "delay mix must be between 0 and 1, got -0.5"),
    ("midi cc 1 -> sketch loudness 0 .. 2", "sketch loudness must be between 0 and 1, got 2"),
    ('midi cc 1 -> prompt "a" .. "b" 0 .. 1', "a prompt crossfade takes no range"),
    ("midi cc 1 -> cfg smooth 1e9 bars", "a time span must be between 0 and 100000, got 1000000000"),
    ("midi cc 1 -> tempo", "unexpected 'tempo'"),
])
def test_midi_values_out_of_range_are_one_line_errors(text, message):
    session, interpreter = make()
    [reply] = interpreter.run(text)
    assert reply.startswith("error: ") and message in reply.split("\n")[0]
    assert session.calls == []


def test_midi_words_still_name_scenes():
    assert parse("scene clock = steps 2; play midi; scene notes = cfg 1") == (
        v.SceneDef("clock", (v.Steps(2),)), v.Play("midi"), v.SceneDef("notes", (v.Cfg(1),)))


def test_the_example_sets_parse():
    for path in sorted(EXAMPLES.glob("midi_*.lmdm")):
        assert parse(path.read_text()), path
    assert list(EXAMPLES.glob("midi_*.lmdm"))


# === the interpreter: knobs, keys and the clock, applied before each block ========================


def test_a_mapped_controller_turns_cfg_at_the_next_block_once_it_moves():
    session, interpreter = make()
    interpreter.midi.control(1, 1, 100)  # moved before the mapping: does not count
    [reply] = interpreter.run("midi cc 1 -> cfg 1 .. 6 smooth 0 beats")
    assert reply == "midi cc 1 -> cfg 1 .. 6 smooth 0 beats; it turns when the controller moves"
    session.generate(2)
    assert calls(session, "set_cfg") == []
    interpreter.midi.control(5, 1, 127)  # any channel
    assert calls(session, "set_cfg") == []  # nothing happens on the MIDI thread
    session.generate(1)
    assert calls(session, "set_cfg") == [("set_cfg", 6.0)]
    session.generate(3)
    assert calls(session, "set_cfg") == [("set_cfg", 6.0)]  # only when it moves
    interpreter.midi.control(1, 1, 0)
    session.generate(1)
    assert calls(session, "set_cfg")[-1] == ("set_cfg", 1.0)


def test_a_knob_is_smoothed_once_per_block_and_lands():
    session, interpreter = make(block_seconds=0.5)
    interpreter.run("tempo 120\nmidi cc 1 -> cfg 0 .. 10")  # smooth 1 beat = 0.5 s: 63% per block
    interpreter.midi.control(1, 1, 0)
    session.generate(1)
    interpreter.midi.control(1, 1, 127)
    session.generate(12)
    values = [c[1] for c in calls(session, "set_cfg")]
    assert values[0] == 0 and values[1] == pytest.approx(10 * (1 - math.exp(-1)))
    assert values == sorted(values) and values[-1] == 10
    assert values[2] == pytest.approx(10 * (1 - math.exp(-2)))


def test_a_channel_mapping_hears_only_its_channel():
    session, interpreter = make()
    interpreter.run("midi cc 7 channel 2 -> cfg smooth 0 blocks")
    interpreter.midi.control(1, 7, 127)
    session.generate(1)
    assert calls(session, "set_cfg") == []
    interpreter.midi.control(2, 7, 127)
    session.generate(1)
    assert calls(session, "set_cfg") == [("set_cfg", 20.0)]


def test_the_crossfader_mixes_two_prompts():
    session, interpreter = make()
    interpreter.run('midi cc 7 -> prompt "dub" .. "ambient" smooth 0 beats')
    interpreter.midi.control(1, 7, 127)
    session.generate(1)
    interpreter.midi.control(1, 7, 0)
    session.generate(1)
    assert [c[1] for c in calls(session, "set_prompt")] == [(("dub", 0.0), ("ambient", 1.0)), (("dub", 1.0), ("ambient", 0.0))]


def test_a_delay_knob_turns_the_delay_in_force_and_never_turns_one_on():
    session, interpreter = make()
    interpreter.run("midi cc 74 -> delay mix smooth 0 beats\nmidi cc 75 -> delay strength 0.2 .. 0.8 smooth 0 beats")
    interpreter.midi.control(1, 74, 127)
    session.generate(1)
    assert calls(session, "set_delay") == []
    interpreter.run("delay 2 blocks feedback 0.4")
    interpreter.midi.control(1, 74, 0)
    interpreter.midi.control(1, 75, 127)
    session.generate(1)
    spec = calls(session, "set_delay")[-1][1]
    assert (spec.mix, spec.strength, spec.feedback, spec.time_blocks) == (0.0, pytest.approx(0.8), 0.4, 2)
    assert "delay 2 blocks strength 0.8 feedback 0.4 mix 0" in interpreter.run("status")[0]


def test_a_delay_knob_on_a_model_without_the_delay_is_refused():
    session, interpreter = make(features=())
    assert interpreter.run("midi cc 1 -> delay mix") == ["error: delay is not available in this model"]
    assert interpreter.run("midi cc 1 -> sketch loudness") == ["error: sketch is not available in this model"]
    assert interpreter.run("midi notes -> melody") == ["error: sketch is not available in this model"]


def test_a_loudness_knob_ramps_over_a_block_and_takes_over_from_a_typed_loudness_sketch():
    session, interpreter = make()
    interpreter.run('sketch loudness "0.3"\nmidi cc 11 -> sketch loudness smooth 0 beats')
    session.generate(1)
    assert [c[1] for c in calls(session, "set_sketch")] == ["loudness"]
    interpreter.midi.control(1, 11, 127)
    session.generate(1)
    interpreter.midi.control(1, 11, 0)
    session.generate(2)
    sent = [c[2] for c in calls(session, "set_sketch")[1:]]
    assert len(sent) == 4 and (sent[1] == 1).all()  # the typed sketch is sent once more, then the knob's
    assert sent[2][0] == 1 and sent[2][-1] == pytest.approx(0.02) and (np.diff(sent[2]) < 0).all()  # the ramp down
    assert (sent[3] == 0).all()  # then the level, flat
    session.generate(2)
    assert len(calls(session, "set_sketch")) == 5  # nothing new to say


def test_the_keys_played_are_the_melody_and_releasing_them_gives_the_typed_melody_back():
    session, interpreter = make()
    interpreter.run('tempo 120\nsketch melody "c4"\nmidi notes -> melody')
    interpreter.midi.note(1, 67, 100)
    interpreter.midi.note(1, 64, 100)
    session.generate(1)
    kinds = calls(session, "set_sketch")
    assert [c[1] for c in kinds] == ["melody", "melody"]  # the typed one, then the keys (the later wins)
    assert set(kinds[-1][2]) == {67, 64} and kinds[-1][2][0] == 67
    interpreter.midi.note(1, 67, 0)
    interpreter.midi.note(1, 64, 0)
    session.generate(1)  # released, and pressed before the last block: the typed melody again
    assert set(calls(session, "set_sketch")[-1][2]) == {60}
    interpreter.midi.note(1, 72, 100)
    interpreter.midi.note(1, 72, 0)  # a short tap between two blocks counts
    session.generate(1)
    assert set(calls(session, "set_sketch")[-1][2]) == {72}
    session.generate(1)
    assert set(calls(session, "set_sketch")[-1][2]) == {60}  # back to the typed melody
    interpreter.run("sketch melody off")
    interpreter.midi.note(1, 50, 100)
    session.generate(1)
    interpreter.midi.note(1, 50, 0)
    session.generate(1)
    session.generate(1)
    assert calls(session, "set_sketch")[-1] == ("set_sketch", "melody", None)  # no typed melody: off


def test_a_mapping_survives_a_set_reload(tmp_path):
    session, interpreter = make()
    text = "tempo 120\nmidi cc 1 -> cfg 0 .. 10 smooth 0 beats\nmidi notes -> melody\nmidi clock in\n"
    assert not any(r.startswith("error") for r in interpreter.run(text, tag="set.lmdm"))
    interpreter.midi.control(1, 1, 127)
    session.generate(1)
    assert calls(session, "set_cfg") == [("set_cfg", 10.0)]
    replies = interpreter.run(text + "cfg 2\n", tag="set.lmdm")  # the watched file saved again
    assert "midi cc 1 -> cfg 0 .. 10 smooth 0 beats (already mapped)" in replies
    session.generate(2)
    assert calls(session, "set_cfg") == [("set_cfg", 10.0), ("set_cfg", 2)]  # the knob waits for the hand
    interpreter.midi.control(1, 1, 0)
    session.generate(1)
    assert calls(session, "set_cfg")[-1] == ("set_cfg", 0.0)
    assert "midi cc 1, notes, clock in" in interpreter.run("status")[0]


def test_a_changed_mapping_replaces_the_old_one_and_midi_off_ends_all():
    session, interpreter = make()
    interpreter.run("midi cc 1 -> cfg smooth 0 beats")
    [reply] = interpreter.run("midi cc 1 -> delay mix")
    assert reply == "midi cc 1 -> delay mix (was midi cc 1 -> cfg smooth 0 beats); it turns when the controller moves"
    assert interpreter.run("midi cc 2 off") == ["midi cc 2 off (it was not mapped)"]
    interpreter.run("midi clock in; midi clock out; midi notes -> melody; midi start: cfg 3")
    assert interpreter.midi.clock_in and interpreter.midi.clock_out
    assert interpreter.run("midi off") == ["midi off (mappings, notes, clock and start/stop bodies)"]
    assert not interpreter.midi.clock_in and not interpreter.midi.clock_out
    interpreter.midi.control(1, 1, 127)
    interpreter.midi.transport("start")
    session.generate(1)
    assert calls(session, "set_cfg") == calls(session, "set_delay") == []
    assert "midi" not in interpreter.run("status")[0]


def test_mappings_are_capped():
    _, interpreter = make()
    interpreter.run("; ".join(f"midi cc {n % 128} channel {n // 128 + 1} -> cfg" for n in range(v.MAX_MIDI_MAPS)))
    [reply] = interpreter.run("midi cc 1 channel 16 -> cfg")
    assert reply == f"error: too many MIDI mappings (at most {v.MAX_MIDI_MAPS}); use midi cc N off"
    assert not interpreter.run("midi cc 0 channel 1 -> cfg 1 .. 2")[0].startswith("error")  # replacing one is fine


def test_a_followed_clock_sets_the_tempo_and_its_start_puts_bar_one_here():
    session, interpreter = make()
    interpreter.run("every 1 bar: steps 3\nmidi start: seed 7\nmidi stop: cfg 1")
    interpreter.midi.tempo(124.02)
    session.generate(1)
    assert interpreter.clock.bpm == 120  # not following yet
    interpreter.run("midi clock in")
    session.generate(1)
    assert interpreter.clock.bpm == 124 and interpreter.clock.origin_block == 1
    interpreter.midi.tempo(124.3)  # jitter: the grid stays
    session.generate(1)
    assert interpreter.clock.origin_block == 1
    interpreter.midi.transport("start")
    session.generate(1)
    assert interpreter.clock.origin_block == 3 and calls(session, "set_seed") == [("set_seed", 7)]
    assert ("set_steps", 3) in session.calls[session.calls.index(("block", 2)):]  # the every fired on the new bar 1
    interpreter.midi.transport("stop")
    interpreter.midi.tempo(None)
    session.generate(1)
    assert calls(session, "set_cfg") == [("set_cfg", 1)] and interpreter.clock.bpm == 124.3
    said = interpreter.messages()
    assert "[block 1] tempo 124 BPM; bar 1 starts at block 1 (MIDI clock)" in said
    assert "[block 3] tempo 124.3 BPM; bar 1 starts at block 3 (MIDI start)" in said and "[block 4] MIDI stop" in said


def test_a_tempo_outside_the_language_s_range_is_not_followed():
    session, interpreter = make()
    interpreter.run("midi clock in")
    interpreter.midi.tempo(1000.0)
    session.generate(1)
    assert interpreter.clock.bpm == 120


def test_nothing_from_the_midi_thread_stops_the_music():
    session, interpreter = make()
    interpreter.run('midi cc 1 -> prompt "a" .. "b" smooth 0 beats\nmidi cc 2 -> cfg smooth 0 beats')

    def broken(*args, **kwargs):
        raise ValueError("the model refused")

    session.set_prompt = broken
    interpreter.midi.control(1, 1, 10)
    interpreter.midi.control(1, 2, 127)
    session.generate(2)
    assert calls(session, "set_cfg") == [("set_cfg", 20.0)]  # the other mapping goes on
    [said] = interpreter.messages()
    assert said == 'error: [block 0] midi cc 1 -> prompt "a" .. "b" smooth 0 beats: the model refused; that mapping is off'


def test_the_bridge_and_the_hook_on_two_threads():
    session, interpreter = make(block_seconds=0.01)
    interpreter.run("midi cc 1 -> cfg smooth 0 beats\nmidi notes -> melody\nmidi clock in")
    done = threading.Event()

    def play():
        k = 0
        while not done.is_set():
            k += 1
            interpreter.midi.control(1 + k % 16, 1, k % 128)
            interpreter.midi.note(1, 40 + k % 40, k % 2 * 100)
            interpreter.midi.tempo(100 + k % 50)

    thread = threading.Thread(target=play)
    thread.start()
    try:
        session.generate(200)
    finally:
        done.set()
        thread.join()
    assert not [line for line in interpreter.messages() if line.startswith("error")]
    assert calls(session, "set_cfg") and calls(session, "set_sketch")


# === ClockOut: the session's clock as 24 ppqn =====================================================


class FakeClockSession:
    def __init__(self, bpm: float):
        self.clock = Clock(bpm=bpm)


def test_clock_out_starts_on_a_bar_line_ticks_24_per_beat_follows_a_tempo_and_stops():
    sent: list[tuple[tuple[int, ...], float]] = []
    t0 = time.perf_counter()
    holder = FakeClockSession(300)  # a bar: 0.8 s; a tick: 8.3 ms
    on = threading.Event()
    on.set()
    clock = lc.ClockOut(lambda msg: sent.append((tuple(msg), time.perf_counter() - t0)), lambda: holder.clock,
                        block_seconds=0.5, enabled=on.is_set, heard=lambda: time.perf_counter() - t0).start()
    try:
        time.sleep(1.2)
        holder.clock = Clock(bpm=400, origin_block=3)  # bar 1 at 1.5 s
        time.sleep(0.8)
        on.clear()
        time.sleep(0.15)
    finally:
        clock.stop()
    messages = [msg for msg, _ in sent]
    assert messages[0] == lc.START and messages[-1] == lc.STOP and messages.count(lc.START) == 2
    starts = [t for msg, t in sent if msg == lc.START]
    assert starts[0] == pytest.approx(0.8, abs=0.02) and starts[1] == pytest.approx(1.5, abs=0.02)
    first = [t for msg, t in sent if msg == lc.TICK and t < starts[1] - 0.001]
    second = [t for msg, t in sent if msg == lc.TICK and starts[1] - 0.001 <= t]
    assert len(first) == pytest.approx((1.5 - 0.8) / (60 / 300 / 24), abs=2)
    assert np.median(np.diff(first)) == pytest.approx(60 / 300 / 24, abs=0.001)
    assert np.median(np.diff(second)) == pytest.approx(60 / 400 / 24, abs=0.001)
    late = np.array([sent_at - planned for planned, sent_at in clock.timing])
    assert np.percentile(late, 90) < 0.005  # the thread's own lateness (a busy 2-core machine)
    if MEASURE:
        print(f"\nclock out, thread: late median {np.median(late) * 1e3:.3f} ms, p99 {np.percentile(late, 99) * 1e3:.3f} ms, "
              f"max {late.max() * 1e3:.3f} ms over {len(late)} messages")


# === through JACK: real ports ======================================================================


@pytest.fixture
def jack(jack_server):
    return jack_server


def keyboard(name: str = "test-keys"):
    """A virtual JACK MIDI output of the test's own client ("<name>:out")."""
    out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name=name)
    out.open_virtual_port("out")
    return out


def connect(source: str, target: str) -> None:
    subprocess.run(["jack_connect", source, target], check=True, capture_output=True, timeout=5)


def wait_for(condition, timeout: float = 3.0, step: float = 0.0002) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


@pytest.mark.audio
def test_a_control_change_travels_through_jack_to_the_session_s_knob(jack):
    session, interpreter = make()
    interpreter.run("midi cc 1 -> cfg 0 .. 10 smooth 0 beats")
    port = lm.MidiIn(interpreter.midi, "virtual", api="jack").start()
    keys = keyboard()
    try:
        connect("test-keys:out", "lmdm:in")
        time.sleep(0.05)
        latencies = []
        for value in [127, 0, 64, 100, 3] * (8 if MEASURE else 1):
            seen = interpreter.midi.last_change((None, 1))
            sent = time.perf_counter()
            keys.send_message([0xB0, 1, value])
            assert wait_for(lambda: interpreter.midi.last_change((None, 1)) > seen)
            latencies.append(time.perf_counter() - sent)
            session.generate(1)
            assert calls(session, "set_cfg")[-1] == ("set_cfg", pytest.approx(10 * value / 127, abs=1e-5))
        assert max(latencies) < 0.1  # one JACK period is 16 ms here
        assert port.stats.used == len(latencies) and port.stats.malformed == 0
        if MEASURE:
            ms = np.array(latencies) * 1e3
            print(f"\nCC through JACK to the bridge: median {np.median(ms):.2f} ms, max {ms.max():.2f} ms (n={len(ms)})")
    finally:
        port.stop()
        keys.delete()


@pytest.mark.audio
def test_lmdm_connects_to_a_keyboard_by_name_and_plays_its_keys(jack):
    session, interpreter = make()
    interpreter.run("midi notes -> melody")
    keys = keyboard("test-piano")
    port = lm.MidiIn(interpreter.midi, "PIANO", api="jack").start()  # part of the name, any case
    try:
        assert port.name == "test-piano:out"
        keys.send_message([0x90, 62, 90])
        keys.send_message([0x90, 65, 90])
        assert wait_for(lambda: port.stats.used == 2)
        session.generate(1)
        assert set(calls(session, "set_sketch")[-1][2]) == {62, 65}
    finally:
        port.stop()
        keys.delete()


@pytest.mark.audio
def test_broken_bytes_through_jack_are_counted_and_the_music_goes_on(jack):
    session, interpreter = make()
    interpreter.run("midi cc 1 -> cfg smooth 0 beats")
    port = lm.MidiIn(interpreter.midi, "virtual", api="jack").start()
    keys = keyboard()
    try:
        connect("test-keys:out", "lmdm:in")
        time.sleep(0.05)
        for data in ([0x90, 60], [0xF4], [0x90, 200, 1], [0xF0, 1, 2, 0xF7], [0xE0, 0, 64], [0xB0, 1, 127]):
            keys.send_message(data)
        assert wait_for(lambda: port.stats.received == 6)
        assert port.stats == lm.MidiInStats(received=6, used=1, ignored=2, malformed=3, errors=0)
        session.generate(2)
        assert calls(session, "set_cfg") == [("set_cfg", 20.0)] and len(calls(session, "block")) == 2
    finally:
        port.stop()
        keys.delete()


@pytest.mark.audio
def test_an_unknown_port_is_one_line_listing_the_ports_and_the_others_open(jack):
    keys = keyboard("test-pads")
    lines: list[str] = []
    session = FakeLiveSession()
    interpreter = Interpreter(session)
    try:
        stop = lm.start_midi(interpreter, session, port_in="Launchpad", port_out="virtual", api="jack", say=lines.append)
        stop()
        assert lines[0].startswith("error: MIDI in: no MIDI input port matches 'Launchpad'; available: ")
        assert "'test-pads:out'" in lines[0] and lines[0].endswith("; playing on without it") and "\n" not in lines[0]
        assert lines[1].startswith("MIDI out: lmdm:out")
        with pytest.raises(lm.MidiError, match="no MIDI system 'nope' here; there is alsa, jack"):
            lm.MidiIn(m.MidiBridge(), "virtual", api="nope").start()
    finally:
        keys.delete()


def send_clock(out, bpm: float, ticks: int, start: bool = True) -> list[float]:
    """24 ppqn at ``bpm`` on absolute times (no drift); the times each tick was sent."""
    if start:
        out.send_message([0xFA])
    tick = 60 / bpm / 24
    t0, times = time.perf_counter() + 0.01, []
    for k in range(ticks):
        while (left := t0 + k * tick - time.perf_counter()) > 0:
            time.sleep(min(left, 0.002))
        times.append(time.perf_counter())
        out.send_message([0xF8])
    return times


@pytest.mark.audio
def test_the_tempo_of_a_clock_through_jack_is_followed(jack):
    session, interpreter = make()
    interpreter.run("midi clock in")
    port = lm.MidiIn(interpreter.midi, "virtual", api="jack").start()
    keys = keyboard("test-drums")
    try:
        connect("test-drums:out", "lmdm:in")
        time.sleep(0.05)
        results = []
        for bpm in ([150.0, 180.0] if not MEASURE else [60.0, 97.0, 120.0, 140.0, 174.0]):
            sent = send_clock(keys, bpm, 2 * lm.FOLLOW_TICKS if MEASURE else lm.FOLLOW_TICKS)
            assert wait_for(lambda: port.stats.received >= 1 and interpreter.midi.take().tempo is not None, 1)
            time.sleep(0.05)
            followed = interpreter.midi.take().tempo
            results.append((bpm, lm.ticks_bpm(sent), followed))
            assert followed == pytest.approx(bpm, abs=0.5)  # JACK moves each tick to its 16 ms period
            session.generate(1)
            assert interpreter.clock.bpm == pytest.approx(followed, abs=0.051)
            keys.send_message([0xFC])
        if MEASURE:
            for bpm, sent_bpm, followed in results:
                print(f"\nclock in through JACK: sent {bpm:g} BPM ({sent_bpm:.3f} as sent), followed {followed:.3f} "
                      f"after {2 * lm.FOLLOW_TICKS} ticks: error {followed - bpm:+.3f} BPM")
    finally:
        port.stop()
        keys.delete()


@pytest.mark.audio
def test_the_session_s_clock_goes_out_through_jack_as_24_ppqn(jack):
    session, interpreter = make()
    interpreter.run("tempo 300")  # a bar every 0.8 s, a tick every 8.3 ms
    drum = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name="test-machine")
    drum.ignore_types(timing=False)
    got: list[tuple[int, float]] = []
    drum.set_callback(lambda event, data: got.append((event[0][0], time.perf_counter())))
    drum.open_virtual_port("in")
    heard_from = time.perf_counter()
    stop = lm.start_midi(interpreter, session, port_out="virtual", api="jack", heard=lambda: time.perf_counter() - heard_from,
                         say=lambda line: None)
    try:
        connect("lmdm:out", "test-machine:in")
        session.generate(1)  # the session's clock: bar 1 at block 0, 240 BPM
        session.clock = interpreter.clock
        interpreter.run("midi clock out")
        assert wait_for(lambda: sum(status == 0xF8 for status, _ in got) >= 96, timeout=5, step=0.01)
        interpreter.run("midi clock out off")
        assert wait_for(lambda: got[-1][0] == 0xFC, timeout=1, step=0.01)
    finally:
        stop()
        drum.delete()
    statuses = [status for status, _ in got]
    assert statuses[0] == 0xFA and statuses[-1] == 0xFC and set(statuses) == {0xFA, 0xF8, 0xFC}
    ticks = np.array([t for status, t in got if status == 0xF8])
    intervals = np.diff(ticks)
    assert np.mean(intervals) == pytest.approx(60 / 300 / 24, rel=0.03)
    bar = (got[0][1] - heard_from) / 0.8
    assert abs(bar - round(bar)) * 0.8 < 0.03  # on a bar line (JACK delivers within its 16 ms period)
    if MEASURE:
        jitter = (ticks - ticks[0]) - np.arange(len(ticks)) * 60 / 300 / 24
        jitter -= jitter.mean()
        print(f"\nclock out through JACK (period 16 ms): {len(ticks)} ticks, interval {np.mean(intervals) * 1e3:.3f} ms "
              f"(ideal {60 / 300 / 24 * 1e3:.3f}), jitter std {jitter.std() * 1e3:.2f} ms, "
              f"peak {np.abs(jitter).max() * 1e3:.2f} ms")


# === `lmdm live --midi-in`: a real session, a real audio device (JACK dummy), real MIDI ==============


@pytest.mark.audio
def test_lmdm_live_follows_a_controller_through_a_set_reload_and_plays_on_past_a_missing_port(jack, tmp_path, monkeypatch):
    import re

    import lmdm.live as live
    import lmdm.stage as voice

    printed: list[str] = []
    monkeypatch.setattr(voice, "say", printed.append)
    monkeypatch.setattr(voice, "complain", printed.append)
    path = tmp_path / "set.lmdm"
    path.write_text('prompt "intro"\nmidi cc 1 -> cfg 0 .. 8 smooth 0 beats\n')
    argv = [str(path), "--watch", "--no-repl", "--seconds", "3", "--model", "tiny", "--osc-port", "0",
            "--midi-in", "virtual", "--midi-out", "no-such-drum-machine", "--midi-api", "jack"]
    result: list[int] = []
    player = threading.Thread(target=lambda: result.append(live.main(argv)), name="test-live-midi")
    player.start()
    keys = keyboard()
    osc = None
    try:
        assert wait_for(lambda: any("OSC on 127.0.0.1:" in line for line in printed), timeout=10, step=0.05)
        osc = OscClient(int(re.search(r"OSC on 127\.0\.0\.1:(\d+)", next(l for l in printed if "OSC on" in l)).group(1)))
        assert "lmdm live: MIDI in: lmdm:in (virtual)" in printed
        [missing] = [line for line in printed if "MIDI out" in line]
        assert missing.startswith("lmdm live: error: MIDI out: no MIDI output port matches 'no-such-drum-machine'; available: ")
        connect("test-keys:out", "lmdm:in")
        time.sleep(0.05)
        keys.send_message([0xB0, 1, 127])
        assert wait_for(lambda: "| cfg 8 |" in osc.status(), timeout=3, step=0.05)  # at the next block
        path.write_text('prompt "intro"\nmidi cc 1 -> cfg 0 .. 8 smooth 0 beats\nsteps 4\n')  # saved: re-run
        assert wait_for(lambda: "| steps 4 |" in osc.status(), timeout=3, step=0.05)
        keys.send_message([0xB0, 1, 0])
        assert wait_for(lambda: "| cfg 0 |" in osc.status(), timeout=3, step=0.05)  # the mapping survived
    finally:
        if osc is not None:
            osc.close()
        player.join(timeout=20)
        keys.delete()
    assert result == [0] and "| underruns 0 |" in printed[-1] and " | stopped after " in printed[-1]


@pytest.mark.skipif(not MEASURE, reason="measurement: LMDM_MIDI_MEASURE=1")
@pytest.mark.audio
def test_measure_cc_to_the_knob_of_a_playing_session(jack):
    """The whole path live: CC on a JACK port -> bridge -> the next block's start -> LiveSession.settings.cfg,
    with the tiny model playing on the JACK dummy device through the audio engine, as `lmdm live` does."""
    from lmdm.audio import AudioEngine, EngineConfig
    from lmdm.render import resolve_model
    from lmdm.session import LiveSession

    session = LiveSession(resolve_model("tiny"))
    interpreter = Interpreter(session)
    interpreter.run("midi cc 1 -> cfg 0 .. 10 smooth 0 beats")
    engine = AudioEngine(session.next_block, EngineConfig(model_rate=session.sample_rate, channels=session.channels,
                                                           ahead_blocks=max(1.0, 1.0 / session.block_seconds)))
    port = lm.MidiIn(interpreter.midi, "virtual", api="jack").start()
    keys = keyboard()
    engine.start()
    try:
        connect("test-keys:out", "lmdm:in")
        time.sleep(1.0)
        rng = np.random.default_rng(0)
        delivered, applied = [], []
        for k in range(20):
            time.sleep(rng.uniform(0.05, 0.4))
            value = 127 if k % 2 == 0 else 0
            sent = time.perf_counter()
            keys.send_message([0xB0, 1, value])
            assert wait_for(lambda: interpreter.midi.last_change((None, 1)) > 0 and interpreter.midi.take().controls[(None, 1)][1] == value / 127)
            delivered.append(time.perf_counter() - sent)
            assert wait_for(lambda: session.settings.cfg == pytest.approx(10 * value / 127), timeout=3)
            applied.append(time.perf_counter() - sent)
        d, a = np.array(delivered) * 1e3, np.array(applied) * 1e3
        print(f"\nlive, tiny model ({session.block_seconds:g} s blocks): CC -> bridge median {np.median(d):.1f} ms (max {d.max():.1f}); "
              f"CC -> session.settings.cfg median {np.median(a):.0f} ms, max {a.max():.0f} ms (n={len(a)})")
    finally:
        engine.stop()
        port.stop()
        keys.delete()
