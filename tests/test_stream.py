"""The KV cache is a pure optimisation: cached streams equal full masked forwards."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmdm.model.cache import KVCache
from lmdm.conditioning.text import null_conditioning
from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import build_model
from lmdm.stream import BlockStream

torch.set_num_threads(1)  # the machine may be busy (training); threads only contend on tiny models


def _run(model, regime, use_cache, commit="separate", blocks=8, steps=3, sampler="pingpong", cfg=1.0, seed=0, prompt="acid techno"):
    stream = BlockStream(model, regime, use_cache, commit)
    cond = model.encode_prompt(prompt)
    null = null_conditioning(model.config.cond_dim, model.config.cond_tokens)
    g = torch.Generator().manual_seed(seed)
    out = [stream.generate(cond, steps=steps, sampler=sampler, cfg=cfg, uncond=null, generator=g) for _ in range(blocks)]
    return torch.cat(out, dim=2), stream


model_configs = st.builds(
    lambda width, depth, heads, block, ctx, latent: ModelConfig.tiny(
        width=width, depth=depth, heads=heads, rotary_dims=min(8, width // heads // 2 * 2), block_frames=block,
        context_blocks=ctx, latent_dim=latent,
    ),
    width=st.sampled_from([32, 64]), depth=st.integers(1, 3), heads=st.sampled_from([2, 4]),
    block=st.integers(2, 6), ctx=st.integers(1, 4), latent=st.sampled_from([4, 8]),
)


@settings(max_examples=25, deadline=None)
@given(
    config=model_configs, regime=st.sampled_from(["encdec", "block_causal"]), commit=st.sampled_from(["separate", "fused"]),
    steps=st.integers(1, 6), sampler=st.sampled_from(["euler", "pingpong"]), cfg=st.sampled_from([1.0, 2.5]),
    seed=st.integers(0, 2**16), blocks=st.integers(8, 11),
)
def test_cached_stream_equals_uncached(config, regime, commit, steps, sampler, cfg, seed, blocks) -> None:
    model = build_model(config, seed=seed % 5)
    ref, _ = _run(model, regime, False, commit, blocks, steps, sampler, cfg, seed)
    fast, stream = _run(model, regime, True, commit, blocks, steps, sampler, cfg, seed)
    assert ref.shape == (1, config.latent_dim, blocks * config.block_frames)
    assert torch.isfinite(ref).all()
    assert (ref - fast).abs().max().item() <= 1e-4
    assert stream.rebuilds == 0


@pytest.mark.parametrize("regime", ["encdec", "block_causal"])
def test_the_equality_is_not_vacuous(regime: str) -> None:
    """The next block really depends on the context, and a cache that forgets to re-rotate keys fails."""
    model = build_model(ModelConfig.tiny(), seed=0)
    cond = model.encode_prompt("x")
    outs = []
    for ctx_seed in (1, 2):
        s = BlockStream(model, regime, True)
        s.prime(torch.randn(1, model.config.latent_dim, 4 * model.config.context_frames, generator=torch.Generator().manual_seed(ctx_seed)))
        outs.append(s.generate(cond, steps=2, generator=torch.Generator().manual_seed(0)))
    assert (outs[0] - outs[1]).abs().max() > 1e-2


def test_a_cache_without_rerotation_would_be_caught(monkeypatch) -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    ref, _ = _run(model, "block_causal", False, blocks=6)
    monkeypatch.setattr(KVCache, "shifted", lambda self, shift, freqs: self)
    broken, _ = _run(model, "block_causal", True, blocks=6)
    assert (ref - broken).abs().max() > 1e-3


def test_fused_and_separate_commit_agree() -> None:
    model = build_model(ModelConfig.tiny(), seed=2)
    a, _ = _run(model, "block_causal", True, "separate", blocks=9)
    b, _ = _run(model, "block_causal", True, "fused", blocks=9)
    assert (a - b).abs().max() <= 1e-4


def test_cache_stays_a_fixed_size_ring() -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    _, stream = _run(model, "block_causal", True, blocks=7)
    cfg = model.config
    assert stream.cache.frames == cfg.context_frames
    assert stream.cache_bytes == 2 * cfg.depth * cfg.context_frames * cfg.width * 4
    assert stream.history.shape[2] == cfg.depth * cfg.context_frames  # only what can still reach a target


def test_bootstrap_from_history_equals_incremental_cache() -> None:
    """Priming a fresh stream with another stream's blocks rebuilds the cache exactly."""
    model = build_model(ModelConfig.tiny(), seed=3)
    cond = model.encode_prompt("bells")
    a = BlockStream(model, "block_causal", True)
    g = torch.Generator().manual_seed(5)
    blocks = [a.generate(cond, steps=3, generator=g) for _ in range(7)]
    b = BlockStream(model, "block_causal", True)
    b.prime(torch.cat(blocks, dim=2))
    state = g.get_state()
    next_a = a.generate(cond, steps=3, generator=g)
    g.set_state(state)
    next_b = b.generate(cond, steps=3, generator=g)
    assert (next_a - next_b).abs().max() <= 1e-4


