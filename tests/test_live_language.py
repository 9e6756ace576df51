"""The language driving a real LiveSession: any sequence of live edits keeps the stream going."""

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lmdm
from lmdm_dsl import Interpreter
from tests.strategies import statements


@pytest.fixture(scope="module")
def model():
    return lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)


def _resets(statement) -> bool:
    return type(statement).__name__ == "Reset" or any(_resets(s) for s in getattr(statement, "body", ()))


broken_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(['prompt "unclosed', "tempo 9000", "steps 0", "cfg -1", "regime causal", "play nowhere", "at next: steps 2", "}{", 'prompt "a" * -1']),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.one_of(statements.map(lambda s: s.to_source()), broken_text), min_size=1, max_size=6), tmp=st.just(None))
def test_any_live_edits_keep_the_stream_going(model, edits, tmp) -> None:
    session = lmdm.LiveSession(model, prompt="warm up", steps=1)
    interp = Interpreter(session)  # no recorder: `record` replies with an error, nothing is written
    n = session.block_samples
    audio = [session.next_block()]
    for text in edits:
        replies = interp.run(text)  # never raises, whatever the text
        assert all(isinstance(r, str) for r in replies)
        audio.append(session.next_block())
    audio.append(session.render(3 * session.block_seconds))
    out = np.concatenate(audio)
    assert out.shape == (n * (len(edits) + 1) + round(3 * session.block_seconds * session.sample_rate), 1)
    assert np.isfinite(out).all()
    parsed_resets = any("reset" in t for t in edits)
    if not parsed_resets:
        assert session.stats.cache_resets == 0
    interp.close()


def test_a_scripted_set_changes_the_session_between_blocks(model) -> None:
    session = lmdm.LiveSession(model, prompt="intro", steps=2)
    interp = Interpreter(session)
    assert not any(r.startswith("error") for r in interp.run('tempo 120\nprompt "dub techno" * 0.7 + "pads" * 0.3\nsteps 3\nin 2 blocks: cfg 1.5'))
    session.next_block()
    s = session.stats
    assert s.steps == 3 and "dub techno" in s.prompt and s.cfg == 1.0
    assert '| prompt "dub techno" * 0.7 + "pads" * 0.3 |' in interp.run("status")[0]  # as written, not escaped
    session.next_block()
    session.next_block()
    assert session.stats.cfg == 1.5
    assert interp.run("tempo 9000")[0].startswith("error")
    assert interp.run("reset") == ["reset: history and KV cache cleared"]
    session.next_block()
    assert session.stats.cache_resets == 1 and session.stats.blocks == 4
    interp.close()


# --- any numbers at all (issue 20, class 1): finite blocks, and every error is one line ------------

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),  # nan, inf, subnormals, 1e308, ...
    st.sampled_from(["1e-310", "5e-324", "1e-300", "1e308", "1e999", "0", "-0", ".5", "0.01", "64", "65", "100000",
                     "100001", "1" + "0" * 5000, "9223372036854775807", "-1"]),
    st.integers(-10**6, 10**6).map(str),
)
TEMPLATES = [
    "tempo {0}", "steps {0}", "cfg {0}", "seed {0}",
    "delay {0} {u} strength {1} feedback {2} mix {3}", "delay {0} {u}", 'delay prompt <"a" "b"> mix {0}',
    "every {0} {u}: steps 2", "every {0} {u}: delay {1} {u}", "at next {0} {u}: cfg {1}", "in {0} {u}: tempo {1}",
    'prompt "a" * {0} + "b" * {1} over {2} {u}', "sketch loudness ramp {0} {1} over {2} {u}",
    'sketch melody "c4 e4 <g4 a4>"', "scene s = {{ every {0} {u}: steps 2; delay {1} {u} }}", "play s",
    "delay off", "cancel", "reset",
]
EDITS = st.tuples(
    st.sampled_from(TEMPLATES), st.lists(NUMBERS, min_size=4, max_size=4), st.sampled_from(["bar", "bars", "beat", "blocks", "block"])
).map(lambda t: t[0].format(*t[1], u=t[2]))
PYTHON_ERROR = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b")  # a message naming a Python exception is a bug's


def one_line_error(message: str) -> bool:
    """The reason on one line, then, for a text that did not parse, its source line and a caret."""
    lines = message.split("\n")
    return len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^")


