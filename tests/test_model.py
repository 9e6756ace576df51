"""The transformer: config, routing, masks in the forward pass, determinism."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmdm.model.config import ModelConfig
from lmdm.model.lmdm import build_model
from lmdm.model.masks import block_causal_mask, encdec_mask


def test_small_preset_is_in_the_target_size() -> None:
    m = build_model(ModelConfig.small())
    assert 15e6 <= m.parameters <= 25e6
    assert m.config.block_seconds == 2.0 and m.config.context_frames == 200


def test_config_validation_messages() -> None:
    with pytest.raises(ValueError, match="not divisible by heads"):
        ModelConfig.tiny(width=66)
    with pytest.raises(ValueError, match="rotary_dims"):
        ModelConfig.tiny(rotary_dims=3)
    with pytest.raises(ValueError, match="depth must be from 1 to 256, got 0"):
        ModelConfig.tiny(depth=0)
    with pytest.raises(ValueError, match="width must be from 1 to 16384, got 1048576"):
        ModelConfig.tiny(width=2**20, heads=1)
    with pytest.raises(ValueError, match="at most 8192 frames"):
        ModelConfig.tiny(block_frames=4096, context_blocks=4)
    with pytest.raises(ValueError, match="whole number of samples"):
        ModelConfig.tiny(frame_rate=24.0, sample_rate=16001)
    with pytest.raises(ValueError, match="unknown ModelConfig fields: colour"):
        ModelConfig.from_dict({"colour": 1})


def test_config_round_trips_through_json() -> None:
    import json

    c = ModelConfig.tiny(extra_add_inputs=[("sketch", 3)])
    assert ModelConfig.from_dict(json.loads(c.to_json())) == c
    assert c.add_dim == 1 + c.latent_dim + 3


@pytest.mark.parametrize("config", [
    ModelConfig.tiny(), ModelConfig.small(), ModelConfig.tiny(extra_add_inputs=[("a", 3), ("b", 5)], mlp_ratio=2, heads=2, rotary_dims=16),
    ModelConfig.tiny(timestep_features=6, cond_dim=5, latent_dim=3, width=12, heads=3, rotary_dims=4),
])
def test_meta_numel_is_the_state_dict_size_before_anything_exists(config: ModelConfig) -> None:
    from lmdm.config_fields import meta_numel
    from lmdm.model.dit import DiT

    assert meta_numel(lambda: DiT(config)) == sum(v.numel() for v in DiT(config).state_dict().values())


def test_build_model_is_deterministic_for_a_seed() -> None:
    a, b, c = (build_model(ModelConfig.tiny(), seed=s) for s in (3, 3, 4))
    for (n, p), (_, q), (_, r) in zip(a.dit.state_dict().items(), b.dit.state_dict().items(), c.dit.state_dict().items()):
        assert torch.equal(p, q), n
    assert any(not torch.equal(p, r) for p, r in zip(a.dit.parameters(), c.dit.parameters()))


def _inputs(cfg: ModelConfig, seed: int, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    L = cfg.window_frames
    x = torch.randn(batch, cfg.latent_dim, L, generator=g)
    add = torch.zeros(batch, cfg.add_dim, L)
    add[:, 0, : cfg.context_frames] = 1.0
    add[:, 1 : 1 + cfg.latent_dim, : cfg.context_frames] = torch.randn(batch, cfg.latent_dim, cfg.context_frames, generator=g)
    route = torch.ones(1, 1, L)
    route[..., : cfg.context_frames] = 0
    cond = torch.randn(batch, cfg.cond_tokens, cfg.cond_dim, generator=g)
    pooled = cond.mean(1)
    positions = torch.cat((torch.arange(1, L + 1), torch.zeros(1, dtype=torch.long)))
    return x, add, route, cond, pooled, positions


def _context_states(m, x, t, add, route, cond, pooled, positions, mask):
    dit = m.dit
    h = torch.cat((dit.embed_frames(x, add, route), dit.embed_time(t, pooled)), dim=1)
    _, kv = dit.run(h, positions, mask, dit.cross_kv(cond))
    C = m.config.context_frames
    return [(k[:, :, :C], v[:, :, :C]) for k, v in kv]


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), regime=st.sampled_from(["encdec", "block_causal"]))
def test_context_never_depends_on_t_noise_or_target(seed: int, regime: str) -> None:
    """The routing + mask promise: context K/V are the same whatever t and the noisy target are."""
    m = build_model(ModelConfig.tiny(), seed=seed % 7)
    cfg = m.config
    x, add, route, cond, pooled, positions = _inputs(cfg, seed)
    L, C = cfg.window_frames, cfg.context_frames
    mask = encdec_mask(C, L) if regime == "encdec" else block_causal_mask(L, cfg.block_frames, cfg.context_blocks + 1)
    a = _context_states(m, x, torch.tensor([0.9, 0.2]), add, route, cond, pooled, positions, mask)
    x2 = torch.randn_like(x)  # new noise everywhere, context frames included (they are routed out)
    b = _context_states(m, x2, torch.tensor([0.1, 0.7]), add, route, cond, pooled, positions, mask)
    for (k1, v1), (k2, v2) in zip(a, b):
        assert torch.allclose(k1, k2, atol=1e-5) and torch.allclose(v1, v2, atol=1e-5)
    # ...but they do depend on the clean context, so the check above is not vacuous
    add2 = add.clone()
    add2[:, 1:, : cfg.block_frames] += 1.0
    c = _context_states(m, x, torch.tensor([0.9, 0.2]), add2, route, cond, pooled, positions, mask)
    assert max((k1 - k3).abs().max().item() for (k1, _), (k3, _) in zip(a, c)) > 1e-3


def test_naive_has_no_such_promise() -> None:
    """Without routing and mask (the naive baseline) the context does see t: nothing is cacheable."""
    m = build_model(ModelConfig.tiny(), seed=0)
    x, add, _, cond, pooled, positions = _inputs(m.config, 0)
    a = _context_states(m, x, torch.tensor([0.9, 0.2]), add, None, cond, pooled, positions, None)
    b = _context_states(m, x, torch.tensor([0.1, 0.7]), add, None, cond, pooled, positions, None)
    assert max((k1 - k2).abs().max().item() for (k1, _), (k2, _) in zip(a[1:], b[1:])) > 1e-3


def test_block_causal_chunks_do_not_see_the_future() -> None:
    m = build_model(ModelConfig.tiny(), seed=1)
    cfg = m.config
    x, add, route, cond, pooled, positions = _inputs(cfg, 1)
    L, B = cfg.window_frames, cfg.block_frames
    mask = block_causal_mask(L, B, cfg.context_blocks + 1)
    v1 = m.dit(x, torch.tensor([0.5, 0.5]), add, cond, pooled, route, positions, mask)
    add2 = add.clone()
    add2[:, 1:, 2 * B : 3 * B] += 1.0  # change chunk 2 of the context
    v2 = m.dit(x, torch.tensor([0.5, 0.5]), add2, cond, pooled, route, positions, mask)
    h1 = _context_states(m, x, torch.tensor([0.5, 0.5]), add, route, cond, pooled, positions, mask)
    h2 = _context_states(m, x, torch.tensor([0.5, 0.5]), add2, route, cond, pooled, positions, mask)
    for (k1, _), (k2, _) in zip(h1, h2):
        assert torch.allclose(k1[:, :, : 2 * B], k2[:, :, : 2 * B], atol=1e-6)  # chunks 0-1 unchanged
    assert (v1[:, :, -B:] - v2[:, :, -B:]).abs().max() > 1e-4  # the target does see chunk 2


def test_output_shape_and_finite() -> None:
    m = build_model(ModelConfig.tiny(), seed=0)
    x, add, route, cond, pooled, positions = _inputs(m.config, 0)
    v = m.dit(x, torch.tensor([0.3, 0.6]), add, cond, pooled, route, positions, None)
    assert v.shape == x.shape and torch.isfinite(v).all()


def test_embed_context_is_embed_frames_with_route_zero() -> None:
    m = build_model(ModelConfig.tiny(), seed=0)
    x, add, _, _, _, _ = _inputs(m.config, 0)
    route = torch.zeros(1, 1, x.shape[2])
    assert torch.allclose(m.dit.embed_frames(x, add, route), m.dit.embed_context(add), atol=1e-6)
