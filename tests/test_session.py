"""LiveSession: what an embedding app relies on."""

import collections
import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lmdm
from lmdm.conditioning.text import lerp


@pytest.fixture(scope="module")
def model():
    return lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0)


def test_next_block_and_render_shapes(model) -> None:
    s = lmdm.LiveSession(model, prompt="lo-fi hip hop", steps=2)
    b = s.next_block()
    assert b.shape == (model.block_samples, 1) and b.dtype == np.float32 and np.isfinite(b).all()
    a = s.render(seconds=0.77)
    assert a.shape == (round(0.77 * model.sample_rate), 1)
    assert s.render(0).shape == (0, 1)
    with pytest.raises(ValueError):
        s.render(-1)


@settings(max_examples=10, deadline=None)
@given(cuts=st.lists(st.floats(0.0, 0.9), min_size=1, max_size=5))
def test_consecutive_renders_are_one_stream(model, cuts) -> None:
    """Any split of render() calls gives the same samples as one call: nothing lost, nothing repeated."""
    a = lmdm.LiveSession(model, prompt="house", steps=2, seed=7)
    parts = [a.render(c) for c in cuts]
    total = sum(len(p) for p in parts)
    b = lmdm.LiveSession(model, prompt="house", steps=2, seed=7)
    whole = b.read(total)
    assert np.array_equal(np.concatenate(parts), whole)


