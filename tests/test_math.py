"""The small pure functions: RoPE, masks, schedule, sampler updates, guidance."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmdm.model.masks import block_causal_mask, chunk_ids, encdec_mask, regime_mask
from lmdm.model.rope import apply_rope, inv_freq, rope_angles, shift_angles
from lmdm.sampling import euler_step, guided, pingpong_step, sample, schedule


@settings(max_examples=40, deadline=None)
@given(p=st.integers(-500, 500), s=st.integers(-300, 300), rot=st.sampled_from([2, 8, 16]), seed=st.integers(0, 1000))
def test_rope_shift_composes(p: int, s: int, rot: int, seed: int) -> None:
    """A key rotated to p then shifted by s equals the key rotated to p + s: what the cache relies on."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 1, 24, generator=g)
    f = inv_freq(rot)
    at_p = apply_rope(x, *rope_angles(torch.tensor([p]), f))
    moved = apply_rope(at_p, *shift_angles(s, f))
    direct = apply_rope(x, *rope_angles(torch.tensor([p + s]), f))
    assert torch.allclose(moved, direct, atol=2e-4)
    assert torch.equal(moved[..., rot:], x[..., rot:])  # unrotated dims pass through


@settings(max_examples=25, deadline=None)
@given(p=st.integers(-200, 200), q=st.integers(-200, 200), d=st.integers(-100, 100))
def test_rope_scores_depend_only_on_distance(p: int, q: int, d: int) -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 16, generator=g), torch.randn(1, 16, generator=g)
    f = inv_freq(16)
    r = lambda x, pos: apply_rope(x, *rope_angles(torch.tensor([pos]), f))
    assert math.isclose((r(a, p) * r(b, q)).sum().item(), (r(a, p + d) * r(b, q + d)).sum().item(), abs_tol=1e-3)


def test_rope_inv_freq_matches_formula() -> None:
    f = inv_freq(64, 10000.0)
    assert f.shape == (32,)
    assert torch.allclose(f, torch.tensor([10000 ** (-2 * i / 64) for i in range(32)]))


def test_encdec_mask() -> None:
    m = encdec_mask(context_frames=3, frames=5)  # 3 context, 2 target, 1 t-token
    assert m.shape == (6, 6)
    assert m[:3, :3].all() and not m[:3, 3:].any()  # context sees only context
    assert m[3:, :].all()  # target and t-token see everything


@settings(max_examples=30, deadline=None)
@given(chunks=st.integers(1, 7), chunk=st.integers(1, 5), window=st.integers(1, 6))
def test_block_causal_mask(chunks: int, chunk: int, window: int) -> None:
    n = chunks * chunk
    m = block_causal_mask(n, chunk, window)
    c = chunk_ids(n, chunk)
    for q in range(n + 1):
        for k in range(n + 1):
            assert bool(m[q, k]) == (c[q] - window < c[k] <= c[q])
    assert c[-1] == c[-2]  # the t-token is in the last chunk
    assert not m[: n - chunk, n].any()  # only the target sees the t-token


def test_block_causal_needs_whole_chunks() -> None:
    with pytest.raises(ValueError, match="whole number"):
        block_causal_mask(7, 2, 3)


def test_unknown_regime() -> None:
    with pytest.raises(ValueError, match="unknown regime 'causal'"):
        regime_mask("causal", 4, 2, 2, 2)


def test_schedule_matches_paper() -> None:
    assert torch.allclose(schedule(8), torch.tensor([1.0, 0.9933, 0.9820, 0.9526, 0.8808, 0.7311, 0.5, 0.2689, 0.0]), atol=1e-4)
    assert torch.allclose(schedule(6), torch.tensor([1.0, 0.9907, 0.9656, 0.8808, 0.6608, 0.3392, 0.0]), atol=1e-4)
    with pytest.raises(ValueError):
        schedule(0)


@settings(max_examples=20, deadline=None)
@given(steps=st.integers(1, 12), sampler=st.sampled_from(["euler", "pingpong"]), seed=st.integers(0, 99))
def test_samplers_recover_a_point_mass(steps: int, sampler: str, seed: int) -> None:
    """With the exact velocity of a one-point data set, both samplers land on that point."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(1, 4, 6, generator=g)
    exact_v = lambda x, t, i: (x - x0) / t  # v = eps - x0 and x = (1-t)x0 + t eps
    out = sample(exact_v, torch.randn(1, 4, 6, generator=g), steps, sampler, g)
    assert torch.allclose(out, x0, atol=1e-4)


def test_update_rules() -> None:
    x, v, eps = torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([-2.0])
    assert euler_step(x, v, 0.8, 0.5).item() == pytest.approx(1.0 - 0.3 * 0.5)
    x0 = 1.0 - 0.8 * 0.5
    assert pingpong_step(x, v, 0.8, 0.5, eps).item() == pytest.approx(0.5 * x0 + 0.5 * -2.0)
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert guided(c, u, 1.0).item() == 2.0 and guided(c, u, 3.0).item() == 4.0 and guided(c, u, 0.0).item() == 1.0
