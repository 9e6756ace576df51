"""Rotary position embedding (RoPE) on part of each head, half-split (NeoX) layout.

Pure functions, so the cache can be checked against the uncached computation:
a key rotated to position p and then by -s equals the key rotated to p - s.
"""

from __future__ import annotations

import torch


def inv_freq(rotary_dims: int, base: float = 10000.0) -> torch.Tensor:
    """[rotary_dims // 2] angular frequencies, base^(-2i / rotary_dims)."""
    i = torch.arange(0, rotary_dims, 2, dtype=torch.float64)
    return (base ** (-i / rotary_dims)).to(torch.float32)


def rope_angles(positions: torch.Tensor, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [L] -> (cos, sin), each [L, rotary_dims]: the angle table cat(f, f)."""
    f = positions.to(torch.float32)[:, None] * freqs[None, :]  # [L, r/2]
    f = torch.cat((f, f), dim=-1)  # [L, r]
    return f.cos(), f.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first r dims of x [..., L, head_dim] by the angles (cos, sin) [L, r].

    The math runs in float32 and the result has x's dtype. Dims past r pass through.
    """
    r = cos.shape[-1]
    rot, rest = x[..., :r], x[..., r:]
    if x.dtype != torch.float32:
        rot = rot.float()
    rot = rot * cos + _rotate_half(rot) * sin
    return torch.cat((rot.to(x.dtype), rest), dim=-1)


def shift_angles(shift: int, freqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) [1, r] that move an already-rotated key by `shift` positions (the same numbers as
    `rope_angles` at position `shift`, made on freqs' device without a host-to-device copy)."""
    f = freqs[None, :] * float(shift)  # [1, r/2]
    f = torch.cat((f, f), dim=-1)
    return f.cos(), f.sin()