def test_same_seed_same_audio_and_other_seed_differs(model) -> None:
    a = lmdm.LiveSession(model, prompt="jazz", seed=1, steps=2).render(1.5)
    b = lmdm.LiveSession(model, prompt="jazz", seed=1, steps=2).render(1.5)
    c = lmdm.LiveSession(model, prompt="jazz", seed=2, steps=2).render(1.5)
    assert np.array_equal(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize("regime", ["encdec", "block_causal"])
def test_uncached_session_sounds_the_same(model, regime) -> None:
    kw = dict(prompt="dub", regime=regime, steps=3, seed=4)
    a = lmdm.LiveSession(model, use_cache=True, **kw)
    b = lmdm.LiveSession(model, use_cache=False, **kw)
    la = torch.cat([a.next_latents() for _ in range(8)], 2)
    lb = torch.cat([b.next_latents() for _ in range(8)], 2)
    assert (la - lb).abs().max() <= 1e-4


def test_prompt_swap_keeps_history_and_cache(model) -> None:
    s = lmdm.LiveSession(model, prompt="techno", steps=2)
    s.next_block()
    s.next_block()
    s.set_prompt([("acid bass", 0.7), ("ambient pads", 0.3)])
    assert s.stats.prompt == "techno"  # takes effect at the next block, not before
    s.next_block()
    st_ = s.stats
    assert st_.prompt == '"acid bass" * 0.7 + "ambient pads" * 0.3'
    assert st_.cache_resets == 0 and st_.cache_rebuilds == 0 and st_.blocks == 3
    assert s.stream.history.shape[2] > model.config.context_frames  # history kept growing


def test_prompt_glide_moves_gradually(model) -> None:
    s = lmdm.LiveSession(model, prompt="a", steps=1)
    start = s._cond
    s.set_prompt("b", over_blocks=4)
    target = model.encode_prompt("b")
    for k in range(1, 5):
        s.next_latents()
        expected = lerp(start, target, k / 4)
        assert torch.allclose(s._cond.tokens, expected.tokens)
    s.next_latents()
    assert torch.allclose(s._cond.tokens, target.tokens) and s._glide is None


def test_reset_is_counted_and_replays_a_fresh_start(model) -> None:
    s = lmdm.LiveSession(model, prompt="bossa", steps=2, seed=3)
    first = s.next_latents()
    s.next_latents()
    s.reset()
    assert s.stats.cache_resets == 0  # queued until the next block
    again = s.next_latents()
    assert s.stats.cache_resets == 1
    assert torch.allclose(first, again, atol=1e-6)


def test_setters_validate_at_once(model) -> None:
    s = lmdm.LiveSession(model)
    for call, arg, msg in [
        (s.set_steps, 0, "steps"), (s.set_steps, 2.5, "steps"), (s.set_cfg, float("nan"), "cfg"),
        (s.set_cfg, 99, "cfg"), (s.set_seed, -1, "seed"), (s.set_regime, "causal", "regime"),
        (s.set_sampler, "ddim", "sampler"), (s.set_prompt, [("a", -1.0)], "weights"),
        (s.set_prompt, [("a", 0.0)], "zero"), (s.set_prompt, [], "at least one"),
    ]:
        with pytest.raises(ValueError, match=msg):
            call(arg)
    with pytest.raises(ValueError, match="over_blocks"):
        s.set_prompt("x", over_blocks=-2)
    with pytest.raises(ValueError):
        lmdm.LiveSession(model, steps=100)
    s.next_block()  # nothing invalid was queued
    assert s.stats.steps == 8


def test_knobs_apply_at_next_block(model) -> None:
    s = lmdm.LiveSession(model, steps=2)
    s.set_steps(3)
    s.set_cfg(1.5)
    s.set_regime("encdec")
    s.set_sampler("euler")
    assert s.stats.steps == 2
    s.next_block()
    st_ = s.stats
    assert (st_.steps, st_.cfg, st_.regime, st_.sampler) == (3, 1.5, "encdec", "euler")
    s.set_regime("block_causal")
    s.next_block()
    assert s.stats.cache_rebuilds == 1 and s.stats.cache_resets == 0


def test_hooks_see_block_indices_and_errors_do_not_stop_the_stream(model) -> None:
    s = lmdm.LiveSession(model, steps=1)
    seen = []
    s.add_hook(lambda sess, i: seen.append(i))

    def broken(sess, i):
        raise RuntimeError("typo in a hook")

    s.add_hook(broken)
    for _ in range(3):
        assert np.isfinite(s.next_block()).all()
    assert seen == [0, 1, 2]
    assert s.stats.errors == 3 and "typo in a hook" in s.errors[-1]
    s.remove_hook(broken)
    s.next_block()
    assert s.stats.errors == 3


def test_a_hook_can_change_the_prompt_for_the_block_it_precedes(model) -> None:
    s = lmdm.LiveSession(model, prompt="one", steps=1)
    s.add_hook(lambda sess, i: sess.set_prompt("two") if i == 1 else None)
    s.next_block()
    assert s.stats.prompt == "one"
    s.next_block()
    assert s.stats.prompt == "two"


def test_setters_from_another_thread_while_generating(model) -> None:
    s = lmdm.LiveSession(model, steps=1)
    stop = threading.Event()

    def performer():
        i = 0
        while not stop.is_set():
            s.set_prompt(f"prompt {i}")
            s.set_cfg(1.0 + (i % 3) * 0.5)
            i += 1

    t = threading.Thread(target=performer)
    t.start()
    try:
        audio = s.render(3.0)
    finally:
        stop.set()
        t.join()
    assert np.isfinite(audio).all() and s.stats.cache_resets == 0


def test_stats_report_timing(model) -> None:
    s = lmdm.LiveSession(model, steps=1)
    s.render(1.0)
    st_ = s.stats
    assert st_.blocks == int(np.ceil(1.0 / s.block_seconds))
    assert st_.mean_compute_ms > 0 and st_.real_time_factor > 0 and st_.cache_bytes > 0
    assert st_.seconds == pytest.approx(st_.blocks * s.block_seconds)


def test_block_boundaries_are_no_jumpier_than_the_inside_of_blocks(model) -> None:
    s = lmdm.LiveSession(model, prompt="drone", steps=2)
    audio = s.render(8 * s.block_seconds)[:, 0]
    d = np.abs(np.diff(audio))
    n = s.block_samples
    boundary = d[n - 1 :: n]
    inside = np.delete(d, np.arange(n - 1, len(d), n))
    assert boundary.max() <= inside.max()


@pytest.mark.parametrize("regime", ["encdec", "block_causal"])
def test_cached_equals_uncached_across_a_prompt_change(model, regime) -> None:
    """encdec re-encodes its context every block; block_causal keeps the K/V each chunk was committed
    with, and the uncached reference reads each chunk under the prompt it was made under
    (BlockStream.made_under): in both regimes the cache is the exact counterpart of the reference."""
    outs = []
    for use_cache in (True, False):
        s = lmdm.LiveSession(model, prompt="dub", regime=regime, steps=2, seed=4, use_cache=use_cache)
        lat = [s.next_latents() for _ in range(5)]
        s.set_prompt("glass choir")
        lat += [s.next_latents() for _ in range(6)]  # past the window: chunks of both prompts in the context
        assert s.stats.cache_resets == 0 and s.stats.cache_rebuilds == 0
        outs.append(torch.cat(lat, 2))
    assert (outs[0] - outs[1]).abs().max() <= 1e-4
    alone = lmdm.LiveSession(model, prompt="glass choir", regime=regime, steps=2, seed=4)
    later = torch.cat([alone.next_latents() for _ in range(11)], 2)
    assert (later[:, :, -model.config.block_frames:] - outs[0][:, :, -model.config.block_frames:]).abs().max() > 1e-3  # the past is heard


# trained (as it were) on its own 8-frame blocks and on 4-frame blocks with 6 of context
SKETCHED = lmdm.ModelConfig.tiny(extra_add_inputs=(("melody", 13), ("rhythm", 2), ("loudness", 2)), block_choices=((4, 6),))
EDITS = st.one_of(
    st.tuples(st.just("prompt"), st.sampled_from(["dub", "glass choir", "warm piano chords", "noise"]), st.integers(0, 3)),
    st.tuples(st.just("cfg"), st.sampled_from([1.0, 2.5])),
    st.tuples(st.just("steps"), st.integers(1, 3)),
    st.tuples(st.just("melody"), st.sampled_from([None, "c4 e4 g4", "a3 ~ c5"])),
    st.tuples(st.just("delay"), st.sampled_from([None, 1.0, 2.5])),
)


def _edit(s: lmdm.LiveSession, edit: tuple) -> None:
    kind = edit[0]
    if kind == "prompt":
        s.set_prompt(edit[1], over_blocks=edit[2])
    elif kind == "cfg":
        s.set_cfg(edit[1])
    elif kind == "steps":
        s.set_steps(edit[1])
    elif kind == "melody":
        s.set_sketch(melody=edit[1])
    else:
        s.set_delay(edit[1], strength=0.6)


@settings(max_examples=12, deadline=None)
@given(regime=st.sampled_from(["encdec", "block_causal"]),
       plan=st.lists(st.tuples(st.integers(0, 2), EDITS), min_size=1, max_size=5), seed=st.integers(0, 2**16),
       block_frames=st.sampled_from([None, 4]))
def test_any_sequence_of_live_edits_keeps_cached_equal_to_uncached(regime, plan, seed, block_frames) -> None:
    """Prompts (at once or crossfaded), CFG on and off, steps, melody sketches and the delay, in any
    order, at the model's own block length or another it was trained on: the cached stream and the
    uncached reference give the same latents, block for block."""
    m = _sketched()
    outs = []
    for use_cache in (True, False):
        s = lmdm.LiveSession(m, prompt="dub", regime=regime, steps=2, seed=seed, use_cache=use_cache, block_frames=block_frames)
        lat = []
        for blocks, edit in plan:
            lat += [s.next_latents() for _ in range(blocks)]
            _edit(s, edit)
        lat += [s.next_latents() for _ in range(3)]
        outs.append(torch.cat(lat, 2))
    assert torch.isfinite(outs[0]).all() and (outs[0] - outs[1]).abs().max() <= 1e-4


_SKETCHED_MODEL: list = []


def _sketched():
    if not _SKETCHED_MODEL:
        _SKETCHED_MODEL.append(lmdm.build_model(SKETCHED, seed=1))
    return _SKETCHED_MODEL[0]


def test_next_latents_counts_blocks_for_hooks_and_stats(model) -> None:
    s = lmdm.LiveSession(model, steps=1)
    seen = []
    s.add_hook(lambda session, index: seen.append(index))
    s.next_latents()
    s.next_block()
    s.next_latents()
    assert seen == [0, 1, 2] and s.block_index == 3 and s.stats.blocks == 3


# the output's safety limiter (lmdm/audio/limiter.py) ------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-50.0, 50.0, allow_nan=False), min_size=1, max_size=64))
def test_the_limiter_never_reaches_full_scale_and_leaves_quiet_samples_alone(values) -> None:
    from lmdm.audio.limiter import CEILING, KNEE, soft_limit

    x = np.array(values, dtype=np.float32)
    y, count = soft_limit(x)
    assert np.all(np.abs(y) <= CEILING) and count == int(np.sum(np.abs(x) > KNEE))
    quiet = np.abs(x) <= KNEE
    assert np.array_equal(y[quiet], x[quiet])  # bit for bit below the knee
    assert np.all(np.sign(y) == np.sign(x))
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(y[order]) >= -1e-6)  # monotonic: louder in, louder (or equal) out


