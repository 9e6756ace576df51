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

from lmdm.conditioning.clock import CLOCK_NAME, clock_features, phase_onsets, window_bpm
from lmdm.conditioning.sketch import SKETCH_NAMES, has_sketch, sketch_features
from lmdm.corpus.score import STEM_NAMES
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
    sketch_present: torch.Tensor | None = None  # models with sketch inputs: [b, 3], 0 = that control dropped
    jam: torch.Tensor | None = None  # models with an accomp input: [b] bool, True = a jamming window (see apply_jam)
    jam_stem: torch.Tensor | None = None  # [b] long: which stem the player plays
    accomp_start: torch.Tensor | None = None  # [b] long: accompaniment visible on window frames [start, cutoff)
    accomp_cutoff: torch.Tensor | None = None  # [b] long
    clock_present: torch.Tensor | None = None  # models with a clock input: [b], 0 = no clock in this window
    beat_rhythm: torch.Tensor | None = None  # train.beat_sketch > 0: [b] bool, the rhythm sketch is the beat grid


def draw(stage: str, config: ModelConfig, batch: int, frames: int, train: TrainSettings, generator: torch.Generator) -> Draws:
    """The draws of one step. `frames`: base window length (ignored for lmdm)."""
    target = frames if stage == "base" else config.block_frames
    noise = torch.randn(batch, config.latent_dim, target, generator=generator)
    t = sample_timesteps(batch, train.timesteps, generator, logit_mean=train.logit_mean, logit_std=train.logit_std, shift=train.time_shift)
    text_keep = torch.rand(batch, generator=generator) >= train.text_dropout
    keep = present = sketch = None
    if stage != "base":
        keep = context_dropout(batch, config.context_blocks, config.block_frames, train.context_drop_full, train.context_drop_partial, generator)
        present = (torch.rand(batch, generator=generator) >= train.context_dropout).float()[:, None, None]
    if has_sketch(config.extra_add_inputs):
        sketch = (torch.rand(batch, len(SKETCH_NAMES), generator=generator) >= train.sketch_dropout).float()
    jam = stem = start = cutoff = None
    if config.add_slice("accomp") is not None:
        n = frames if stage == "base" else config.window_frames
        jam = torch.rand(batch, generator=generator) < train.jam_prob
        stem = torch.randint(0, len(STEM_NAMES), (batch,), generator=generator)
        if stage == "base":  # anything from nothing heard to all of it
            cutoff = torch.randint(0, n + 1, (batch,), generator=generator)
        else:  # heard up to 1 or 2 blocks before the target: the latency of a live engine with 1-2 blocks queued
            cutoff = config.context_frames - config.block_frames * torch.randint(1, 3, (batch,), generator=generator)
            cutoff = cutoff.clamp(min=0)
        partial = torch.rand(batch, generator=generator) < train.accomp_drop_partial
        start = torch.where(partial, (torch.rand(batch, generator=generator) * cutoff).long(), torch.zeros(batch, dtype=torch.long))
        if sketch is not None:  # the sketch describes the whole mix, not the accompaniment: none on jamming windows
            sketch = sketch * (~jam).float()[:, None]
        if keep is not None and train.jam_context_drop > 0:  # drawn last: recipes without it draw exactly as before
            blind = jam & (torch.rand(batch, generator=generator) < train.jam_context_drop)
            keep = keep * (~blind).float()[:, None, None]
    clock = None
    if config.add_slice(CLOCK_NAME) is not None:  # drawn last: models without a clock draw exactly as before
        clock = (torch.rand(batch, generator=generator) >= train.clock_dropout).float()
    beat = None
    if sketch is not None and train.beat_sketch > 0:  # drawn last: recipes without it draw exactly as before
        beat = torch.rand(batch, generator=generator) < train.beat_sketch
    return Draws(noise, t, text_keep, keep, present, sketch, jam, stem, start, cutoff, clock, beat)


