"""lmdm.model.linear: the oneDNN forward equals F.linear, its backward is right, it steps aside
where it does not apply, and gradient mode never changes what the forward computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from lmdm.model import linear as lin
from lmdm.model.linear import Linear, linear

pytestmark = pytest.mark.usefixtures("one_thread")

needs_onednn = pytest.mark.skipif(not lin._AVAILABLE, reason="this torch build has no working oneDNN linear")


@pytest.fixture(scope="module")
def onednn():
    before = lin.kernel()
    assert lin.set_kernel("onednn") == "onednn"
    yield
    lin.set_kernel(before)


def _inputs(rows: int, fan_in: int, fan_out: int, lead: int, bias: bool, transposed: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    if transposed:  # a non-contiguous input, as after a transpose
        x = torch.randn(rows, lead, fan_in, generator=g).transpose(0, 1)
    else:
        x = torch.randn(lead, rows, fan_in, generator=g)
    w = torch.randn(fan_out, fan_in, generator=g) / fan_in**0.5
    b = torch.randn(fan_out, generator=g) if bias else None
    return x, w, b


shapes = dict(
    rows=st.integers(1, 70), fan_in=st.integers(1, 96), fan_out=st.integers(1, 96), lead=st.integers(1, 3),
    bias=st.booleans(), transposed=st.booleans(), seed=st.integers(0, 2**16),
)


@needs_onednn
@settings(max_examples=60, deadline=None)
@given(**shapes)
def test_forward_equals_f_linear(onednn, rows, fan_in, fan_out, lead, bias, transposed, seed):
    x, w, b = _inputs(rows, fan_in, fan_out, lead, bias, transposed, seed)
    y = linear(x, w, b)
    assert y.shape == F.linear(x, w, b).shape and y.dtype == torch.float32
    torch.testing.assert_close(y, F.linear(x, w, b), rtol=1e-5, atol=1e-5)


@needs_onednn
@settings(max_examples=40, deadline=None)
@given(**shapes)
def test_gradients_equal_f_linear(onednn, rows, fan_in, fan_out, lead, bias, transposed, seed):
    x, w, b = _inputs(rows, fan_in, fan_out, lead, bias, transposed, seed)
    up = torch.randn(lead, rows, fan_out, generator=torch.Generator().manual_seed(seed + 1))
    grads = []
    for f in (linear, F.linear):
        leaves = [t.clone().requires_grad_(True) for t in (x, w) + ((b,) if b is not None else ())]
        (f(*leaves) if b is not None else f(*leaves, None)).mul(up).sum().backward()
        grads.append([t.grad for t in leaves])
    for ours, ref in zip(*grads):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


@needs_onednn
def test_only_some_inputs_need_gradients(onednn):
    """A first layer: the weight needs a gradient, the input and the bias do not."""
    x, w, b = _inputs(5, 7, 3, 2, True, False, 0)
    ours, ref = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    linear(x, ours, b).sum().backward()
    F.linear(x, ref, b).sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-4, atol=1e-5)
    assert x.grad is None and b.grad is None


@needs_onednn
def test_gradient_mode_does_not_change_the_forward(onednn):
    """ARC-Forcing's gradient step must compute what BlockStream.generate computes: bit for bit."""
    x, w, b = _inputs(51, 64, 96, 2, True, False, 3)
    with torch.no_grad():
        plain = linear(x, w, b)
    tracked = linear(x, w.clone().requires_grad_(True), b)
    assert tracked.requires_grad and torch.equal(plain, tracked.detach())


@needs_onednn
def test_the_module_uses_it_and_keeps_nn_linear_state(onednn):
    torch.manual_seed(0)
    m = Linear(8, 4)
    ref = torch.nn.Linear(8, 4)
    ref.load_state_dict(m.state_dict())  # same keys, same shapes
    x = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref(x), rtol=1e-5, atol=1e-6)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        m(x)
    ops = {str(op) for op in counter.get_flop_counts().get("Global", {})}
    assert not any("addmm" in op or op.endswith(".mm") for op in ops), ops  # oneDNN, not F.linear's MKL


def test_falls_back_where_it_does_not_apply():
    x, w, b = _inputs(4, 6, 5, 1, True, False, 1)
    torch.testing.assert_close(linear(x.double(), w.double(), b.double()), F.linear(x.double(), w.double(), b.double()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear(x, w, b).dtype == torch.bfloat16  # autocast keeps working (the bench's --bf16)
    before = lin.kernel()
    try:
        assert lin.set_kernel("aten") == "aten"
        assert torch.equal(linear(x, w, b), F.linear(x, w, b))
    finally:
        lin.set_kernel(before)


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown linear kernel 'mkl'"):
        lin.set_kernel("mkl")
