"""The stream's clock: its features, the prompt's tempo, the any-tempo corpus, the grown init."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmdm.conditioning.clock import (
    CLOCK_DIM, beat_onsets, block_clock_features, check_tempo, clock_features, grid_phases, mix_tempo, prompt_tempo, window_bpm,
)
from lmdm.corpus import make_example
from lmdm.corpus.styles import ANY_TEMPO
from lmdm.model.config import ModelConfig
from lmdm.train.loop import ADD_WEIGHT, grow_add_inputs


@given(st.floats(20, 400), st.integers(1, 8), st.floats(0, 100))
@settings(max_examples=50, deadline=None)
def test_window_bpm_reads_back_the_grid_tempo(bpm: float, meter: int, start: float) -> None:
    beat, _ = grid_phases(start, bpm, meter, 25, 25.0)
    assert float(window_bpm(torch.from_numpy(beat)[None], 25.0)[0]) == pytest.approx(bpm, rel=1e-3)


def test_clock_features_are_unit_circles_and_absent_is_zero() -> None:
    beat, bar = grid_phases(0.0, 96.0, 4, 50, 25.0)
    f = clock_features(torch.from_numpy(beat)[None].repeat(2, 1), torch.from_numpy(bar)[None].repeat(2, 1),
                       torch.tensor([96.0, 96.0]), torch.tensor([1.0, 0.0]))
    assert f.shape == (2, CLOCK_DIM, 50)
    assert torch.allclose(f[0, 0] ** 2 + f[0, 1] ** 2, torch.ones(50), atol=1e-5)
    assert float(f[0, 4, 0]) == pytest.approx(math.log2(96 / 120))
    assert f[0, 5].eq(1).all() and f[1].eq(0).all()


def test_block_features_continue_across_blocks() -> None:
    """Block n's frames are the continuation of block n-1's grid (no phase jump at the boundary)."""
    a = block_clock_features(137.0, 4, 0, 3, 25, 25.0)
    b = block_clock_features(137.0, 4, 0, 4, 25, 25.0)
    whole_beat, _ = grid_phases(3 * 25 / 25.0 * 137 / 60, 137.0, 4, 50, 25.0)
    ref = np.sin(2 * np.pi * whole_beat)
    assert np.allclose(torch.cat((a, b), 2)[0, 0].numpy(), ref, atol=1e-4)


@pytest.mark.parametrize("text,bpm", [
    ("lo-fi hip hop at 80 bpm", 80.0), ("96bpm techno", 96.0), ("tempo 140, dark", 140.0),
    ("house, 122 beats per minute", 122.0), ("tempo: 90.5", 90.5), ("warm piano chords", None), ("at 5 bpm", None),
])
def test_prompt_tempo(text: str, bpm: float | None) -> None:
    assert prompt_tempo(text) == bpm


def test_mix_tempo_takes_the_heaviest_part_naming_one() -> None:
    assert mix_tempo([("techno at 130 bpm", 0.3), ("ambient pads", 0.5), ("house 120bpm", 0.2)]) == 130.0
    assert mix_tempo([("ambient pads", 1.0)]) is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0, 19.9, 401, True, "120"])
def test_check_tempo_names_the_range(bad: object) -> None:
    with pytest.raises(ValueError, match="between 20 and 400 BPM"):
        check_tempo(bad)


def test_any_tempo_leaves_share_zero_songs_unchanged_and_spreads_the_rest() -> None:
    a, b = make_example(5, 2.0), make_example(5, 2.0, any_tempo=0.0)
    assert a.attributes.tempo == b.attributes.tempo and np.array_equal(a.audio, b.audio)
    tempi = {make_example(s, 0.5, style="techno", any_tempo=1.0).attributes.tempo for s in range(12)}
    assert all(ANY_TEMPO[0] <= t <= ANY_TEMPO[1] for t in tempi)
    assert min(tempi) < 122 or max(tempi) > 138  # outside techno's own 122-138
    ex = make_example(3, 4.0, style="ambient", any_tempo=1.0)
    assert str(ex.attributes.tempo) in ex.caption  # the caption names the tempo it was rendered at
    with pytest.raises(ValueError, match="any_tempo"):
        make_example(3, 1.0, any_tempo=1.5)


def test_grown_add_inputs_start_at_zero_and_keep_the_old_columns() -> None:
    old = ModelConfig.from_dict({**ModelConfig().to_dict(), "extra_add_inputs": [["melody", 13]]})
    new = ModelConfig.from_dict({**old.to_dict(), "extra_add_inputs": [["melody", 13], ["clock", 6]]})
    w = torch.randn(old.width, old.add_dim)
    grown = grow_add_inputs({ADD_WEIGHT: w, "other": torch.ones(1)}, old, new)[ADD_WEIGHT]
    assert grown.shape == (old.width, new.add_dim)
    assert torch.equal(grown[:, : old.add_dim], w) and grown[:, old.add_dim :].eq(0).all()
    other = ModelConfig.from_dict({**new.to_dict(), "depth": old.depth + 1})
    assert grow_add_inputs({ADD_WEIGHT: w}, old, other)[ADD_WEIGHT] is w  # anything else: left to load_weights


def _clock_model():
    import lmdm

    cfg = lmdm.ModelConfig.tiny()
    cfg = lmdm.ModelConfig.from_dict({**cfg.to_dict(), "extra_add_inputs": [["melody", 13], ["rhythm", 2], ["loudness", 2], ["clock", 6]]})
    return lmdm.build_model(cfg, seed=0)


def test_session_clock_from_prompt_set_tempo_and_the_language() -> None:
    import lmdm
    from lmdm_dsl.interpreter import Interpreter

    model = _clock_model()
    session = lmdm.LiveSession(model, prompt="house at 96 bpm", steps=1, cfg=1.0)
    assert session.supports("clock") and session.tempo_asked and session.clock.bpm == 96.0
    add = session._target_add(0, False, {})
    where = model.config.add_slice("clock")
    assert torch.allclose(add[:, where], block_clock_features(96.0, 4, 0, 0, model.config.block_frames, model.config.frame_rate))
    session.next_block()
    session.set_prompt("techno 132bpm")
    session.next_block()
    assert session.clock.bpm == 132.0 and session.clock.origin_block == 1
    with pytest.raises(ValueError, match="between 20 and 400"):
        session.set_tempo(1e9)
    interp = Interpreter(session)
    interp.run("tempo 150")
    session.next_block()
    assert session.clock.bpm == 150.0 and interp.clock.bpm == 150.0
    session.set_tempo(100.0)  # from Python: the language follows at the next block
    session.next_block()
    session.next_block()
    assert interp.clock.bpm == 100.0 and interp.clock.origin_block == session.clock.origin_block
    interp.close()


def test_no_tempo_asked_means_no_clock_input() -> None:
    import lmdm

    session = lmdm.LiveSession(_clock_model(), prompt="ambient pads", steps=1, cfg=1.0)
    assert not session.tempo_asked and session._target_add(0, False, {}) is None
    assert session.clock.bpm == 120.0  # sketches and the delay still read it


@given(st.floats(20, 400), st.integers(0, 5), st.integers(1, 40), st.sampled_from([(25, 25.0), (8, 12.5), (50, 25.0)]))
@settings(max_examples=60, deadline=None)
def test_beat_onsets_mark_every_beat_once_across_blocks(bpm: float, origin: int, blocks: int, geometry: tuple[int, float]) -> None:
    frames, rate = geometry
    stream = np.concatenate([beat_onsets(bpm, origin, b, frames, rate) for b in range(origin, origin + blocks)])
    assert set(np.unique(stream)) <= {0.0, 1.0}
    # frame f holds [f, f + 1) / rate: the beat k at k * 60 / bpm s falls in frame floor(k * 60 / bpm * rate)
    seconds = blocks * frames / rate
    expected = np.zeros(len(stream), dtype=np.float32)
    k = np.arange(math.ceil(seconds * bpm / 60.0) + 1)
    at = np.floor(k * 60.0 / bpm * rate + 1e-6).astype(int)
    expected[at[at < len(stream)]] = 1.0
    assert np.array_equal(stream, expected)
    one_block = beat_onsets(bpm, 0, 0, frames * blocks, rate)  # the same grid made at once
    assert np.array_equal(stream, one_block)


def test_the_clock_beat_is_the_rhythm_until_a_rhythm_sketch_or_the_player_gives_one() -> None:
    import lmdm

    model = _clock_model()
    cfg = model.config
    rhythm = slice(cfg.add_slice("rhythm").start, cfg.add_slice("rhythm").start + 1)
    session = lmdm.LiveSession(model, prompt="lo-fi at 90 bpm", steps=1, cfg=1.0)
    got = session._target_add(2, False, {})[0, rhythm][0].numpy()
    assert np.array_equal(got, beat_onsets(90.0, 0, 2, cfg.block_frames, cfg.frame_rate)) and got.sum() > 0
    player = np.zeros(cfg.block_frames, dtype=np.float32)
    player[3] = 1.0
    assert np.array_equal(session._target_add(2, False, {"rhythm": player})[0, rhythm][0].numpy(), player)
    assert session._target_add(2, True, {})[0, rhythm].eq(0).all()  # hearing the player: no sketch
    session.set_sketch(rhythm="x ~ ~ ~")
    session.next_block()
    mine = session._target_add(2, False, {})[0, rhythm][0].numpy()  # the sketch started at block 0
    # its frames 16..23: the pattern's one hit per bar (40 frames) is not there, the clock's beat is
    assert not mine.any() and beat_onsets(90.0, 0, 2, cfg.block_frames, cfg.frame_rate).any()
    session.set_sketch(rhythm=None)
    session.set_clock_beat(False)
    session.next_block()
    assert session._target_add(2, False, {})[0, rhythm].eq(0).all()
    with pytest.raises(ValueError, match="clock_beat"):
        session.set_clock_beat("yes")
    quiet = lmdm.LiveSession(model, prompt="ambient pads", steps=1, cfg=1.0)  # no tempo asked: nothing
    assert quiet._target_add(0, False, {}) is None


@given(bpm=st.integers(60, 180), block=st.integers(0, 40), origin=st.integers(0, 40))
@settings(max_examples=60, deadline=None)
def test_the_beat_grid_read_off_an_annotation_is_the_clocks(bpm: int, block: int, origin: int) -> None:
    """Training's beat grid (from a song's beat_phase) marks the same frames as the stream's (from its clock)."""
    from lmdm.conditioning.clock import grid_phases, phase_onsets

    frames, rate = 25, 25.0
    beats_at_start = (block - origin) * frames * bpm / 60.0 / rate
    phase, _ = grid_phases(beats_at_start, bpm, 4, frames, rate)
    assert np.array_equal(phase_onsets(torch.from_numpy(phase)[None])[0].numpy(), beat_onsets(bpm, origin, block, frames, rate))