@pytest.fixture(scope="module")
def sketch_model():
    from lmdm.conditioning.sketch import SKETCH_INPUTS

    return lmdm.build_model(lmdm.ModelConfig.tiny(extra_add_inputs=SKETCH_INPUTS), seed=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(edits=st.lists(EDITS, min_size=1, max_size=6))
def test_any_numbers_keep_an_offline_session_making_finite_blocks(sketch_model, edits) -> None:
    session = lmdm.LiveSession(sketch_model, prompt="warm up", steps=1, mix_input=True)
    session.feed_input(np.full((8 * session.block_samples, 1), 0.1, np.float32), sample_rate=session.sample_rate)
    interp = Interpreter(session)
    said = []
    for text in [e for e in edits]:
        said += interp.run(text)
        for _ in range(2):
            assert np.isfinite(session.next_block()).all()
        said += interp.messages()
    out = session.render(4 * session.block_seconds)
    said += interp.messages()
    assert np.isfinite(out).all() and session.stats.errors == 0  # no hook ever failed
    for message in said:
        if "error" in message:
            assert message.startswith("error: ") and one_line_error(message), message
            assert not PYTHON_ERROR.search(message.split("\n")[0]), message
    interp.close()


# --- every 4 bars after a tempo change (issue 20, class 10) ----------------------------------------


@pytest.fixture(scope="module")
def two_second_model():
    return lmdm.build_model(lmdm.ModelConfig.tiny(block_frames=50, context_blocks=2), seed=0)


def _fired(session, interp, change_at: int, change, blocks: int = 20) -> list[int]:
    """Blocks where `every 4 bars: cfg 2` fired, with `change` made before block `change_at`."""
    interp.run("every 4 bars: cfg 2")
    fired = []
    for block in range(blocks):
        if block == change_at:
            change()
        session.next_latents()
        fired += [int(re.search(r"\[block (\d+)\]", m).group(1)) for m in interp.messages() if m.endswith("] cfg 2")]
    return fired


def test_every_fires_on_bar_1_of_a_grid_restarted_by_a_scheduled_tempo(two_second_model) -> None:
    """Was 0, 4, 8, 11, 14: the entry moved onto block 10 was only seen at the next block."""
    session = lmdm.LiveSession(two_second_model, prompt="x", steps=1)
    assert session.block_seconds == 2.0  # 4 bars at 120 BPM are 4 blocks
    interp = Interpreter(session)
    assert _fired(session, interp, 10, lambda: interp.run("at next block: tempo 120")) == [0, 4, 8, 10, 14, 18]
    assert session.clock.origin_block == 10 == interp.clock.origin_block


@pytest.mark.parametrize("how", ["prompt", "set_tempo"])
def test_every_fires_on_bar_1_of_a_grid_restarted_from_python(two_second_model, how) -> None:
    session = lmdm.LiveSession(two_second_model, prompt="x", steps=1)
    interp = Interpreter(session)
    change = (lambda: session.set_prompt("house at 120 bpm")) if how == "prompt" else (lambda: session.set_tempo(120))
    assert _fired(session, interp, 10, change) == [0, 4, 8, 10, 14, 18]  # today: 0, 4, 8, 11, 14


# === bar-quantised changes land on their bar's sample (issue #18) =================================


def _first_change(a: np.ndarray, b: np.ndarray) -> int | None:
    d = np.nonzero(np.abs(a - b).max(axis=1) > 0)[0]
    return int(d[0]) if len(d) else None


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bpm=st.floats(60.0, 180.0), typed_at=st.integers(0, 2), change=st.sampled_from(['prompt "glass choir"', "cfg 3", "steps 3"]))
def test_a_change_at_the_next_bar_is_heard_from_the_bar_lines_sample(model, bpm, typed_at, change) -> None:
    """`at next bar:` typed any time before the bar: the stream is the one without the change up
    to the bar line's sample (the tempo's bar 1 at block 0) and changed from that sample on, whether
    or not the bar line falls on a block start (LiveSession.landing makes the block holding it twice)."""
    S, rate = model.block_samples, model.sample_rate
    bar = 4 * 60.0 / bpm  # seconds; bar 1 at 0: the next bar line after block `typed_at` starts
    blocks = int((bar * (1 + int(typed_at * S / rate / bar)) * rate) // S) + 3
    plain = lmdm.LiveSession(model, prompt="dub", steps=2, seed=3)
    plain_interp = Interpreter(plain)
    plain_interp.run(f"tempo {bpm!r}")
    reference = plain.read(blocks * S)
    session = lmdm.LiveSession(model, prompt="dub", steps=2, seed=3)
    interp = Interpreter(session)
    interp.run(f"tempo {bpm!r}")
    audio = [session.read(typed_at * S)]
    reply = interp.run(f"at next bar: {change}")[0]
    audio.append(session.read((blocks - typed_at) * S))
    line = math.ceil(typed_at * S / rate / bar - 1e-9) * bar
    line = line if line > typed_at * S / rate + 1e-9 or typed_at == 0 else line + bar
    expected = round(line * rate)
    played = np.concatenate(audio)
    first = _first_change(played, reference)  # a sample may agree by chance (the stream starts from silence)
    assert np.array_equal(played[:expected], reference[:expected]) and first is not None and expected <= first < expected + 8, (reply, expected, first)
    assert not interp.messages() or all(not m.startswith("error") for m in interp.messages())