def test_the_limiter_is_smooth_at_the_knee() -> None:
    from lmdm.audio.limiter import KNEE, soft_limit

    x = np.array([KNEE - 1e-4, KNEE, KNEE + 1e-4], dtype=np.float64)
    y, _ = soft_limit(x)
    assert np.allclose(np.diff(y), np.diff(x), rtol=1e-3)  # slope 1 on both sides: no kink
    with pytest.raises(ValueError, match="knee < ceiling"):
        soft_limit(x, knee=0.99, ceiling=0.9)


def test_a_loud_stream_is_limited_and_says_so(model) -> None:
    class Loud:  # a decoder whose output overshoots full scale
        def __init__(self, inner):
            self.inner = inner

        def push(self, latents):
            return self.inner.push(latents) * 40.0

    session = lmdm.LiveSession(model, prompt="techno", steps=2, seed=0)
    session._decoder = Loud(session._decoder)
    audio = session.render(seconds=2.0)
    assert np.all(np.abs(audio) <= 0.98) and session.stats.limited_samples > 0
    quiet = lmdm.LiveSession(model, prompt="techno", steps=2, seed=0)
    audio = quiet.render(seconds=2.0)
    assert (quiet.stats.limited_samples == 0) == bool(np.max(np.abs(audio)) <= 0.8)  # counted iff above the knee


