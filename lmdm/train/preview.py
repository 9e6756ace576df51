"""Hear a run while it trains: render a few seconds for a fixed prompt into <run>/samples/.

- lmdm stage: a short stream through `LiveSession` in the trained regime (cached, ping-pong,
  CFG 1), exactly what a user would hear;
- base stage: the base model is not a streaming model, so one window is sampled from noise
  (Euler, no context) and decoded.

Previews use their own seeded generators, so they never change the training run's numbers.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from lmdm.codec.base import Codec
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT
from lmdm.model.lmdm import LMDM
from lmdm.sampling import sample
from lmdm.session import LiveSession
from lmdm.train.objective import base_window


def cpu_model(config: ModelConfig, dit: DiT, text: torch.nn.Module, codec: Codec) -> LMDM:
    """An inference `LMDM` sharing (on CPU) or copying (elsewhere) the training modules."""
    if next(dit.parameters()).device.type != "cpu":
        dit, text = copy.deepcopy(dit).cpu(), copy.deepcopy(text).cpu()
    return LMDM(config, dit, text, codec, name="preview")


@torch.no_grad()
def base_sample(model: LMDM, prompt: str, frames: int, steps: int, seed: int = 0) -> np.ndarray:
    """One window of `frames` frames from the base model -> audio [samples, channels]."""
    cfg = model.config
    cond = model.encode_prompt(prompt)
    g = torch.Generator().manual_seed(seed)
    w = base_window(1, frames, cfg)

    def denoise(x: torch.Tensor, t: float, i: int) -> torch.Tensor:
        return model.dit(x, torch.full((1,), t), w.add, cond.tokens[None], cond.pooled[None], w.route, w.positions, w.mask)

    x0 = sample(denoise, torch.randn(1, cfg.latent_dim, frames, generator=g), steps, "euler", g)
    return model.codec.decode(x0)[0].T.numpy()


def render_preview(
    path: Path, stage: str, regime: str, config: ModelConfig, dit: DiT, text: torch.nn.Module, codec: Codec,
    prompt: str, seconds: float, steps: int,
) -> Path:
    was_training = dit.training
    model = cpu_model(config, dit, text, codec)
    model.dit.eval()
    model.text.eval()
    try:
        if stage == "base":
            audio = base_sample(model, prompt, max(1, round(seconds * config.frame_rate)), steps)
        else:
            audio = LiveSession(model, prompt=prompt, regime=regime, steps=steps, sampler="pingpong", seed=0).render(seconds)
    finally:
        if was_training:
            dit.train()
            text.train()
    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    sf.write(path, audio / max(1.0, peak), config.sample_rate)  # clip-safe, otherwise as generated
    return path
