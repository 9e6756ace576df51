"""The training objective: rectified flow on latent windows, as small pure functions.

    x_t = (1 - t) x0 + t eps,   the DiT predicts v = eps - x0,   loss = MSE(v_hat, eps - x0)

Two stages (docs/training.md):

- base: a bidirectional DiT on whole windows; every frame is target. No routing, no mask, the
  additive input is zero. Frames at positions 1..L, the t-token at 0.
- lmdm: windows of C context + B target frames. The clean context enters only through
  `to_input_add` ([mask = 1, clean latent]); `route` is 0 on context frames; the regime's mask;
  positions as at inference (context 1..C, target C+1..C+B, t-token 0). Loss on the target only.

All randomness of one step is drawn up front into a `Draws` value (from a seeded CPU generator),
so a step is a pure function of (weights, batch, draws): tests fix the draws, resumption
restores the generator.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from lmdm.conditioning.text import null_conditioning
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT
from lmdm.model.window import Window, context_add, window_inputs
from lmdm.sampling import noised
from lmdm.train.recipe import TrainSettings


# ----------------------------------------------------------------------------------------------
# Random draws


def sample_timesteps(
    n: int, kind: str, generator: torch.Generator, *, logit_mean: float = 0.0, logit_std: float = 1.0, shift: float = 0.0
) -> torch.Tensor:
    """[n] noise levels t in [0, 1].

    uniform: stratified over the batch (one draw in each of n equal bins, shuffled), a cheap
    low-discrepancy stand-in for the paper's Sobol draws. logit_normal: sigmoid(N(mean, std)).
    shift: t <- sigmoid(logit(t) + shift), the SD3-style shift (the paper shifts by length).
    """
    if kind == "uniform":
        t = (torch.arange(n, dtype=torch.float64) + torch.rand(n, generator=generator, dtype=torch.float64)) / n
        t = t[torch.randperm(n, generator=generator)]
    elif kind == "logit_normal":
        t = torch.sigmoid(logit_mean + logit_std * torch.randn(n, generator=generator, dtype=torch.float64))
    else:
        raise ValueError(f"unknown timestep distribution {kind!r}: uniform or logit_normal")
    if shift:
        t = torch.sigmoid(torch.logit(t.clamp(1e-7, 1 - 1e-7)) + shift)
    return t.to(torch.float32)


def context_dropout(
    batch: int, context_blocks: int, block_frames: int, p_full: float, p_partial: float, generator: torch.Generator
) -> torch.Tensor:
    """[batch, 1, C] with 1 where the clean context latent is kept, 0 where it is zeroed.

    Simulates the start of a stream, whose context is still all zeros (the context mask stays 1):
    with p_full the whole context is zeroed; with p_partial the oldest k blocks, k ~ U{1..K}.
    """
    u = torch.rand(batch, generator=generator)
    k = torch.randint(1, context_blocks + 1, (batch,), generator=generator)
    full = u < p_full
    partial = (u >= p_full) & (u < p_full + p_partial)
    dropped = torch.where(full, context_blocks, torch.where(partial, k, 0))  # oldest blocks zeroed
    keep = (torch.arange(context_blocks)[None, :] >= dropped[:, None]).float()  # [batch, K]
    return keep.repeat_interleave(block_frames, dim=1)[:, None, :]


@attrs.frozen(eq=False)
class Draws:
    """Everything random in one training step."""

    noise: torch.Tensor  # [b, D, frames the loss sees]
    t: torch.Tensor  # [b]
    text_keep: torch.Tensor  # [b] bool: False = the null prompt
    context_keep: torch.Tensor | None = None  # lmdm: [b, 1, C], 0 = context latent zeroed (stream start)
    context_present: torch.Tensor | None = None  # lmdm: [b, 1, 1], 0 = whole context input dropped (CFG)


def draw(stage: str, config: ModelConfig, batch: int, frames: int, train: TrainSettings, generator: torch.Generator) -> Draws:
    """The draws of one step. `frames`: base window length (ignored for lmdm)."""
    target = frames if stage == "base" else config.block_frames
    noise = torch.randn(batch, config.latent_dim, target, generator=generator)
    t = sample_timesteps(batch, train.timesteps, generator, logit_mean=train.logit_mean, logit_std=train.logit_std, shift=train.time_shift)
    text_keep = torch.rand(batch, generator=generator) >= train.text_dropout
    if stage == "base":
        return Draws(noise, t, text_keep)
    keep = context_dropout(batch, config.context_blocks, config.block_frames, train.context_drop_full, train.context_drop_partial, generator)
    present = (torch.rand(batch, generator=generator) >= train.context_dropout).float()[:, None, None]
    return Draws(noise, t, text_keep, keep, present)


# ----------------------------------------------------------------------------------------------
# Inputs and losses


def encode_captions(text: nn.Module, captions: Sequence[str], keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> (tokens [b, N, cond_dim], pooled [b, cond_dim]), with gradients into the encoder.

    Dropped prompts (keep False) become the null conditioning (all zeros), as at inference.
    """
    null = null_conditioning(text.cond_dim, text.max_tokens)
    device = text.position.device
    conds = [text.encode(c) if k else null for c, k in zip(captions, keep.tolist())]
    tokens = torch.stack([c.tokens.to(device) for c in conds])
    pooled = torch.stack([c.pooled.to(device) for c in conds])
    return tokens, pooled