def test_regime_switch_keeps_history_and_rebuilds() -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    cond = model.encode_prompt("pads")
    s = BlockStream(model, "encdec", True)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        s.generate(cond, steps=2, generator=g)
    hist = s.history.clone()
    s.set_regime("block_causal")
    assert torch.equal(s.history, hist)
    x = s.generate(cond, steps=2, generator=g)
    assert s.rebuilds == 1 and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="unknown regime"):
        s.set_regime("bidirectional")


def test_naive_regime_runs_and_differs_from_routed() -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    naive, _ = _run(model, "naive", False, blocks=3)
    routed, _ = _run(model, "encdec", True, blocks=3)
    assert torch.isfinite(naive).all() and naive.shape == routed.shape
    assert (naive - routed).abs().max() > 1e-3


def test_cfg_needs_an_unconditional_prompt() -> None:
    model = build_model(ModelConfig.tiny(), seed=0)
    s = BlockStream(model)
    with pytest.raises(ValueError, match="uncond"):
        s.generate(model.encode_prompt("x"), cfg=2.0)
    with pytest.raises(ValueError, match="unknown commit mode"):
        BlockStream(model, commit="eager")


# ---------------------------------------------------------------- sketches, accomp and SDEdit (issue 6)

EXTRAS = [["melody", 13], ["rhythm", 2], ["loudness", 2]]


def _heard(player: torch.Tensor, first: int, n: int, cutoff: int) -> torch.Tensor:
    """accomp channels [1, 1 + D, n] for history frames first..first+n-1 (absolute), heard below cutoff."""
    frames = torch.arange(first, first + n)
    mask = ((frames >= 0) & (frames < cutoff)).float()
    z = player[:, :, frames.clamp(min=0)] * mask
    return torch.cat((mask[None, None], z), dim=1)


