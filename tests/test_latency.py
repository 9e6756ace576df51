"""The latency benchmark (lmdm/eval/latency.py): its pure parts, and one real trial on JACK's dummy device."""

import numpy as np
import pytest

from lmdm.eval.latency import first_change, heard_at, summary, Trial


def test_the_first_changed_sample_is_found_within_a_tolerance() -> None:
    a = np.zeros((100, 1), dtype=np.float32)
    b = a.copy()
    assert first_change(a, b) is None
    b[37:] += 1e-5  # below the tolerance
    assert first_change(a, b) is None
    b[61, 0] = 0.5
    assert first_change(a, b) == 61
    assert first_change(a[:50], b) is None  # only the common length counts


def test_a_sample_is_heard_when_the_device_takes_it_interpolated_between_readings() -> None:
    timeline = [(10.0, 0), (10.1, 0), (10.2, 1600), (10.3, 3200)]
    assert heard_at(0, timeline) == pytest.approx(10.1)
    assert heard_at(800, timeline) == pytest.approx(10.15)
    assert heard_at(3199, timeline) == pytest.approx(10.3 - 0.1 / 1600)
    assert heard_at(3200, timeline) is None  # not played yet


def test_the_summary_reports_median_p95_and_max() -> None:
    s = summary([Trial("prompt", 3, float(ms)) for ms in range(100, 1100, 100)])
    assert s["trials"] == 10 and s["median_ms"] == 550 and s["max_ms"] == 1000 and 900 < s["p95_ms"] < 1000


@pytest.mark.audio
def test_one_change_is_heard_after_the_audio_ahead_and_within_two_blocks_more(jack_server) -> None:
    import lmdm
    from lmdm.eval.latency import trial

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    block = model.config.block_seconds
    t = trial(model, "prompt", seed=3, wait_s=3 * block, after_s=1.0 + 3 * block, threads=1, ahead=1.0)
    assert 0 < t.latency_ms < (1.0 + 2 * block + 0.5) * 1000


def test_an_engine_with_no_device_open_reports_no_output_latency() -> None:
    from lmdm.audio import AudioEngine

    assert AudioEngine(lambda: np.zeros((160, 1), dtype=np.float32)).output_latency() == 0.0


@pytest.mark.audio
def test_an_open_device_reports_its_output_latency(jack_server) -> None:
    from lmdm.audio import AudioEngine, EngineConfig

    with AudioEngine(lambda: np.zeros((1600, 1), dtype=np.float32), EngineConfig(model_rate=jack_server.rate)) as engine:
        assert 0 < engine.output_latency() < 1.0


@pytest.mark.audio
def test_a_held_session_splices_its_changes_and_keeps_playing(jack_server) -> None:
    import lmdm
    from lmdm.eval.latency import hold

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    held = hold(model, seconds=3.0, every=0.5, seed=1, threads=1, ahead=model.config.block_seconds, splice=True, margin_ms=150.0, splice_steps=2)
    assert held.changes == 5 and 1 <= held.splices + held.late_splices <= held.changes
    assert held.seconds > 2.0 and held.underruns == 0


def test_the_reply_names_where_a_statement_lands() -> None:
    from lmdm.eval.latency import BarTrial, aimed_block

    assert aimed_block('at block 6 + 0.25: prompt "x"') == 6.25 and aimed_block("at block 7: cfg 2") == 7.0
    assert BarTrial(120.0, 900.0, 1000, 1003, 0).exact and not BarTrial(120.0, 900.0, 1000, 999, 0).exact
    assert not BarTrial(120.0, 900.0, 1000, 1000 + 640, 0).exact  # a block start after it: the old behaviour


@pytest.mark.audio
def test_a_change_at_the_next_bar_is_heard_from_its_bar_line_through_the_device(jack_server) -> None:
    import lmdm
    from lmdm.eval.latency import bar_trial

    model = lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)
    t = bar_trial(model, seed=2, wait_s=1.3, tempo=137.0, threads=1, ahead=1.0)
    assert t.exact and t.underruns == 0 and t.bar_sample % model.block_samples != 0, t  # a bar line inside a block