def apply_jam(latents: torch.Tensor, annotations: dict[str, torch.Tensor] | None, draws: Draws) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Jamming windows: the model makes the accompaniment around what a player plays.

    latents [b, D, n] (the full mix) -> (latents with jamming rows replaced by the mix of the other
    stems, accomp add channels [b, 1 + D, n] = [heard mask, player's stem latents] or None).
    """
    if draws.jam is None:
        return latents, None
    b, d, n = latents.shape
    if not draws.jam.any():
        return latents, torch.zeros(b, 1 + d, n, dtype=latents.dtype, device=latents.device)
    if not annotations or "stems" not in annotations:
        raise ValueError("jamming windows (train.jam_prob > 0) need latents encoded with stems: lmdm train encode --stems")
    stems = annotations["stems"].to(latents.device, latents.dtype)  # [b, 2, S, D, n]
    rows = torch.arange(b, device=latents.device)
    stem = draws.jam_stem.to(latents.device)
    jam = draws.jam.to(latents.device)
    if "has_stems" in annotations:  # examples encoded without stems stay ordinary windows
        jam = jam & annotations["has_stems"].to(latents.device)
    latents = torch.where(jam[:, None, None], stems[rows, 1, stem], latents)
    frame = torch.arange(n, device=latents.device)[None, :]
    heard = (frame >= draws.accomp_start.to(latents.device)[:, None]) & (frame < draws.accomp_cutoff.to(latents.device)[:, None]) & jam[:, None]
    mask = heard.to(latents.dtype)[:, None, :]  # [b, 1, n]
    return latents, torch.cat((mask, stems[rows, 0, stem] * mask), dim=1)


def add_accomp(w: Window, accomp: torch.Tensor | None, config: ModelConfig) -> Window:
    """Write the accomp channels [b, 1 + D, n] (aligned with the whole window) into the window's `add`."""
    where = config.add_slice("accomp")
    if accomp is None or where is None:
        return w
    w.add[:, where, :] = accomp.to(w.add.device, w.add.dtype)
    return w


def add_sketch(w: Window, annotations: dict[str, torch.Tensor] | None, present: torch.Tensor | None, config: ModelConfig) -> Window:
    """Write the sketch channels (lmdm.conditioning.sketch) onto the last frames of the window's `add`.

    annotations {melody, onsets, loudness_db: [b, F]} cover the target frames (the last F).
    Nothing happens for a model without sketch inputs (present is None).
    """
    if present is None:
        return w
    if not annotations or any(k not in annotations for k in ("melody", "onsets", "loudness_db")):
        raise ValueError("this model has sketch inputs but the latents have no annotations (re-encode the corpus)")
    features = sketch_features(annotations["melody"], annotations["onsets"], annotations["loudness_db"], present)
    start = config.add_slice(SKETCH_NAMES[0]).start  # the sketch channels sit together, in SKETCH_INPUTS order
    n = features.shape[2]
    w.add[:, start : start + features.shape[1], -n:] = features.to(w.add.device, w.add.dtype)
    return w


def add_clock(w: Window, annotations: dict[str, torch.Tensor] | None, present: torch.Tensor | None, config: ModelConfig) -> Window:
    """Write the clock channels (lmdm.conditioning.clock) onto the last frames of the window's `add`.

    annotations {beat_phase, bar_phase: [b, F]} cover the target frames (the last F), F >= 2.
    Nothing happens for a model without a clock input (present is None).
    """
    if present is None:
        return w
    if not annotations or any(k not in annotations for k in ("beat_phase", "bar_phase")):
        raise ValueError("this model has a clock input but the latents have no beat_phase/bar_phase annotations (re-encode the corpus)")
    beat, bar = annotations["beat_phase"], annotations["bar_phase"]
    features = clock_features(beat, bar, window_bpm(beat, config.frame_rate), present)
    n = features.shape[2]
    w.add[:, config.add_slice(CLOCK_NAME), -n:] = features.to(w.add.device, w.add.dtype)
    return w


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


def base_loss(dit: DiT, text: nn.Module, latents: torch.Tensor, captions: Sequence[str], draws: Draws,
              annotations: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """latents [b, D, L] clean windows -> mean squared velocity error over all frames."""
    x0, accomp = apply_jam(latents, annotations, draws)
    t = draws.t.to(x0.device)
    eps = draws.noise.to(x0.device)
    x = noised(x0, eps, t[:, None, None])
    tokens, pooled = encode_captions(text, captions, draws.text_keep)
    w = add_sketch(base_window(x0.shape[0], x0.shape[2], dit.config, x0.device), annotations, draws.sketch_present, dit.config)
    w = add_clock(w, annotations, draws.clock_present, dit.config)
    w = add_accomp(w, accomp, dit.config)
    v = dit(x, t, w.add, tokens, pooled, w.route, w.positions, w.mask)
    return F.mse_loss(v.float(), (eps - x0).float())


def beat_rhythm(annotations: dict[str, torch.Tensor] | None, beat: torch.Tensor | None) -> dict[str, torch.Tensor] | None:
    """The windows drawn for it (`beat` [b] bool) get the beat grid of their `beat_phase` as their
    rhythm sketch's onsets instead of the notes' onsets: what a stream with a tempo asked plays
    (lmdm.conditioning.clock.beat_onsets), so the model learns to play full music over it."""
    if beat is None:
        return annotations
    if not annotations or "beat_phase" not in annotations or "onsets" not in annotations:
        raise ValueError("train.beat_sketch needs beat_phase and onsets annotations in the latents (re-encode the corpus)")
    grid = phase_onsets(annotations["beat_phase"])
    return {**annotations, "onsets": torch.where(beat.to(grid.device)[:, None], grid, annotations["onsets"])}


def lmdm_loss(dit: DiT, text: nn.Module, latents: torch.Tensor, captions: Sequence[str], draws: Draws, regime: str,
              annotations: dict[str, torch.Tensor] | None = None, config: ModelConfig | None = None) -> torch.Tensor:
    """latents [b, D, C + B] clean windows -> mean squared velocity error over the target block.

    `config`: the window's geometry when it is not the DiT's own (one of its `geometries`)."""
    config = config or dit.config
    C = config.context_frames
    latents, accomp = apply_jam(latents, annotations, draws)
    context, x0 = latents[:, :, :C], latents[:, :, C:]
    t = draws.t.to(x0.device)
    eps = draws.noise.to(x0.device)
    keep = None if draws.context_keep is None else draws.context_keep.to(x0.device)
    present = None if draws.context_present is None else draws.context_present.to(x0.device)
    w = lmdm_window(regime, context, config, keep, present)
    target_ann = None if annotations is None else {k: a[:, C:] for k, a in annotations.items() if k not in ("stems", "has_stems")}
    target_ann = beat_rhythm(target_ann, draws.beat_rhythm)
    w = add_sketch(w, target_ann, draws.sketch_present, config)  # the sketch is on the target only
    w = add_clock(w, target_ann, draws.clock_present, config)  # so is the clock
    w = add_accomp(w, accomp, config)  # the player's stem, where heard (before the latency cutoff)
    x = torch.cat((torch.zeros_like(context), noised(x0, eps, t[:, None, None])), dim=2)  # routed: context x is unused
    tokens, pooled = encode_captions(text, captions, draws.text_keep)
    v = dit(x, t, w.add, tokens, pooled, w.route, w.positions, w.mask)[:, :, C:]
    return F.mse_loss(v.float(), (eps - x0).float())


def step_loss(stage: str, regime: str, dit: DiT, text: nn.Module, latents: torch.Tensor, captions: Sequence[str], draws: Draws,
              annotations: dict[str, torch.Tensor] | None = None, config: ModelConfig | None = None) -> torch.Tensor:
    if stage == "base":
        return base_loss(dit, text, latents, captions, draws, annotations)
    return lmdm_loss(dit, text, latents, captions, draws, regime, annotations, config)
