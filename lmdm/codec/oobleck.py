"""The Oobleck VAE of Stable Audio Open (Small), in our codec protocol: 44.1 kHz stereo <-> 21.5 latent frames/s.

Data flow (SAO-Small sizes; C = 128 base channels, strides 2, 4, 4, 8, 8 = hop 2048):

    audio [B, 2, T]
      encoder.layers: conv k7 (2 -> C) -> 5 EncoderBlocks (C -> C -> 2C -> 4C -> 8C -> 16C, each: 3 residual
                      units at dilations 1, 3, 9, SnakeBeta, strided conv k=2s) -> SnakeBeta -> conv k3 (16C -> 128)
    [B, 128, T / 2048] = mean (64) | scale (64) of a diagonal Gaussian; `encode` returns the mean
    latents [B, 64, N]
      decoder.layers: conv k7 (64 -> 16C) -> 5 DecoderBlocks (SnakeBeta, transposed conv k=2s, 3 residual
                      units) -> SnakeBeta -> conv k7 (C -> 2, no bias)
    audio [B, 2, N * 2048]

Module names follow stable-audio-tools' (`encoder.layers.1.layers.4.weight`, ...), so a checkpoint
maps onto this module by folding its weight norm (`weight_g`, `weight_v` -> `weight`, see
`fold_weight_norm`) and dropping the `pretransform.model.` prefix (lmdm/sao/keys.py).

Oobleck is NOT causal: every convolution is centred, so an output sample depends on latents on
both sides of it. Streaming therefore decodes each push inside a window that adds the receptive
field on both sides (`receptive_field`), and returns only the samples whose whole receptive field
has arrived. The result equals offline decoding of the whole sequence (no crossfade: the kept
samples are computed from exactly the same inputs). The price is latency: the last
`lookahead` frames of every push come out with the next push (or `flush()`); at SAO-Small sizes
that is 10 frames = 464 ms, plus the recomputed context (docs/sao.md).
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from lmdm.config_fields import from_fields, positive


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@attrs.frozen
class OobleckConfig:
    """The shape of an Oobleck autoencoder (stable-audio-tools' `oobleck` encoder/decoder configs)."""

    sample_rate: int = attrs.field(default=44100, validator=positive)
    channels: int = attrs.field(default=2, validator=positive)  # audio channels (in_channels / out_channels)
    base_channels: int = attrs.field(default=128, validator=positive)  # `channels` in the SAO config
    c_mults: tuple[int, ...] = attrs.field(default=(1, 2, 4, 8, 16), converter=_ints)
    strides: tuple[int, ...] = attrs.field(default=(2, 4, 4, 8, 8), converter=_ints)
    latent_dim: int = attrs.field(default=64, validator=positive)  # decoder input; the encoder outputs 2x (mean, scale)
    use_snake: bool = True  # SnakeBeta activations (else ELU)
    final_tanh: bool = False

    def __attrs_post_init__(self) -> None:
        if len(self.c_mults) != len(self.strides) or not self.strides:
            raise ValueError(f"OobleckConfig: c_mults {self.c_mults} and strides {self.strides} must be non-empty and as long")
        if any(s <= 0 or s % 2 for s in self.strides):
            raise ValueError(f"OobleckConfig: strides must be even and > 0 (exact length changes), got {self.strides}")

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["c_mults"], d["strides"] = list(self.c_mults), list(self.strides)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OobleckConfig":
        return from_fields(cls, d)


# ----------------------------------------------------------------------------------------------
# Layers


class SnakeBeta(nn.Module):
    """x + sin^2(a x) / b per channel, with a = exp(alpha) and b = exp(beta) (both stored as logs)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        a = self.alpha.exp()[:, None]
        b = self.beta.exp()[:, None]
        return x + torch.sin(a * x).pow(2) / (b + 1e-9)


def activation(channels: int, use_snake: bool) -> nn.Module:
    return SnakeBeta(channels) if use_snake else nn.ELU()


def centred_conv(c_in: int, c_out: int, kernel_size: int, dilation: int = 1, bias: bool = True) -> nn.Conv1d:
    """A stride-1 convolution padded on both sides: length unchanged, output i centred on input i."""
    return nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2, bias=bias)


class ResidualUnit(nn.Module):
    """x + conv1x1(act(conv k7 dilated(act(x))))."""

    def __init__(self, channels: int, dilation: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            activation(channels, use_snake),
            centred_conv(channels, channels, 7, dilation),
            activation(channels, use_snake),
            centred_conv(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class EncoderBlock(nn.Module):
    """Residual units at c_in, then a strided conv (k = 2s, padding ceil(s/2)): length / s, c_in -> c_out."""

    def __init__(self, c_in: int, c_out: int, stride: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            ResidualUnit(c_in, 1, use_snake),
            ResidualUnit(c_in, 3, use_snake),
            ResidualUnit(c_in, 9, use_snake),
            activation(c_in, use_snake),
            nn.Conv1d(c_in, c_out, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    """A transposed conv (k = 2s, padding ceil(s/2)): length * s, c_in -> c_out; then residual units at c_out."""

    def __init__(self, c_in: int, c_out: int, stride: int, use_snake: bool):
        super().__init__()
        self.layers = nn.Sequential(
            activation(c_in, use_snake),
            nn.ConvTranspose1d(c_in, c_out, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
            ResidualUnit(c_out, 1, use_snake),
            ResidualUnit(c_out, 3, use_snake),
            ResidualUnit(c_out, 9, use_snake),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckEncoder(nn.Module):
    def __init__(self, cfg: OobleckConfig):
        super().__init__()
        widths = [cfg.base_channels * m for m in (1, *cfg.c_mults)]  # stage i maps widths[i] -> widths[i + 1]
        self.layers = nn.Sequential(
            centred_conv(cfg.channels, widths[0], 7),
            *(EncoderBlock(widths[i], widths[i + 1], s, cfg.use_snake) for i, s in enumerate(cfg.strides)),
            activation(widths[-1], cfg.use_snake),
            centred_conv(widths[-1], 2 * cfg.latent_dim, 3),
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, channels, T] -> [B, 2 * latent_dim, T / hop]: mean | scale."""
        return self.layers(audio)


class OobleckDecoder(nn.Module):
    def __init__(self, cfg: OobleckConfig):
        super().__init__()
        widths = [cfg.base_channels * m for m in (1, *cfg.c_mults)]
        self.layers = nn.Sequential(
            centred_conv(cfg.latent_dim, widths[-1], 7),
            *(DecoderBlock(widths[i + 1], widths[i], s, cfg.use_snake) for i, s in reversed(list(enumerate(cfg.strides)))),
            activation(widths[0], cfg.use_snake),
            centred_conv(widths[0], cfg.channels, 7, bias=False),
            nn.Tanh() if cfg.final_tanh else nn.Identity(),
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, latent_dim, N] -> audio [B, channels, N * hop]."""
        return self.layers(latents)


# ----------------------------------------------------------------------------------------------
# Weight norm and receptive field (pure functions)


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """torch's legacy weight_norm(dim=0): weight = g * v / ||v||, the norm over every dim but the first.

    Conv1d: v [out, in, k], g [out, 1, 1]. ConvTranspose1d: v [in, out, k], g [in, 1, 1].
    """
    norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
    return v * (g / norm)


def input_span(module: nn.Module, lo: int, hi: int) -> tuple[int, int]:
    """The input positions [lo', hi'] that outputs lo..hi of `module` depend on (no clamping at the edges)."""
    if isinstance(module, nn.Sequential):
        for layer in reversed(module):
            lo, hi = input_span(layer, lo, hi)
        return lo, hi
    if isinstance(module, (ResidualUnit, EncoderBlock, DecoderBlock)):  # a residual's skip adds no width
        return input_span(module.layers, lo, hi)
    if isinstance(module, nn.ConvTranspose1d):  # output o = i * s - p + j, j < k
        (k,), (s,), (p,) = module.kernel_size, module.stride, module.padding
        return -((k - 1 - lo - p) // s), (hi + p) // s  # ceil((lo + p - k + 1) / s), floor((hi + p) / s)
    if isinstance(module, nn.Conv1d):  # output o reads inputs o * s - p + j * d, j < k
        (k,), (s,), (p,), (d,) = module.kernel_size, module.stride, module.padding, module.dilation
        return lo * s - p, hi * s - p + (k - 1) * d
    return lo, hi  # pointwise: activations, Identity


def receptive_field(codec: "OobleckCodec") -> tuple[int, int, int, int]:
    """-> (decode_left, decode_right, encode_left, encode_right), all in latent frames.

    Decoding frame f's samples needs latents f - decode_left .. f + decode_right. Encoding frame f
    needs the audio of frames f - encode_left .. f + encode_right.
    """
    hop = codec.hop
    lo, hi = input_span(codec.decoder.layers, 0, hop - 1)  # frame 0's samples -> latents
    dec_left, dec_right = -lo, hi
    lo, hi = input_span(codec.encoder.layers, 0, 0)  # latent frame 0 -> samples
    enc_left, enc_right = math.ceil(-lo / hop), math.ceil((hi - (hop - 1)) / hop)
    return dec_left, dec_right, max(enc_left, 0), max(enc_right, 0)


# ----------------------------------------------------------------------------------------------
# The codec


class OobleckCodec(nn.Module):
    """Stable Audio Open's VAE as an `lmdm.codec.base.Codec`. Latents are the posterior mean, unscaled."""

    name = "oobleck"

    def __init__(self, config: OobleckConfig | None = None):
        super().__init__()
        self.config = config or OobleckConfig()
        self.sample_rate = self.config.sample_rate
        self.channels = self.config.channels
        self.latent_dim = self.config.latent_dim
        self.hop = self.config.hop
        self.encoder = OobleckEncoder(self.config)
        self.decoder = OobleckDecoder(self.config)
        self.decode_left, self.decode_right, self.encode_left, self.encode_right = receptive_field(self)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def _check_audio(self, audio: torch.Tensor) -> None:
        if audio.dim() != 3 or audio.shape[1] != self.channels:
            raise ValueError(f"audio must be [batch, {self.channels}, samples], got {tuple(audio.shape)}")

    def _check_latents(self, latents: torch.Tensor) -> None:
        if latents.dim() != 3 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"latents must be [batch, {self.latent_dim}, frames], got {tuple(latents.shape)}")

    def _dtype(self) -> torch.dtype:
        return self.decoder.layers[0].weight.dtype

    def posterior(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """audio [B, C, T] (T a multiple of hop) -> (mean, std) [B, D, T / hop]; std = softplus(scale) + 1e-4."""
        self._check_audio(audio)
        if audio.shape[-1] % self.hop:
            raise ValueError(f"audio length {audio.shape[-1]} is not a multiple of hop={self.hop}; pad or trim it")
        mean, scale = self.encoder(audio.to(self._dtype())).chunk(2, dim=1)
        return mean.float(), (F.softplus(scale) + 1e-4).float()

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, C, T] -> latents [B, D, T / hop]: the posterior mean (SAO samples; we stay deterministic)."""
        return self.posterior(audio)[0]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents [B, D, N] -> audio [B, C, N * hop]."""
        self._check_latents(latents)
        return self.decoder(latents.to(self._dtype())).float()

    def stream_decoder(self) -> "OobleckStreamDecoder":
        return OobleckStreamDecoder(self)

    def stream_encoder(self) -> "OobleckStreamEncoder":
        return OobleckStreamEncoder(self)


