"""SAO-Small's shapes without its weights: the config, and a randomly initialised model of it.

    SAO_SMALL            1024 x 16 DiT, 64-d latents at 44.1 kHz / 2048 (21.5 frames/s), 48-frame
                         blocks (2.229 s), 4 blocks of context, 65 text tokens of 768
    random_sao_small()   an LMDM of those shapes with random weights; T5 replaced by random tokens of
                         its shape (the prompt is encoded once per stream, so it does not enter the
                         per-block time)

What `lmdm bench --config sao-small`, `python -m lmdm.eval.sao_bench` and the device check time
when the real checkpoint is not on the machine; nothing here needs the real weights.
"""

from __future__ import annotations

from typing import Any

import torch

from lmdm.codec.oobleck import OobleckCodec
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT, init_weights
from lmdm.model.lmdm import LMDM
from lmdm.sao.text import SaoTextEncoder

SAO_SMALL = ModelConfig(
    latent_dim=64, frame_rate=44100 / 2048, sample_rate=44100, channels=2, width=1024, depth=16, heads=8, rotary_dims=64,
    rope_base=10000.0, mlp_ratio=4, timestep_features=256, cond_dim=768, cond_tokens=65, block_frames=48, context_blocks=4,
)


def random_sao_small(seed: int = 0, codec: Any = None) -> LMDM:
    """SAO-Small's shapes with random weights (the Oobleck VAE unless `codec` is given)."""
    g = torch.Generator().manual_seed(seed)
    dit = DiT(SAO_SMALL)
    init_weights(dit, g)
    tokens = torch.randn(1, 64, 768, generator=g)  # [1, T5 tokens, T5 width]
    text = SaoTextEncoder(768, 64, lambda texts: tokens.expand(len(texts), -1, -1))
    return LMDM(SAO_SMALL, dit, text, codec if codec is not None else OobleckCodec(), name="sao-small-random").eval()