# --- ranges where values enter from Python (issue 20, class 1): the language's, one home ----------


@pytest.mark.parametrize("call, message", [
    (lambda s: s.set_delay(1e-310), r"delay time must be from one latent frame \(0.125 blocks\) to 64 blocks"),
    (lambda s: s.set_delay(beats=1e-300), "delay time must be from one latent frame"),
    (lambda s: s.set_delay(beats=1, bpm=float("nan")), "tempo must be between 20 and 400 BPM"),
    (lambda s: s.set_delay(1, prompts=["a"] * 17), "at most 16 prompts"),
    (lambda s: s.set_delay(1, strength=[0.5] * 17), "give 1 to 16 values"),
    (lambda s: s.set_delay(1, prompts=["a" * 501]), "at most 500 characters"),
    (lambda s: s.set_prompt([("a", 1.0)] * 17), "at most 16"),
    (lambda s: s.set_prompt("a" * 501), "a prompt is at most 500 characters, got 501"),
    (lambda s: s.set_prompt([("a", 1e308), ("b", 1e308)]), "prompt weights must be numbers from 0 to 100"),
    (lambda s: s.set_tempo(120, beats_per_bar=0), "beats_per_bar must be a whole number from 1 to 16"),
])
def test_api_values_out_of_range_are_refused_at_once_in_one_line(model, call, message) -> None:
    s = lmdm.LiveSession(model, steps=1)
    with pytest.raises(ValueError, match=message) as caught:
        call(s)
    assert "\n" not in str(caught.value)
    assert np.isfinite(s.next_block()).all()


def test_set_sketch_checks_its_tempo_and_meter() -> None:
    from lmdm.conditioning.sketch import SKETCH_INPUTS

    sketchy = lmdm.build_model(lmdm.ModelConfig.tiny(extra_add_inputs=SKETCH_INPUTS), seed=0)
    s = lmdm.LiveSession(sketchy, steps=1)
    assert s.supports("sketch")
    for kwargs, message in [({"bpm": 0.0}, "tempo must be between 20 and 400"), ({"bpm": float("inf")}, "tempo"),
                            ({"beats_per_bar": 10**9}, "beats_per_bar must be a whole number from 1 to 16")]:
        with pytest.raises(ValueError, match=message):
            s.set_sketch(melody="c4 e4", **kwargs)


