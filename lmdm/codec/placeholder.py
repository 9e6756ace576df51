"""PlaceholderCodec: a fixed, untrained sinusoid bank standing in for a real codec.

It exists so that a model with random weights (tests, docs, benchmarks) produces *some* audio
through the same streaming path as a trained model. It is not a learned codec and does not
reconstruct music: latent channel d sets the amplitude of a sine at a fixed frequency, and the
amplitude glides linearly from one frame to the next, so decoding is causal and streaming decode
equals offline decode exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _amplitude(z: torch.Tensor, scale: float) -> torch.Tensor:
    return scale * torch.nn.functional.softplus(z)


def _inverse_amplitude(a: torch.Tensor, scale: float) -> torch.Tensor:
    a = (a / scale).clamp(1e-6, 50.0)
    return torch.log(torch.expm1(a))


class PlaceholderStreamDecoder:
    def __init__(self, codec: "PlaceholderCodec"):
        self.codec = codec
        self.reset()

    def reset(self) -> None:
        self.prev: torch.Tensor | None = None  # [B, D] amplitudes of the previous frame
        self.sample = 0  # samples decoded so far

    def push(self, latents: torch.Tensor) -> torch.Tensor:
        c = self.codec
        b, d, n = latents.shape
        amp = _amplitude(latents.double(), c.scale)  # [B, D, n]
        prev = torch.zeros(b, d, 1, dtype=amp.dtype) if self.prev is None else self.prev[:, :, None]
        knots = torch.cat((prev, amp), dim=2)  # [B, D, n+1]
        # linear glide from frame i-1 to frame i over the hop of frame i
        ramp = torch.arange(1, c.hop + 1, dtype=amp.dtype) / c.hop  # [hop]
        env = knots[:, :, :-1, None] + (knots[:, :, 1:, None] - knots[:, :, :-1, None]) * ramp  # [B, D, n, hop]
        env = env.reshape(b, d, n * c.hop)
        idx = torch.arange(self.sample, self.sample + n * c.hop, dtype=torch.float64)
        phase = torch.remainder(idx[None, :] * c.omega[:, None], 2 * math.pi)  # [D, T]
        audio = (env * torch.sin(phase)[None]).sum(1, keepdim=True)  # [B, 1, T]
        self.prev = amp[:, :, -1]
        self.sample += n * c.hop
        return audio.to(torch.float32).repeat(1, c.channels, 1)


class PlaceholderStreamEncoder:
    def __init__(self, codec: "PlaceholderCodec"):
        self.codec = codec
        self.reset()

    def reset(self) -> None:
        self.buffer = torch.zeros(0)

    def push(self, audio: torch.Tensor) -> torch.Tensor:
        buf = audio if self.buffer.numel() == 0 else torch.cat((self.buffer, audio), dim=2)
        whole = buf.shape[2] // self.codec.hop * self.codec.hop
        self.buffer = buf[:, :, whole:]
        return self.codec.encode(buf[:, :, :whole])


class PlaceholderCodec:
    """A fixed sine bank (NOT trained, NOT a real codec). See the module docstring."""

    name = "placeholder"

    def __init__(self, sample_rate: int = 16000, hop: int = 640, latent_dim: int = 32, channels: int = 1, scale: float | None = None):
        self.sample_rate = sample_rate
        self.hop = hop
        self.latent_dim = latent_dim
        self.channels = channels
        self.scale = scale if scale is not None else 0.3 / latent_dim
        freqs = np.geomspace(110.0, min(3520.0, 0.4 * sample_rate), latent_dim)
        self.omega = torch.tensor(2 * math.pi * freqs / sample_rate, dtype=torch.float64)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.stream_decoder().push(latents)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Least-effort inverse: per-frame sine magnitude at each bank frequency."""
        b, ch, t = audio.shape
        n = t // self.hop
        x = audio[:, :, : n * self.hop].mean(1).double().reshape(b, n, self.hop)  # [B, n, hop]
        idx = torch.arange(n * self.hop, dtype=torch.float64).reshape(n, self.hop)
        ph = idx[None, :, :] * self.omega[:, None, None]  # [D, n, hop]
        re = (x[:, None] * torch.cos(ph)[None]).sum(-1)
        im = (x[:, None] * torch.sin(ph)[None]).sum(-1)
        mag = 2 * torch.sqrt(re**2 + im**2) / self.hop  # [B, D, n]
        return _inverse_amplitude(mag, self.scale).to(torch.float32)

    def stream_decoder(self) -> PlaceholderStreamDecoder:
        return PlaceholderStreamDecoder(self)

    def stream_encoder(self) -> PlaceholderStreamEncoder:
        return PlaceholderStreamEncoder(self)