class OobleckStreamDecoder:
    """push(latents [B, D, n]) -> the audio that is final now; `flush()` -> the rest at the end of a stream.

    Frame f's samples are returned once latent f + lookahead has arrived. Each push decodes the
    window [first new frame - context, last frame received] and keeps only the samples whose
    receptive field lies inside it, so the concatenated output equals `codec.decode` of all
    latents (the end of the stream, as offline, pads with zeros: that is `flush`).
    """

    def __init__(self, codec: OobleckCodec):
        self.codec = codec
        self.context = codec.decode_left  # latent frames kept behind the first frame still to emit
        self.lookahead = codec.decode_right  # latent frames needed after the last frame emitted
        self.reset()

    def reset(self) -> None:
        self.kept: torch.Tensor | None = None  # [B, D, n] latents from frame `offset` on
        self.offset = 0  # absolute index of kept[..., 0]
        self.emitted = 0  # frames whose samples were returned

    @property
    def received(self) -> int:
        return self.offset + (0 if self.kept is None else self.kept.shape[-1])

    def _decode(self, end: int) -> torch.Tensor:
        """Samples of frames [emitted, end), decoded in the window [emitted - context, received)."""
        start = max(self.offset, self.emitted - self.context)  # offset is 0 or <= emitted - context
        audio = self.codec.decode(self.kept[..., start - self.offset :])
        hop = self.codec.hop
        audio = audio[..., (self.emitted - start) * hop : (end - start) * hop]
        self.emitted = end
        drop = max(0, self.emitted - self.context - self.offset)  # latents no later frame will read
        self.kept, self.offset = self.kept[..., drop:], self.offset + drop
        return audio

    @torch.inference_mode()
    def push(self, latents: torch.Tensor) -> torch.Tensor:
        self.codec._check_latents(latents)
        self.kept = latents if self.kept is None else torch.cat((self.kept, latents), dim=-1)
        end = self.received - self.lookahead
        if end <= self.emitted:
            return latents.new_zeros(latents.shape[0], self.codec.channels, 0)
        return self._decode(end)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """The samples of the last `lookahead` frames, as if the stream ended here; then reset."""
        if self.kept is None or self.received == self.emitted:
            out = torch.zeros(0 if self.kept is None else self.kept.shape[0], self.codec.channels, 0)
        else:
            out = self._decode(self.received)
        self.reset()
        return out


