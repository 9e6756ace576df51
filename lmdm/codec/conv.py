"""ConvCodec: a small causal convolutional autoencoder, audio 16 kHz mono <-> 25 latent frames/s.

Data flow (default config; B = batch, D = latent_dim, F = 321 analysis bins, F' = 161 synthesis bins):

    audio [B, 1, T]
      encoder: fixed causal STFT (640-sample Hann window, hop 160: 100 frames/s) -> log magnitude [B, F, T/160]
               -> conv_in -> residual units @100 fps (width 256) -> strided conv x4
               -> residual units @25 fps (width 512) -> conv_out
    raw latents [B, D, T/640]   (kept bounded by a small fixed-variance KL: see `latent_penalty`)
      normalise: (raw - mean) / std per channel; the stats are stored in the codec
    latents [B, D, N]
      decoder: denormalise -> conv_in -> residual units @25 fps -> transposed conv x4
               -> residual units @100 fps -> head: log magnitude + phase offset per bin [B, 2F', 4N]
                  (+ a phase increment per bin [B, F', 4N] with phase_integrator)
               -> phase = offset + the phase a sinusoid at the bin's centre frequency has at that frame
                  (+ the running sum of the increments: the bin's frequency bent off its centre)
               -> fixed inverse STFT (320-sample Hann window, hop 160; overlap-add as a transposed conv)
    audio [B, 1, N * 640]

Every layer is causal: convolutions are padded on the left only, and transposed convolutions keep
the first `n * stride` outputs and carry the rest (the overlap tail) into the next call. So the same
modules run offline (`state=None`, zero left padding) or streaming (`state` = a dict holding each
layer's left context or overlap tail), and the two give the same numbers for any split into blocks.

Why the phase integrator: convolutions are translation-equivariant, and the encoder sees magnitudes
only, so a steady tone gives the decoder the same input at every frame and, without an integrator,
the same phase offset at every frame. Such a decoder can only place steady partials at the synthesis
bins' centres (every 50 Hz): a 440 Hz tone came back at 300 Hz, 30 dB too quiet, and melodies lost
their pitch (docs/codec.md). Integrating a per-frame phase increment lets a constant input turn a
bin's phasor at any rate, i.e. hold any frequency. The running phase is the decoder's only state
that is not a convolution's context; it is kept modulo 2 pi.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from lmdm.config_fields import from_fields, positive

# Streaming state: one tensor per causal layer. A conv keeps its last `context` input samples
# [B, C_in, context]; a transposed conv keeps the overlap tail of its output [B, C_out, K - stride].
StreamState = dict[nn.Module, torch.Tensor]

SPEC_FLOOR = 1e-3  # added to STFT magnitudes before the log (about -100 dB re a full-scale sine)
MIN_LOG_MAGNITUDE = math.log(1e-4)  # soft floor of the decoder head's log magnitude (about -100 dB), see Decoder
MAX_LOG_MAGNITUDE = 7.0  # the decoder head's log magnitude is clamped here (e^7 ~ 1100 >> a full-scale sine's 80)


@attrs.frozen
class ConvCodecConfig:
    sample_rate: int = attrs.field(default=16000, validator=positive)
    latent_dim: int = attrs.field(default=32, validator=positive)
    n_fft: int = attrs.field(default=640, validator=positive)  # encoder's STFT window (40 ms)
    synthesis_fft: int = attrs.field(default=320, validator=positive)  # decoder's inverse STFT window (20 ms)
    frame_hop: int = attrs.field(default=160, validator=positive)  # STFT hop (10 ms): 100 spectral frames/s
    stride: int = attrs.field(default=4, validator=positive)  # spectral frames per latent frame
    width: int = attrs.field(default=192, validator=positive)  # channels at the spectral frame rate
    latent_width: int = attrs.field(default=384, validator=positive)  # channels at the latent frame rate
    frame_units: int = attrs.field(default=2, validator=attrs.validators.ge(0))  # residual units @100 fps, per side
    latent_units: int = attrs.field(default=3, validator=attrs.validators.ge(0))  # residual units @25 fps, per side
    kernel_size: int = attrs.field(default=7, validator=positive)  # residual unit k has dilation 3**k
    latent_noise: float = 0.1  # std of the noise added to raw latents while training
    phase_integrator: bool = False  # decoder bends each bin's frequency by a running phase (see the module doc)

    def __attrs_post_init__(self) -> None:
        for name in ("n_fft", "synthesis_fft"):
            size = getattr(self, name)
            if size % self.frame_hop or size // self.frame_hop < 2:
                raise ValueError(f"{name} ({size}) must be a multiple (>= 2) of frame_hop ({self.frame_hop})")

    @property
    def hop(self) -> int:
        return self.frame_hop * self.stride

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def synthesis_bins(self) -> int:
        return self.synthesis_fft // 2 + 1

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ConvCodecConfig:
        return from_fields(cls, d)


# ----------------------------------------------------------------------------------------------
# Causal layers: forward(x) offline, forward(x, state) streaming.


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only: output j sees inputs up to (j + 1) * stride - 1.

    Input length must be a multiple of `stride`; output length is input length / stride.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, dilation: int = 1, bias: bool = True):
        super().__init__(c_in, c_out, kernel_size, stride=stride, dilation=dilation, bias=bias)
        self.context = (kernel_size - 1) * dilation + 1 - stride  # left samples each call needs
        assert self.context >= 0, "kernel must span at least one stride"

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        if state is None:
            return super().forward(F.pad(x, (self.context, 0)))  # zeros before the start
        past = state.get(self)
        if past is None:  # start of a stream: the same zeros as the offline padding
            past = x.new_zeros(x.shape[0], x.shape[1], self.context)
        x = torch.cat([past, x], dim=-1)  # [B, C_in, context + n]
        state[self] = x[..., x.shape[-1] - self.context :]
        return super().forward(x)


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """ConvTranspose1d that keeps n * stride outputs for n inputs; input j writes outputs from j * stride on.

    The last kernel_size - stride outputs of each call (the overlap tail) belong to later samples:
    offline they are dropped (nothing follows), streaming they are added to the next call's output.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, bias: bool = True):
        super().__init__(c_in, c_out, kernel_size, stride=stride, bias=bias)
        self.overlap = kernel_size - stride
        assert self.overlap >= 0, "kernel must span at least one stride"

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        n, s = x.shape[-1], self.stride[0]
        y = F.conv_transpose1d(x, self.weight, None, s)  # [B, C_out, (n - 1) * s + K], no bias yet
        if state is not None:
            tail = state.get(self)
            if tail is not None:
                y = y + F.pad(tail, (0, y.shape[-1] - self.overlap))
            state[self] = y[..., n * s :]
        y = y[..., : n * s]
        return y if self.bias is None else y + self.bias[:, None]


