"""Attention masks of the three regimes, as pure functions.

A sequence is ``L`` latent frames followed by ONE timestep token (index ``L``). Masks are
boolean ``[queries, keys]`` tensors, True where the query may attend to the key, in the
convention of ``torch.nn.functional.scaled_dot_product_attention``. ``None`` means "everything".

- naive:        everything sees everything (the context is re-noised, so nothing is reusable).
- encdec:       context frames (the first C) see only context; target frames and the t-token
                see everything. Context states therefore never depend on t, the noise or the target.
- block_causal: frames are grouped in chunks of `chunk` frames, counted from the start of the
                sequence; a chunk sees itself and the `window - 1` chunks before it; the t-token
                belongs to the last chunk (so only the target sees it).
"""

from __future__ import annotations

import torch

REGIMES = ("naive", "encdec", "block_causal")


def check_regime(regime: str) -> str:
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}: choose one of {', '.join(REGIMES)}")
    return regime


def encdec_mask(context_frames: int, frames: int) -> torch.Tensor:
    """[frames+1, frames+1]: key < C or query >= C."""
    n = frames + 1
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    return (k < context_frames) | (q >= context_frames)


def chunk_ids(frames: int, chunk: int) -> torch.Tensor:
    """[frames+1] chunk index of every token; the t-token shares the last frame's chunk."""
    if frames % chunk:
        raise ValueError(f"{frames} frames is not a whole number of {chunk}-frame chunks")
    ids = torch.arange(frames) // chunk
    return torch.cat((ids, ids[-1:]))


def block_causal_mask(frames: int, chunk: int, window: int) -> torch.Tensor:
    """[frames+1, frames+1]: chunk(k) <= chunk(q) and chunk(k) > chunk(q) - window."""
    c = chunk_ids(frames, chunk)
    cq, ck = c[:, None], c[None, :]
    return (ck <= cq) & (ck > cq - window)


def regime_mask(regime: str, frames: int, context_frames: int, chunk: int, window: int) -> torch.Tensor | None:
    """The training/uncached mask of a regime over `frames` frames + the t-token."""
    check_regime(regime)
    if regime == "naive":
        return None
    if regime == "encdec":
        return encdec_mask(context_frames, frames)
    return block_causal_mask(frames, chunk, window)