class OobleckStreamEncoder:
    """push(audio [B, C, n]) -> latents [B, D, k] of the frames whose receptive field has arrived.

    As the decoder, with windows aligned on frame boundaries; equals `codec.encode` of the whole
    audio once `flush()` has returned the last frames (the audio must end on a frame boundary).
    """

    def __init__(self, codec: OobleckCodec):
        self.codec = codec
        self.context = codec.encode_left
        self.lookahead = codec.encode_right
        self.reset()

    def reset(self) -> None:
        self.kept: torch.Tensor | None = None  # [B, C, samples] from frame `offset` on
        self.offset = 0  # in frames
        self.emitted = 0

    def _encode(self, end: int, window_frames: int) -> torch.Tensor:
        hop = self.codec.hop
        start = max(self.offset, self.emitted - self.context)
        window = self.kept[..., (start - self.offset) * hop : (window_frames - self.offset) * hop]
        z = self.codec.encode(window)[..., self.emitted - start : end - start]
        self.emitted = end
        drop = max(0, self.emitted - self.context - self.offset)
        self.kept, self.offset = self.kept[..., drop * hop :], self.offset + drop
        return z

    @torch.inference_mode()
    def push(self, audio: torch.Tensor) -> torch.Tensor:
        self.codec._check_audio(audio)
        self.kept = audio if self.kept is None else torch.cat((self.kept, audio), dim=-1)
        whole = self.offset + self.kept.shape[-1] // self.codec.hop  # frames fully received
        end = whole - self.lookahead
        if end <= self.emitted:
            return audio.new_zeros(audio.shape[0], self.codec.latent_dim, 0)
        return self._encode(end, whole)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """The last frames, as if the audio ended here (it must end on a frame boundary); then reset."""
        if self.kept is None:
            return torch.zeros(0, self.codec.latent_dim, 0)
        if self.kept.shape[-1] % self.codec.hop:
            raise ValueError(f"the stream ends {self.kept.shape[-1] % self.codec.hop} samples into a frame; encode needs whole frames of {self.codec.hop}")
        whole = self.offset + self.kept.shape[-1] // self.codec.hop
        out = self._encode(whole, whole) if whole > self.emitted else self.kept.new_zeros(self.kept.shape[0], self.codec.latent_dim, 0)
        self.reset()
        return out
