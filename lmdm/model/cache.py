"""KVCache: per-layer keys/values of clean context frames, after q/k-norm and RoPE.

The cache is an optimisation only: `lmdm.stream` checks (in tests) that a stream made with it
equals the stream made by full masked forwards. Keys are stored already rotated to their
positions in the current window (context frames at positions 1..C). When the window slides by
`s` frames the oldest `s` frames are dropped and the remaining keys are re-rotated by -s, so
cached frames always sit at the same positions the model was trained with.
"""

from __future__ import annotations

import torch

from lmdm.model.rope import apply_rope, shift_angles

KV = tuple[torch.Tensor, torch.Tensor]  # each [B, heads, frames, head_dim]


class KVBuffer:
    """One layer's cached keys/values with room for the queries' own: k, v [B, heads, n + Lq, head_dim].

    The first n frames hold the cache; every denoising step writes its Lq new keys/values into the
    free tail in place (instead of concatenating n + Lq frames anew at every step and layer).
    """

    def __init__(self, k: torch.Tensor, v: torch.Tensor, n: int):
        self.k, self.v, self.n = k, v, n

    def with_new(self, k: torch.Tensor, v: torch.Tensor) -> KV:
        """Write the step's k, v [B, heads, Lq, head_dim] after the cache -> the full (keys, values)."""
        end = self.n + k.shape[2]
        self.k[:, :, self.n : end].copy_(k)
        self.v[:, :, self.n : end].copy_(v)
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    def __init__(self, layers: list[KV]):
        self.layers = layers

    @property
    def frames(self) -> int:
        return self.layers[0][0].shape[2] if self.layers else 0

    @property
    def batch(self) -> int:
        return self.layers[0][0].shape[0] if self.layers else 0

    @property
    def nbytes(self) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.layers)

    def buffers(self, room: int) -> list[KVBuffer]:
        """Per-layer buffers holding this cache plus `room` free frames, for the steps of one block."""
        out = []
        for k, v in self.layers:
            b, h, n, d = k.shape
            kb, vb = k.new_empty(b, h, n + room, d), v.new_empty(b, h, n + room, d)
            kb[:, :, :n].copy_(k)
            vb[:, :, :n].copy_(v)
            out.append(KVBuffer(kb, vb, n))
        return out

    def shifted(self, shift: int, freqs: torch.Tensor) -> "KVCache":
        """The same frames with every key moved by `shift` positions (RoPE composes)."""
        cos, sin = shift_angles(shift, freqs)
        return KVCache([(apply_rope(k, cos, sin), v) for k, v in self.layers])

    def slid(self, drop: int, new: list[KV]) -> "KVCache":
        """Drop the oldest `drop` frames and append `new` (same shape when len(new) == drop)."""
        return KVCache([
            (torch.cat((k[:, :, drop:], nk), dim=2), torch.cat((v[:, :, drop:], nv), dim=2))
            for (k, v), (nk, nv) in zip(self.layers, new)
        ])