def test_a_tiny_delay_time_never_reaches_the_stream(model) -> None:
    """Was: every block failed with an overflow (repeats counted by dividing by the time)."""
    from lmdm_dsl import DelaySpec

    s = lmdm.LiveSession(model, steps=1, mix_input=True)
    s.feed_input(np.zeros((4 * model.block_samples, 1), np.float32), sample_rate=model.sample_rate)
    for tiny in (1e-310, DelaySpec(1e-310, 1e-310, 0.5, 0.3, 0.5)):
        with pytest.raises(ValueError, match="one latent frame"):
            s.set_delay(tiny)
    s.set_delay(1 / model.config.block_frames)  # exactly one frame is allowed
    out = s.render(3 * s.block_seconds)
    assert np.isfinite(out).all() and s.stats.errors == 0


@pytest.mark.parametrize("tail", ["inf", "nan", "-1", "3601"])
def test_lmdm_delay_refuses_a_tail_out_of_range_in_one_line(tail, capsys) -> None:
    from lmdm.delay import main

    with pytest.raises(SystemExit) as caught:
        main(["missing.wav", "--tail", tail])
    assert caught.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f"--tail must be a number of seconds from 0 to 3600, got {float(tail):g}")


@settings(max_examples=15, deadline=None)
@given(regime=st.sampled_from(["encdec", "block_causal"]),
       plan=st.lists(st.tuples(st.integers(0, 2), EDITS), max_size=3), undone=st.lists(EDITS, min_size=3, max_size=3),
       blocks=st.integers(1, 3), new=EDITS, seed=st.integers(0, 2**16))
def test_a_rewound_stream_is_the_stream_its_changes_would_have_made(regime, plan, undone, blocks, new, seed) -> None:
    """rewind(n) with a change: the next blocks are exactly those of a session that had all the
    changes of the undone blocks and the new one queued before the first of them (audio through
    the decoder, the delay line with its feedback, the output mix and the glide included)."""
    from lmdm.session import REWIND_BLOCKS

    assert blocks <= REWIND_BLOCKS
    m = _sketched()
    noise = np.random.default_rng(seed).standard_normal((12 * m.block_samples, 1)).astype(np.float32) * 0.1

    def start() -> lmdm.LiveSession:
        s = lmdm.LiveSession(m, prompt="dub", regime=regime, steps=2, seed=seed, mix_input=True)
        s.feed_input(noise)
        s.next_block()
        for n, edit in plan:
            for _ in range(n):
                s.next_block()
            _edit(s, edit)
        return s

    a = start()
    for edit in undone[:blocks]:
        _edit(a, edit)
        a.next_block()
    assert a.rewindable == min(REWIND_BLOCKS, a.block_index)
    _edit(a, new)
    a.rewind(blocks)
    b = start()
    for edit in [*undone[:blocks], new]:
        _edit(b, edit)
    for _ in range(blocks + 1):
        assert np.array_equal(a.next_block(), b.next_block())
    assert a.block_index == b.block_index


def test_a_rewind_may_make_its_first_block_in_fewer_steps(model) -> None:
    """rewind(steps=k): the block made again is the one a session with k steps for that block makes,
    and the blocks after it go back to the session's own steps; more steps than the session's change nothing."""
    a = lmdm.LiveSession(model, prompt="dub", steps=3)
    a.next_block()
    a.next_block()
    a.set_prompt("glass choir")
    a.rewind(1, steps=1)
    b = lmdm.LiveSession(model, prompt="dub", steps=3)
    b.next_block()
    b.set_prompt("glass choir")
    b.set_steps(1)
    assert np.array_equal(a.next_block(), b.next_block())  # made again in 1 step
    b.set_steps(3)
    for _ in range(2):
        assert np.array_equal(a.next_block(), b.next_block())  # then the session's 3 again
    assert a.settings.steps == 3
    c = lmdm.LiveSession(model, prompt="dub", steps=2)
    first = c.next_block()
    c.rewind(1, steps=8)
    assert np.array_equal(c.next_block(), first)
    for bad in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="rewind's steps"):
            c.rewind(1, steps=bad)


def test_rewind_checks_how_far_it_can_go(model) -> None:
    s = lmdm.LiveSession(model, steps=1)
    with pytest.raises(ValueError, match="only 0 block"):
        s.rewind()
    first = s.next_block()
    for bad in (0, 4, 1.5, True):
        with pytest.raises(ValueError, match="rewind takes 1 to 3 blocks"):
            s.rewind(bad)
    s.rewind(1)
    assert np.array_equal(s.next_block(), first) and s.block_index == 1  # no change: the same block again


