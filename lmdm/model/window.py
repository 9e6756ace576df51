"""The inputs of one full `DiT.forward` over a window ``[context | target | t-token]``.

Training and the uncached streaming path (`BlockStream._full_pass`) both build their inputs
here, so the model is trained on exactly the tensors it is run on:

- ``add``: per frame ``[context_mask, clean_latent, zeros for extra inputs]`` on the context,
  all zeros on the target;
- ``route``: 0 on context frames, 1 on target frames (``None`` in the naive regime, whose
  context is re-noised instead of routed);
- ``positions``: the context ends at ``context_end`` (its last frame is at position C), the
  target follows at C+1..C+B, and the t-token sits at 0;
- ``mask``: the regime's attention mask over the window (`lmdm.model.masks.regime_mask`).

A window without context (``context_add`` of 0 frames, ``context_end`` 0, naive regime) is the
base model's input: frames at 1..L, t-token at 0, no routing, no mask, zero ``add``.
"""

from __future__ import annotations

import attrs
import torch

from lmdm.model.masks import regime_mask


@attrs.frozen(eq=False)
class Window:
    add: torch.Tensor  # [b, A, n + B]
    route: torch.Tensor | None  # [1, 1, n + B]
    positions: torch.Tensor  # [n + B + 1], the t-token's last
    mask: torch.Tensor | None  # [n + B + 1, n + B + 1]


def context_add(latents: torch.Tensor, add_dim: int, present: torch.Tensor | None = None) -> torch.Tensor:
    """Clean context latents [b, D, n] -> additive inputs [b, A, n]: [mask, latent, zeros].

    `present` [b, 1, 1] (or anything broadcastable to [b, 1, n]) scales the context mask; training
    sets it to 0 to drop the whole context input for classifier-free guidance. Default 1.
    """
    b, d, n = latents.shape
    mask = torch.ones(b, 1, n, dtype=latents.dtype, device=latents.device)
    if present is not None:
        mask = mask * present
    extra = torch.zeros(b, add_dim - 1 - d, n, dtype=latents.dtype, device=latents.device)
    return torch.cat((mask, latents, extra), dim=1)


def window_inputs(regime: str, context: torch.Tensor, block_frames: int, context_end: int, window_chunks: int) -> Window:
    """`Window` for `context` additive inputs [b, A, n] followed by a target of `block_frames`.

    `window_chunks`: chunks a block-causal chunk sees, itself included (context_blocks + 1).
    """
    b, a, n = context.shape
    B = block_frames
    add = torch.cat((context, torch.zeros(b, a, B, dtype=context.dtype, device=context.device)), dim=2)
    route = None
    if regime != "naive":
        route = torch.cat((torch.zeros(1, 1, n), torch.ones(1, 1, B)), dim=2).to(context.device, context.dtype)
    frames = torch.arange(context_end - n + 1, context_end + B + 1)
    positions = torch.cat((frames, torch.zeros(1, dtype=frames.dtype))).to(context.device)
    mask = regime_mask(regime, n + B, n, B, window_chunks)
    return Window(add, route, positions, None if mask is None else mask.to(context.device))
