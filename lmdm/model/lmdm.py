"""LMDM: the diffusion transformer, its text encoder and its codec, as one object."""

from __future__ import annotations

import torch

from lmdm.codec.base import Codec
from lmdm.codec.placeholder import PlaceholderCodec
from lmdm.conditioning.text import Conditioning, HashedTextEncoder
from lmdm.model.config import ModelConfig
from lmdm.model.dit import DiT, init_weights


class LMDM:
    """What `LiveSession` needs: `dit` (the transformer), `text` (prompt -> Conditioning), `codec`."""

    def __init__(self, config: ModelConfig, dit: DiT, text: HashedTextEncoder, codec: Codec, name: str = "random", guidance: float = 1.0,
                 steps: int = 8, guide_inputs: float = 0.0):
        if codec.latent_dim != config.latent_dim or codec.hop != config.hop or codec.sample_rate != config.sample_rate:
            raise ValueError(
                f"codec (latent_dim={codec.latent_dim}, hop={codec.hop}, rate={codec.sample_rate}) does not match the "
                f"model (latent_dim={config.latent_dim}, hop={config.hop}, rate={config.sample_rate})"
            )
        self.config = config
        self.dit = dit
        self.text = text
        self.codec = codec
        self.name = name
        self.guidance = guidance  # the CFG scale this model sounds best with (LiveSession's default; 1 = one pass)
        self.steps = steps  # the sampler steps it is made for (LiveSession's default; an ARC-forced model: 4)
        self.guide_inputs = guide_inputs  # how much its guidance pushes towards the sketch and clock too (LiveSession's default)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def block_samples(self) -> int:
        return self.config.block_frames * self.config.hop

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.dit.parameters())

    @torch.no_grad()
    def encode_prompt(self, text: str) -> Conditioning:
        return self.text.encode(text)

    def reblocked(self, block_frames: int) -> "LMDM":
        """The same weights playing blocks of `block_frames` frames, one of the lengths it was trained
        on (`config.geometries`; a ValueError naming them otherwise). Itself when it is its own."""
        if block_frames == self.config.block_frames:
            return self
        return LMDM(self.config.reblocked(block_frames), self.dit, self.text, self.codec, self.name, self.guidance, self.steps, self.guide_inputs)

    def eval(self) -> "LMDM":
        self.dit.eval()
        self.text.eval()
        return self


def build_model(config: ModelConfig | None = None, seed: int = 0, codec: Codec | None = None) -> LMDM:
    """A model with random weights (deterministic for a seed) and, unless given, the placeholder codec."""
    config = config or ModelConfig.small()
    g = torch.Generator().manual_seed(seed)
    dit = DiT(config)
    init_weights(dit, g)
    text = HashedTextEncoder(config.cond_dim, config.cond_tokens)
    with torch.no_grad():
        text.table.weight.normal_(0.0, 1.0, generator=g)
        text.position.normal_(0.0, 0.1, generator=g)
    codec = codec or PlaceholderCodec(config.sample_rate, config.hop, config.latent_dim, config.channels)
    return LMDM(config, dit, text, codec).eval()