def base_window(batch: int, frames: int, config: ModelConfig, device: torch.device | str = "cpu") -> Window:
    """The base model's inputs: a window with no context (frames 1..L, t at 0, no route, no mask)."""
    return window_inputs("naive", torch.zeros(batch, config.add_dim, 0, device=device), frames, 0, config.context_blocks + 1)


def lmdm_window(regime: str, context: torch.Tensor, config: ModelConfig, keep: torch.Tensor | None = None, present: torch.Tensor | None = None) -> Window:
    """An LMDM training window for clean context latents [b, D, C], after context dropout."""
    if keep is not None:
        context = context * keep
    if present is not None:
        context = context * present
    add = context_add(context, config.add_dim, present)
    return window_inputs(regime, add, config.block_frames, config.context_frames, config.context_blocks + 1)


def base_loss(dit: DiT, text: nn.Module, latents: torch.Tensor, captions: Sequence[str], draws: Draws) -> torch.Tensor:
    """latents [b, D, L] clean windows -> mean squared velocity error over all frames."""
    x0 = latents
    t = draws.t.to(x0.device)
    eps = draws.noise.to(x0.device)
    x = noised(x0, eps, t[:, None, None])
    tokens, pooled = encode_captions(text, captions, draws.text_keep)
    w = base_window(x0.shape[0], x0.shape[2], dit.cfg, x0.device)
    v = dit(x, t, w.add, tokens, pooled, w.route, w.positions, w.mask)
    return F.mse_loss(v.float(), (eps - x0).float())


def lmdm_loss(dit: DiT, text: nn.Module, latents: torch.Tensor, captions: Sequence[str], draws: Draws, regime: str) -> torch.Tensor:
    """latents [b, D, C + B] clean windows -> mean squared velocity error over the target block."""
    C = dit.cfg.context_frames
    context, x0 = latents[:, :, :C], latents[:, :, C:]
    t = draws.t.to(x0.device)
    eps = draws.noise.to(x0.device)
    keep = None if draws.context_keep is None else draws.context_keep.to(x0.device)
    present = None if draws.context_present is None else draws.context_present.to(x0.device)
    w = lmdm_window(regime, context, dit.cfg, keep, present)
    x = torch.cat((torch.zeros_like(context), noised(x0, eps, t[:, None, None])), dim=2)  # routed: context x is unused
    tokens, pooled = encode_captions(text, captions, draws.text_keep)
    v = dit(x, t, w.add, tokens, pooled, w.route, w.positions, w.mask)[:, :, C:]
    return F.mse_loss(v.float(), (eps - x0).float())


def step_loss(stage: str, regime: str, dit: DiT, text: nn.Module, latents: torch.Tensor, captions: Sequence[str], draws: Draws) -> torch.Tensor:
    if stage == "base":
        return base_loss(dit, text, latents, captions, draws)
    return lmdm_loss(dit, text, latents, captions, draws, regime)