def _run_conditioned(model, regime, use_cache, commit, blocks, steps, cfg, seed, late, guide=0.0):
    """A stream whose every block gets a random sketch, a growing 'heard' accomp (on every third
    block `late` frames less: those are heard one block later, when they are already in the cache)
    and, on odd blocks, an SDEdit start (strength 0.7 or 0)."""
    c = model.config
    B = c.block_frames
    stream = BlockStream(model, regime, use_cache, commit)
    cond = model.encode_prompt("band")
    null = null_conditioning(c.cond_dim, c.cond_tokens)
    g = torch.Generator().manual_seed(seed)
    r = torch.Generator().manual_seed(seed + 1)
    player = torch.randn(1, c.latent_dim, (blocks + 2) * B, generator=r)
    lo, hi = c.add_slice("melody").start, c.add_slice("loudness").stop
    out = []
    for n in range(blocks):
        hist = stream.history.shape[2]
        cutoff = n * B - B - (late if n % 3 == 0 else 0)
        stream.set_accomp(_heard(player, n * B - hist, hist, cutoff))
        add = torch.zeros(1, c.add_dim, B)
        add[:, lo:hi] = torch.rand(1, hi - lo, B, generator=r)
        init = torch.randn(1, c.latent_dim, B, generator=r)
        strength = (0.7, 0.0)[n // 2 % 2] if n % 2 else 1.0
        out.append(stream.generate(cond, steps=steps, cfg=cfg, uncond=null, generator=g, target_add=add, init=init, strength=strength,
                                   guide_target=guide))
    return torch.cat(out, dim=2), stream


conditioned_configs = st.builds(
    lambda depth, block, ctx, extras: ModelConfig.tiny(
        depth=depth, block_frames=block, context_blocks=ctx, extra_add_inputs=extras + [["accomp", 9]],
    ),
    depth=st.integers(1, 3), block=st.integers(2, 5), ctx=st.integers(1, 4), extras=st.sampled_from([EXTRAS, []]),
)


@settings(max_examples=20, deadline=None)
@given(
    config=conditioned_configs, regime=st.sampled_from(["encdec", "block_causal"]), commit=st.sampled_from(["separate", "fused"]),
    steps=st.integers(1, 4), cfg=st.sampled_from([1.0, 2.0]), seed=st.integers(0, 2**16), blocks=st.integers(6, 10),
    late=st.integers(0, 6), guide=st.sampled_from([0.0, 0.5, 1.0]),
)
def test_cached_equals_uncached_with_sketches_accomp_and_sdedit(config, regime, commit, steps, cfg, seed, blocks, late, guide) -> None:
    if config.add_slice("melody") is None:  # accomp only: no sketch channels to write
        config = ModelConfig.tiny(**{**config.to_dict(), "extra_add_inputs": EXTRAS + [["accomp", 9]]})
    model = build_model(config, seed=seed % 3)
    ref, _ = _run_conditioned(model, regime, False, commit, blocks, steps, cfg, seed, late, guide)
    fast, stream = _run_conditioned(model, regime, True, commit, blocks, steps, cfg, seed, late, guide)
    assert torch.isfinite(ref).all() and ref.shape == (1, config.latent_dim, blocks * config.block_frames)
    assert (ref - fast).abs().max().item() <= 1e-4
    assert stream.accomp.shape[2] == stream.history.shape[2]  # lockstep
    if regime == "block_causal" and stream.keep > config.block_frames:  # (else only the last block is kept: never heard)
        assert stream.rebuilds > 0  # frames heard after their chunk was committed forced exact rebuilds


@pytest.mark.parametrize("regime, use_cache", [("encdec", False), ("block_causal", False), ("block_causal", True)])
def test_guide_target_is_guidance_towards_the_sketch_as_well_as_the_prompt(regime, use_cache) -> None:
    """guide_target: v = v(null prompt, no target add) + s (v(prompt, add) - v(null, no add)), each
    pass as a one-pass denoiser computes it; with cfg 1 it changes nothing."""
    model = build_model(ModelConfig.tiny(extra_add_inputs=EXTRAS), seed=1)
    c = model.config
    g = torch.Generator().manual_seed(2)
    history = torch.randn(1, c.latent_dim, c.context_frames, generator=g)
    add = torch.zeros(1, c.add_dim, c.block_frames)
    add[:, c.add_slice("melody").start : c.add_slice("loudness").stop] = torch.rand(1, 17, c.block_frames, generator=g)
    cond, null = model.encode_prompt("band"), null_conditioning(c.cond_dim, c.cond_tokens)
    x = torch.randn(1, c.latent_dim, c.block_frames, generator=g)

    def velocity(prompt, scale=1.0, target=add, guide=1.0):
        stream = BlockStream(model, regime, use_cache)
        stream.history = history.clone()
        return stream.denoiser(prompt, cfg=scale, uncond=null, target_add=target, guide_target=guide)(x, 0.6, 0)

    v_cond, v_null = velocity(cond), velocity(null, target=torch.zeros_like(add))
    assert torch.allclose(velocity(cond, 3.0), v_null + 3.0 * (v_cond - v_null), atol=1e-5)
    assert not torch.allclose(velocity(cond, 3.0), velocity(cond, 3.0, guide=0.0), atol=1e-4)  # the plain uncond keeps the add
    assert torch.equal(velocity(cond, guide=0.0), v_cond)
    v_half = velocity(null, target=0.5 * add)  # half the way: the uncond pass hears half the add
    assert torch.allclose(velocity(cond, 3.0, guide=0.5), v_half + 3.0 * (v_cond - v_half), atol=1e-5)


def test_a_cache_that_ignored_late_heard_frames_would_be_caught(monkeypatch) -> None:
    model = build_model(ModelConfig.tiny(extra_add_inputs=EXTRAS + [["accomp", 9]]), seed=0)
    ref, _ = _run_conditioned(model, "block_causal", False, "fused", 8, 2, 1.0, 0, 3)
    monkeypatch.setattr(BlockStream, "_stale", lambda self: False)
    broken, _ = _run_conditioned(model, "block_causal", True, "fused", 8, 2, 1.0, 0, 3)
    assert (ref - broken).abs().max() > 1e-3


def test_accomp_stays_in_lockstep_with_history_through_prime_and_reset() -> None:
    model = build_model(ModelConfig.tiny(extra_add_inputs=[["accomp", 9]]), seed=0)
    s = BlockStream(model)
    assert s.accomp.shape == (1, 9, model.config.context_frames)
    s.set_accomp(torch.ones(1, 9, 5))
    assert s.accomp[0, 0].sum() == 5 and s.accomp[0, 0, -5:].sum() == 5
    s.prime(torch.randn(1, 8, 40))
    assert s.accomp.shape[2] == s.history.shape[2] and s.accomp[0, 0, -40:].sum() == 0
    s.generate(model.encode_prompt("x"), steps=1)
    assert s.accomp.shape[2] == s.history.shape[2]
    s.reset()
    assert s.accomp.shape[2] == s.history.shape[2] == model.config.context_frames and s.accomp.abs().sum() == 0
    with pytest.raises(ValueError):
        s.set_accomp(torch.ones(1, 9, 10_000))
    with pytest.raises(ValueError, match="no accomp"):
        BlockStream(build_model(ModelConfig.tiny(), seed=0)).set_accomp(torch.ones(1, 9, 1))