def test_a_nudge_says_a_change_is_waiting_until_the_next_block(model) -> None:
    s = lmdm.LiveSession(model, steps=1)
    assert not s.changes_queued
    s.set_cfg(2.0)
    assert s.changes_queued
    s.next_block()
    s.nudge()  # a MIDI knob the language applies at the next block start
    assert s.changes_queued
    s.next_block()
    assert not s.changes_queued


def test_a_session_plays_any_block_length_its_model_was_trained_on() -> None:
    """block_frames picks one of the model's geometries: blocks of that length with the context it was
    trained with, the same weights; one it was not trained on is refused in one line."""
    m = _sketched()
    s = lmdm.LiveSession(m, prompt="dub", steps=2, block_frames=4)
    assert s.model.dit is m.dit and s.model.config.context_blocks == 6 and m.config.block_frames == 8  # the model is not changed
    assert s.block_samples == 4 * m.config.hop and s.next_block().shape == (4 * m.config.hop, 1)
    assert s.render(1.0).shape == (m.sample_rate, 1)
    own = lmdm.LiveSession(m, prompt="dub", steps=2, seed=3, block_frames=8)
    assert np.array_equal(own.render(1.0), lmdm.LiveSession(m, prompt="dub", steps=2, seed=3).render(1.0))
    for bad in (5, 4.0, True, "4"):
        with pytest.raises(ValueError, match=r"plays blocks of 4 frames \(0.16 s\) or 8 frames \(0.32 s\), not"):
            lmdm.LiveSession(m, block_frames=bad)
    with pytest.raises(ValueError, match="plays blocks of 8 frames"):
        lmdm.LiveSession(lmdm.build_model(lmdm.ModelConfig.tiny(), seed=0), block_frames=4)


def test_changes_landing_inside_a_block_are_heard_from_their_sample(model) -> None:
    """LiveSession.landing(f): the block is the old stream up to f of its length and, after a short
    fade, exactly the stream that changed at that block's start; blocks and counts go on as usual."""
    S = model.block_samples
    reference = lmdm.LiveSession(model, prompt="dub", steps=2, seed=1).read(6 * S)
    changed = lmdm.LiveSession(model, prompt="dub", steps=2, seed=1)
    at_start = changed.read(3 * S)
    changed.set_prompt("glass choir")
    at_start = np.concatenate([at_start, changed.read(3 * S)])

    s = lmdm.LiveSession(model, prompt="dub", steps=2, seed=1)

    def hook(session, index):
        if index == 3:
            with session.landing(0.25):
                session.set_prompt("glass choir")
            session.set_cfg(1.0)  # outside the landing: from the block's start, as always (cfg is 1 already)

    s.add_hook(hook)
    out = s.read(6 * S)
    k, fade = 3 * S + round(0.25 * S), round(0.005 * model.sample_rate)
    assert np.array_equal(out[:k], reference[:k]) and not np.array_equal(out[k : k + 1], reference[k : k + 1])
    assert np.array_equal(out[k + fade :], at_start[k + fade :])
    assert s.block_index == 6 and s.stats.blocks == 6 and s.stats.prompt == "glass choir" and s.errors == collections.deque()
    # next_latents has no sample to land on: the change applies from the next block
    t = lmdm.LiveSession(model, prompt="dub", steps=2, seed=1)
    t.next_latents()
    with t.landing(0.5):
        t.set_prompt("glass choir")
    t.next_latents()  # the block it would have landed in: made as it was
    assert t.stats.prompt == "dub"
    t.next_latents()
    assert t.stats.prompt == "glass choir"
    for bad in (0, 1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="a landing is a fraction of a block strictly between 0 and 1"):
            with s.landing(bad):
                pass


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 64), at=st.integers(0, 64), fade=st.integers(0, 16))
def test_spliced_is_before_then_after_with_a_fade_that_starts_at_the_landing(n, at, fade) -> None:
    from lmdm.session.landing import spliced

    at = min(at, n)
    before, after = np.zeros((n, 2), np.float32), np.ones((n, 2), np.float32)
    out = spliced(before, after, at, fade)
    assert out.shape == (n, 2) and (out[:at] == 0).all() and (out[at + fade :] == 1).all()
    ramp = out[at : at + fade, 0]
    assert (np.diff(ramp) > 0).all() and ((ramp > 0) & (ramp < 1)).all()
