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
