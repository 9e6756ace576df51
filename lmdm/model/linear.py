"""Linear layers whose CPU forward runs on oneDNN instead of MKL.

On this project's machine (AMD EPYC with AVX-512) `torch.nn.functional.linear` in float32 goes to
MKL's sgemm, which runs about half as fast as oneDNN's matmul on the same shapes (measured in
docs/performance.md: 2.2x at 251 rows, 1.9x at 51 rows, 1 or 2 threads). PyTorch ships oneDNN
anyway (`torch.ops.mkldnn._linear_pointwise`, the op inductor uses), and it takes our plain
row-major weights as they are: no packed copy, nothing to invalidate when an optimiser updates
them.

`linear(x, w, b)` uses it whenever it applies (float32 CPU tensors, no autocast) and falls back to
`F.linear` otherwise. The forward is the same kernel with or without gradients, so a training
rollout's gradient step computes exactly what `BlockStream.generate` computes; the backward is
ordinary matmuls. `LMDM_LINEAR=aten` (environment) switches the whole library back to `F.linear`,
for comparison (`lmdm bench --linear aten`).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

KERNELS = ("onednn", "aten")


def _onednn_works() -> bool:
    """Is the oneDNN op here and right? (a build without it, or a broken one, falls back)"""
    try:
        x, w, b = torch.randn(3, 5), torch.randn(4, 5), torch.randn(4)
        y = torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        return bool(torch.allclose(y, F.linear(x, w, b), atol=1e-5))
    except (AttributeError, RuntimeError):
        return False


_AVAILABLE = torch.backends.mkldnn.is_available() and _onednn_works()
_kernel = "aten"


def set_kernel(name: str) -> str:
    """Choose the CPU float32 linear kernel for the whole process: "onednn" (default where it
    works) or "aten" (F.linear). Returns the kernel in use ("aten" when oneDNN is unavailable)."""
    global _kernel
    if name not in KERNELS:
        raise ValueError(f"unknown linear kernel {name!r}: choose one of {', '.join(KERNELS)}")
    _kernel = name if (name == "aten" or _AVAILABLE) else "aten"
    return _kernel


def kernel() -> str:
    return _kernel


set_kernel(os.environ.get("LMDM_LINEAR", "onednn").strip().lower() or "onednn")


def _onednn(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """y = x w^T + b with a oneDNN forward; the op itself has no derivative, so the backward is here."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _onednn(x, w, b)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, w = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _onednn(grad, w.t(), None)  # [..., out] x [out, in] -> [..., in]
        if ctx.needs_input_grad[1]:
            gw = grad.reshape(-1, grad.shape[-1]).t() @ x.reshape(-1, x.shape[-1])  # [out, in]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.reshape(-1, grad.shape[-1]).sum(0)
        return gx, gw, gb


def _applies(x: torch.Tensor, w: torch.Tensor) -> bool:
    return (
        _kernel == "onednn"
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and w.dtype == torch.float32
        and x.dim() >= 2
        and not torch.is_autocast_enabled("cpu")
    )


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, w, b), with oneDNN's forward on float32 CPU tensors (see the module docstring)."""
    if not _applies(x, w):
        return F.linear(x, w, b)
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or (b is not None and b.requires_grad)):
        return _OneDNNLinear.apply(x, w, b)
    return _onednn(x, w, b)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same state-dict keys) whose forward is `linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
