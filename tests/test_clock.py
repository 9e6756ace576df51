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


# --- a fractional origin: bar 1 a fraction of a block in (Ableton Link's bar lines fall anywhere) ----------


GEOMETRY = st.sampled_from([(25, 25.0), (8, 25.0), (50, 25.0), (8, 12.5)])  # (frames a block, frames a second)


@given(bpm=st.floats(20, 400), meter=st.integers(1, 16), origin=st.floats(-50, 50), first=st.integers(-60, 60),
       blocks=st.integers(1, 12), geometry=GEOMETRY)
@settings(max_examples=80, deadline=None)
def test_bars_with_a_fractional_origin_run_on_across_blocks_and_bar_0_starts_exactly_there(
        bpm: float, meter: int, origin: float, first: int, blocks: int, geometry: tuple[int, float]) -> None:
    from lmdm_dsl.clock import Clock, block_at_or_after, boundary_at
    from lmdm_dsl.values import Span

    frames, rate = geometry
    block_s = frames / rate
    clock = Clock(bpm, meter, origin)
    assert clock.cycle_at(origin, block_s) == 0.0  # bar 0 starts at the origin itself, a fraction of a block in
    per_block = block_s / clock.bar_seconds
    for b in range(first, first + blocks):  # each block starts where the last one ended, in bars
        assert clock.cycle_at(b + 1, block_s) == pytest.approx(clock.cycle_at(b, block_s) + per_block, abs=1e-9)
    # the model's clock channels and the beat as a rhythm: the blocks one after another are one grid
    beats_at_start = (first - origin) * block_s * bpm / 60.0
    beat, bar = grid_phases(beats_at_start, bpm, meter, frames * blocks, rate)
    features = torch.cat([block_clock_features(bpm, meter, origin, b, frames, rate) for b in range(first, first + blocks)], 2)[0]
    assert torch.allclose(features[0], torch.from_numpy(np.sin(2 * np.pi * beat)), atol=2e-4)
    assert torch.allclose(features[2], torch.from_numpy(np.sin(2 * np.pi * bar)), atol=2e-4)
    assert torch.allclose(features[3], torch.from_numpy(np.cos(2 * np.pi * bar)), atol=2e-4)
    onsets = np.concatenate([beat_onsets(bpm, origin, b, frames, rate) for b in range(first, first + blocks)])
    starts = beats_at_start + np.arange(frames * blocks + 1) * bpm / 60.0 / rate  # frame edges, in beats from bar 0
    expected = (np.floor(starts[1:] - 1e-9) > np.floor(starts[:-1] - 1e-9)).astype(np.float32)
    assert np.array_equal(onsets, expected)
    # bar 0 is a beat: the frame holding the origin has an onset (when the origin is in these blocks)
    at = math.floor((origin - first) * frames + 1e-6)
    if 0 <= at < len(onsets) and abs((origin - first) * frames - round((origin - first) * frames)) > 1e-6:
        assert onsets[at] == 1.0
    # `at next bar` from a block before the origin fires at the first block at or after it, and no later
    if first <= origin:
        assert block_at_or_after(boundary_at(clock, Span(1, "bar"), first, block_s)) == math.ceil(origin - 1e-9)


@given(bpm=st.floats(40, 300), origin=st.floats(0, 20), block=st.integers(0, 40), notes=st.lists(st.integers(40, 90), min_size=1, max_size=4))
@settings(max_examples=50, deadline=None)
def test_a_pattern_and_the_keys_played_count_from_a_fractional_origin(bpm: float, origin: float, block: int, notes: list[int]) -> None:
    from lmdm_dsl.clock import Clock, pattern_frames
    from lmdm_dsl.midi import note_frames
    from lmdm_dsl.mini import parse_pattern

    frames, rate = 25, 25.0
    clock = Clock(bpm, 4, origin)
    t = (block - origin) + np.arange(frames) / rate  # seconds from bar 0 of each frame's start (1 s blocks)
    beats = np.floor(t * bpm / 60.0 + 1e-9).astype(np.int64)
    assert np.array_equal(note_frames(notes, bpm, origin, block, 1.0, frames, rate), np.asarray(notes, np.float32)[beats % len(notes)])
    hits = pattern_frames(parse_pattern("x ~ ~ ~", "rhythm"), clock, block, 1.0, rate)  # one hit a bar, on bar lines
    bar_lines = np.arange(math.ceil((block - origin) / clock.bar_seconds - 1e-9), math.floor((block + 1 - origin) / clock.bar_seconds) + 1)
    at = np.floor((origin + bar_lines * clock.bar_seconds - block) * rate + 1e-9).astype(int)
    expected = np.zeros(frames, np.float32)
    expected[at[(at >= 0) & (at < frames)]] = 1.0
    assert np.array_equal(hits, expected)


def test_a_clock_origin_must_be_a_finite_number() -> None:
    from lmdm_dsl.clock import Clock, nudge

    for bad in (float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="origin_block must be a finite number"):
            Clock(origin_block=bad)
    assert Clock(origin_block=np.int64(3)) == Clock(origin_block=3) == Clock(origin_block=3.0)
    a = Clock(120.0, 4, 10.0)
    assert nudge(a, Clock(120.0, 4, 10.002), 1.0, 0.04) == pytest.approx(0.002)  # Link following the drift
    assert nudge(a, Clock(120.0, 4, 10.5), 1.0, 0.04) is None and nudge(a, Clock(121.0, 4, 10.0), 1.0, 0.04) is None


def test_the_session_takes_a_fractional_origin_and_the_language_follows_it() -> None:
    import lmdm
    from lmdm_dsl.interpreter import Interpreter

    model = _clock_model()
    cfg = model.config
    session = lmdm.LiveSession(model, prompt="x", steps=1, cfg=1.0)
    interp = Interpreter(session)
    interp.run("every 1 bar: cfg 2")
    session.next_latents()
    session.set_tempo(100.0, origin=3.37)  # bar 1 a fraction of a block after the next
    session.next_latents()
    assert session.clock == lmdm_dsl_clock(100.0, 4, 3.37) and session.tempo_asked
    where = cfg.add_slice("clock")
    add = session._target_add(5, False, {})
    assert torch.allclose(add[:, where], block_clock_features(100.0, 4, 3.37, 5, cfg.block_frames, cfg.frame_rate))
    session.next_latents()
    assert interp.clock == session.clock
    assert any("bar 1 at block 3.37" in m for m in interp.messages())
    assert interp.scheduled[0][0] == 4  # `every 1 bar` re-armed on the new bar 1: the first block at or after 3.37
    session.set_tempo(100.0, origin=3.37 + 0.002 / session.block_seconds)  # nudged 2 ms: taken quietly, nothing re-armed
    before = interp.scheduled
    session.next_latents()  # block 3 holds bar 1: `every 1 bar` lands inside it (LiveSession.landing), then re-arms
    assert interp.clock == session.clock and interp.messages() == ["[block 3] cfg 2"]  # no tempo message: the nudge was quiet
    assert interp.scheduled[0][1] == before[0][1] and interp.scheduled[0][0] > before[0][0]
    with pytest.raises(ValueError, match="origin must be a finite number of blocks"):
        session.set_tempo(100.0, origin=float("nan"))
    with pytest.raises(ValueError, match="at_block or origin, not both"):
        session.set_tempo(100.0, at_block=3, origin=3.5)
    interp.close()


def lmdm_dsl_clock(bpm: float, meter: int, origin: float):
    from lmdm_dsl.clock import Clock

    return Clock(bpm, meter, origin)
