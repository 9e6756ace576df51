"""The codec protocol: audio <-> latent frames, offline and streaming.

Every codec maps audio ``[batch, channels, samples]`` to latents ``[batch, latent_dim, frames]``
with ``hop = sample_rate / frame_rate`` samples per frame. The streaming objects keep whatever
state a block boundary needs, so that decoding consecutive blocks gives the same samples as
decoding the whole latent sequence at once.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class StreamDecoder(Protocol):
    def push(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, D, n] -> audio [B, C, n * hop]; continues from the previous push."""
        ...

    def reset(self) -> None:
        """Forget the past: the next push decodes as if it were the start of a stream."""
        ...


@runtime_checkable
class StreamEncoder(Protocol):
    def push(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, C, n] -> latents [B, D, k] for every frame completed so far."""
        ...

    def reset(self) -> None:
        ...


@runtime_checkable
class Codec(Protocol):
    sample_rate: int
    channels: int
    latent_dim: int
    hop: int  # samples per latent frame

    @property
    def frame_rate(self) -> float:
        ...

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, C, T] (T a multiple of hop) -> latents [B, D, T // hop]."""
        ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, D, N] -> audio [B, C, N * hop]."""
        ...

    def stream_encoder(self) -> StreamEncoder:
        ...

    def stream_decoder(self) -> StreamDecoder:
        ...
