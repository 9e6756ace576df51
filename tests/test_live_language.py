"""The language driving a real LiveSession: any sequence of live edits keeps the stream going."""

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
    session.next_block()
    session.next_block()
    assert session.stats.cfg == 1.5
    assert interp.run("tempo 9000")[0].startswith("error")
    assert interp.run("reset") == ["reset: history and KV cache cleared"]
    session.next_block()
    assert session.stats.cache_resets == 1 and session.stats.blocks == 4
    interp.close()