class ResidualUnit(nn.Module):
    """x + conv1x1(elu(dilated causal conv(elu(x)))); length and width unchanged."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel_size, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        h = self.conv(F.elu(x), state)
        return x + self.mix(F.elu(h))


def residual_stack(channels: int, kernel_size: int, count: int) -> nn.ModuleList:
    return nn.ModuleList(ResidualUnit(channels, kernel_size, 3**k) for k in range(count))


# ----------------------------------------------------------------------------------------------
# Fixed STFT / inverse STFT as (frozen) causal convolutions


def stft_bases(n_fft: int, hop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (analysis [2F, 1, n_fft], synthesis [2F, 1, n_fft]) for a periodic Hann window.

    Analysis rows give the real parts then the imaginary parts of the DFT of one windowed frame.
    Synthesis rows, overlap-added every `hop` samples, invert it exactly: the irfft of the frame,
    windowed again and divided by the sum of the overlapping squared windows at that position.
    """
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    angle = 2 * math.pi * k[:, None] * n[None, :] / n_fft  # [F, n_fft]
    analysis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # [2F, n_fft]
    weight = torch.full_like(k, 2.0 / n_fft)  # irfft: the bins other than DC and Nyquist count twice
    weight[0] = weight[-1] = 1.0 / n_fft
    overlap = window.pow(2).reshape(-1, hop).sum(0).repeat(n_fft // hop)  # [n_fft]: sum of squared windows at n % hop
    synthesis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * torch.cat([weight, weight])[:, None] * window / overlap
    return analysis[:, None].float(), synthesis[:, None].float()


class BinPhase(nn.Module):
    """Phase offsets [B, F, n] -> phases [B, F, n]: each bin's offset plus the phase that a sinusoid at the
    bin's centre frequency has reached at that frame, so a steady tone is a constant output.

    That reference repeats every n_fft / hop frames, so streaming only keeps the frame count modulo it.
    (A running sum of predicted phase increments gives the same prior, but its gradients pile up over
    time: in a 400-step test it learned ~2x slower.)
    """

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.period = n_fft // hop
        advance = 2 * math.pi * torch.arange(n_fft // 2 + 1) * hop / n_fft  # [F] radians per frame
        self.register_buffer("advance", advance[:, None], persistent=False)  # [F, 1]

    def forward(self, offset: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        n = offset.shape[-1]
        start = 0 if state is None or self not in state else int(state[self])
        if state is not None:
            state[self] = torch.tensor((start + n) % self.period)
        frames = (torch.arange(start, start + n, device=offset.device) % self.period).to(offset.dtype)  # [n]
        return offset + self.advance * frames


class PhaseIntegrator(nn.Module):
    """Phase increments [B, F, n] (radians per frame) -> running phases [B, F, n], modulo 2 pi.

    Frame j gets the sum of the increments of frames 0..j (offline) or of every frame pushed so far
    (streaming; the state keeps the last running phase [B, F, 1]). Sums run in float64 and wrap at
    2 pi, so a stream of any length and any split into pushes gives the same phases to ~1e-12.

    Training: the gradient reaches only the last `grad_frames` increments of each running sum. The
    full sum's gradient piles up over every later frame (x100 in a 1-s segment), and gradient-norm
    clipping then starved the rest of the decoder: the loss rose for hundreds of steps.
    """

    def __init__(self, grad_frames: int = 8):
        super().__init__()
        self.grad_frames = grad_frames

    def forward(self, increment: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        total = torch.cumsum(increment.detach().double(), dim=-1)  # [B, F, n]
        if increment.requires_grad:  # same value; the gradient flows through the last grad_frames terms only
            recent = increment - F.pad(increment, (self.grad_frames, 0))[..., : increment.shape[-1]]
            recent = torch.cumsum(recent.double(), dim=-1)  # sum of increments j-grad_frames+1 .. j
            total = total + (recent - recent.detach())
        if state is not None:
            start = state.get(self)
            if start is not None:
                total = total + start
            state[self] = torch.remainder(total[..., -1:], 2 * math.pi).detach()
        return torch.remainder(total, 2 * math.pi).to(increment.dtype)


def frozen(layer: nn.Module, weight: torch.Tensor) -> nn.Module:
    """Set a layer's weight to a fixed tensor and exclude it from training."""
    with torch.no_grad():
        layer.weight.copy_(weight)
    layer.weight.requires_grad_(False)
    return layer


# ----------------------------------------------------------------------------------------------
# Encoder and decoder


class Encoder(nn.Module):
    def __init__(self, cfg: ConvCodecConfig):
        super().__init__()
        analysis, _ = stft_bases(cfg.n_fft, cfg.frame_hop)
        self.stft = frozen(CausalConv1d(1, 2 * cfg.bins, cfg.n_fft, stride=cfg.frame_hop, bias=False), analysis)
        self.conv_in = CausalConv1d(cfg.bins, cfg.width, 3)
        self.frame_units = residual_stack(cfg.width, cfg.kernel_size, cfg.frame_units)
        self.down = CausalConv1d(cfg.width, cfg.latent_width, 2 * cfg.stride, stride=cfg.stride)
        self.latent_units = residual_stack(cfg.latent_width, cfg.kernel_size, cfg.latent_units)
        self.conv_out = CausalConv1d(cfg.latent_width, cfg.latent_dim, 3)

    def forward(self, audio: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        re, im = self.stft(audio, state).chunk(2, dim=1)  # [B, F, T / frame_hop] each
        x = self.conv_in(torch.log(torch.sqrt(re**2 + im**2) + SPEC_FLOOR), state)  # [B, width, T / frame_hop]
        for unit in self.frame_units:
            x = unit(x, state)
        x = self.down(F.elu(x), state)  # [B, latent_width, T / hop]
        for unit in self.latent_units:
            x = unit(x, state)
        return self.conv_out(F.elu(x), state)  # [B, D, T / hop]


class Decoder(nn.Module):
    def __init__(self, cfg: ConvCodecConfig):
        super().__init__()
        _, synthesis = stft_bases(cfg.synthesis_fft, cfg.frame_hop)
        bins = cfg.synthesis_bins
        self.conv_in = CausalConv1d(cfg.latent_dim, cfg.latent_width, cfg.kernel_size)
        self.latent_units = residual_stack(cfg.latent_width, cfg.kernel_size, cfg.latent_units)
        self.up = CausalConvTranspose1d(cfg.latent_width, cfg.width, 2 * cfg.stride, cfg.stride)
        self.frame_units = residual_stack(cfg.width, cfg.kernel_size, cfg.frame_units)
        # log magnitude, phase offset (and phase increment) per bin
        self.head = nn.Conv1d(cfg.width, (3 if cfg.phase_integrator else 2) * bins, 1)
        with torch.no_grad():
            self.head.bias[:bins].fill_(-4.0)  # start quiet: coherent unit-magnitude bins would be very loud
            self.head.weight[2 * bins :].zero_()  # increments start at 0: the bins' centre frequencies
            self.head.bias[2 * bins :].zero_()
        self.phase = BinPhase(cfg.synthesis_fft, cfg.frame_hop)
        self.integrator = PhaseIntegrator() if cfg.phase_integrator else None
        self.istft = frozen(CausalConvTranspose1d(2 * bins, 1, cfg.synthesis_fft, cfg.frame_hop, bias=False), synthesis)

    def frames(self, z: torch.Tensor, state: StreamState | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """latents [B, D, N] -> (magnitude, phase) of every synthesis frame, [B, F', N * stride] each.
        Frame j is overlap-added at samples [j * frame_hop, j * frame_hop + synthesis_fft)."""
        x = self.conv_in(z, state)  # [B, latent_width, N]
        for unit in self.latent_units:
            x = unit(x, state)
        x = self.up(F.elu(x), state)  # [B, width, N * stride]
        for unit in self.frame_units:
            x = unit(x, state)
        head = self.head(F.elu(x))  # [B, 2F' or 3F', N * stride]
        if self.integrator is None:
            log_mag, offset = head.chunk(2, dim=1)  # [B, F', N * stride] each
        else:
            log_mag, offset, increment = head.chunk(3, dim=1)
            # up to pi per frame either way: a bin's frequency bends by up to one bin width (sr / synthesis_fft)
            offset = offset + self.integrator(math.pi * torch.tanh(increment), state)
        # soft floor: exp(log_mag) -> 0 would leave a bin with no gradient (stuck silent) once it gets too quiet
        log_mag = MIN_LOG_MAGNITUDE + F.softplus(log_mag - MIN_LOG_MAGNITUDE)
        mag = torch.exp(log_mag.clamp(max=MAX_LOG_MAGNITUDE))
        return mag, self.phase(offset, state)

    def forward(self, z: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        return self.synthesise(*self.frames(z, state), state)  # [B, 1, N * hop]

    def synthesise(self, mag: torch.Tensor, phase: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """(magnitude, phase) [B, F', n] -> audio [B, 1, n * frame_hop] by the fixed inverse STFT."""
        spectrum = torch.cat([mag * torch.cos(phase), mag * torch.sin(phase)], dim=1)  # [B, 2F', n]
        return self.istft(spectrum, state)


# ----------------------------------------------------------------------------------------------
# The codec: normalisation around encoder/decoder, plus the streaming objects.


def latent_penalty(raw: torch.Tensor) -> torch.Tensor:
    """KL(N(raw, s^2) || N(0, 1)) up to a constant, for a fixed posterior std s: mean(raw^2) / 2."""
    return 0.5 * raw.pow(2).mean()


def latent_stats(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """raw latents [B, D, N] -> per-channel mean [D], std [D] (floored so no channel blows up)."""
    flat = raw.transpose(0, 1).reshape(raw.shape[1], -1)  # [D, B * N]
    return flat.mean(dim=1), flat.std(dim=1).clamp_min(1e-3)


class ConvCodec(nn.Module):
    """The default streaming codec. Implements `lmdm.codec.base.Codec`."""

    channels = 1

    def __init__(self, config: ConvCodecConfig | None = None):
        super().__init__()
        self.config = config or ConvCodecConfig()
        self.sample_rate = self.config.sample_rate
        self.latent_dim = self.config.latent_dim
        self.hop = self.config.hop
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        # encode() returns (raw - latent_mean) / latent_std; set from data by set_latent_stats().
        self.register_buffer("latent_mean", torch.zeros(self.latent_dim))
        self.register_buffer("latent_std", torch.ones(self.latent_dim))

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    # -- shapes ---------------------------------------------------------------------------------

    def _check_audio(self, audio: torch.Tensor, whole_frames: bool) -> None:
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"audio must be [batch, 1, samples], got {tuple(audio.shape)}")
        if whole_frames and audio.shape[-1] % self.hop:
            raise ValueError(f"audio length {audio.shape[-1]} is not a multiple of hop={self.hop}; pad or trim it")

    def _check_latents(self, latents: torch.Tensor) -> None:
        if latents.dim() != 3 or latents.shape[1] != self.latent_dim:
            raise ValueError(f"latents must be [batch, {self.latent_dim}, frames], got {tuple(latents.shape)}")

    # -- normalisation --------------------------------------------------------------------------

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - self.latent_mean[:, None]) / self.latent_std[:, None]

    def denormalise(self, latents: torch.Tensor) -> torch.Tensor:
        return latents * self.latent_std[:, None] + self.latent_mean[:, None]

    @torch.no_grad()
    def set_latent_stats(self, raw: torch.Tensor) -> None:
        """Fit the stored normalisation to raw latents [B, D, N] (from `encode_raw` on real audio)."""
        mean, std = latent_stats(raw)
        self.latent_mean.copy_(mean)
        self.latent_std.copy_(std)

    # -- offline --------------------------------------------------------------------------------

    def encode_raw(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, 1, T] -> raw (unnormalised) latents [B, D, T // hop]. Used by training."""
        self._check_audio(audio, whole_frames=True)
        return self.encoder(audio)

    def decode_raw(self, raw: torch.Tensor) -> torch.Tensor:
        """raw latents [B, D, N] -> audio [B, 1, N * hop]. Used by training."""
        self._check_latents(raw)
        return self.decoder(raw)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, 1, T] (T a multiple of hop) -> normalised latents [B, D, T // hop]."""
        return self.normalise(self.encode_raw(audio))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """normalised latents [B, D, N] -> audio [B, 1, N * hop]."""
        self._check_latents(latents)
        return self.decoder(self.denormalise(latents))

    # -- streaming ------------------------------------------------------------------------------

    def stream_encoder(self) -> ConvStreamEncoder:
        return ConvStreamEncoder(self)

    def stream_decoder(self) -> ConvStreamDecoder:
        return ConvStreamDecoder(self)


class ConvStreamDecoder:
    """push(latents [B, D, n]) -> audio [B, 1, n * hop], sample-exact continuation of the last push."""

    def __init__(self, codec: ConvCodec):
        self.codec = codec
        self.state: StreamState = {}

    def reset(self) -> None:
        self.state = {}

    @torch.inference_mode()
    def push(self, latents: torch.Tensor) -> torch.Tensor:
        self.codec._check_latents(latents)
        if latents.shape[-1] == 0:
            return latents.new_zeros(latents.shape[0], 1, 0)
        return self.codec.decoder(self.codec.denormalise(latents), self.state)


class ConvStreamEncoder:
    """push(audio [B, 1, n]) -> latents [B, D, k] for the k frames completed by this push.

    A frame is emitted as soon as its last sample arrives (latency: one hop, 40 ms), and equals
    offline `encode` of the whole stream. Leftover samples wait for the next push.
    """

    def __init__(self, codec: ConvCodec):
        self.codec = codec
        self.reset()

    def reset(self) -> None:
        self.state: StreamState = {}
        self.pending: torch.Tensor | None = None  # [B, 1, < hop] samples of an unfinished frame

    @torch.inference_mode()
    def push(self, audio: torch.Tensor) -> torch.Tensor:
        self.codec._check_audio(audio, whole_frames=False)
        if self.pending is not None:
            audio = torch.cat([self.pending, audio], dim=-1)
        hop = self.codec.hop
        whole = audio.shape[-1] // hop * hop
        self.pending = audio[..., whole:]
        if whole == 0:
            return audio.new_zeros(audio.shape[0], self.codec.latent_dim, 0)
        raw = self.codec.encoder(audio[..., :whole], self.state)  # [B, D, whole / hop]
        return self.codec.normalise(raw)
