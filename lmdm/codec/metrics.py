"""Audio distances (used as training losses and as quality metrics) and the mel + Griffin-Lim baseline.

All functions take audio as a tensor [..., T] (any leading batch/channel dims) and are pure.

- `multires_stft_distance`: spectral convergence + log-magnitude L1, averaged over STFT sizes.
- `log_mel_l1`: mean |log mel(ref) - log mel(est)| at 10 ms frames, 80 bands (own filterbank).
- `mel_griffin_lim_baseline`: keep only a coarse mel spectrogram (n_mels numbers per frame at the
  codec's frame rate), then rebuild audio with Griffin-Lim. A codec worth having must beat it.
"""

from __future__ import annotations

import math

import torch

from lmdm.analysis import chroma_weights

STFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((256, 64), (512, 128), (1024, 256), (2048, 512))  # (n_fft, hop)
# Added to magnitudes before taking logs: ~100 dB below a full-scale sine's STFT peak (a 16-bit noise
# floor). A smaller one makes digital silence dominate the log terms and rewards a silent output; adding
# (not clamping) keeps a gradient for an estimate that is far too quiet.
LOG_FLOOR = 1e-3


# ----------------------------------------------------------------------------------------------
# STFT distances


def stft(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """audio [..., T] -> complex STFT [..., n_fft // 2 + 1, T // hop + 1] (Hann window, centred)."""
    lead = audio.shape[:-1]
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(audio.reshape(-1, audio.shape[-1]), n_fft, hop, window=window, return_complex=True)
    return spec.reshape(*lead, *spec.shape[-2:])


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT| [..., F, frames], with a finite gradient even where the STFT is exactly 0 (|z| has none there)."""
    spec = stft(audio, n_fft, hop)
    return torch.sqrt(spec.real.square() + spec.imag.square() + 1e-12)


def spectral_convergence(ref_mag: torch.Tensor, est_mag: torch.Tensor) -> torch.Tensor:
    """||ref - est||_F / ||ref||_F over the whole batch of magnitude spectrograms."""
    return torch.linalg.vector_norm(ref_mag - est_mag) / torch.linalg.vector_norm(ref_mag).clamp_min(1e-7)


def log_magnitude_l1(ref_mag: torch.Tensor, est_mag: torch.Tensor, eps: float = LOG_FLOOR) -> torch.Tensor:
    return (torch.log(ref_mag + eps) - torch.log(est_mag + eps)).abs().mean()


def multires_stft_terms(
    ref: torch.Tensor, est: torch.Tensor, resolutions: tuple[tuple[int, int], ...] = STFT_RESOLUTIONS
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (spectral convergence, log-magnitude L1), each averaged over the STFT resolutions."""
    sc, logmag = ref.new_zeros(()), ref.new_zeros(())
    for n_fft, hop in resolutions:
        ref_mag, est_mag = stft_magnitude(ref, n_fft, hop), stft_magnitude(est, n_fft, hop)
        sc = sc + spectral_convergence(ref_mag, est_mag)
        logmag = logmag + log_magnitude_l1(ref_mag, est_mag)
    return sc / len(resolutions), logmag / len(resolutions)


def multires_stft_distance(ref: torch.Tensor, est: torch.Tensor) -> float:
    """Spectral convergence + log-magnitude L1 over 4 STFT sizes (256..2048). 0 for identical audio."""
    sc, logmag = multires_stft_terms(ref, est)
    return float(sc + logmag)


def frame_spectrum(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """audio [..., T] -> complex DFT of Hann-windowed frames audio[j hop : j hop + n_fft] (zeros past the
    end), [..., n_fft // 2 + 1, T // hop]: the framing of a decoder whose frame j is overlap-added there."""
    frames = audio.shape[-1] // hop
    padded = torch.nn.functional.pad(audio, (0, n_fft))
    window = torch.hann_window(n_fft, dtype=audio.dtype, device=audio.device)
    chunks = padded.unfold(-1, n_fft, hop)[..., :frames, :] * window  # [..., frames, n_fft]
    return torch.fft.rfft(chunks, dim=-1).transpose(-1, -2)


def phase_advance_distance(ref: torch.Tensor, phase: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """How far a decoder's per-frame phase advance is from the reference's, bin by bin: the mean of
    1 - cos(advance error) (0..2), weighted by the reference's magnitude at both frames.

    ref: audio [..., T]; phase: the decoder's synthesis phases [..., n_fft // 2 + 1, T // hop] in the
    framing of `frame_spectrum`. A bin's phase advance per frame is its frequency, so this teaches
    pitch directly: a partial at the wrong frequency costs the same whether it is 2 Hz or 200 Hz off,
    where spectral distances only feel an error that is smaller than a window's main lobe.
    """
    spec = frame_spectrum(ref, n_fft, hop)  # [..., F, n]
    if phase.shape != spec.shape:
        raise ValueError(f"phase {tuple(phase.shape)} does not match the reference's frames {tuple(spec.shape)}")
    wanted = torch.angle(spec[..., 1:] * spec[..., :-1].conj())  # [..., F, n - 1], wrapped
    error = (phase[..., 1:] - phase[..., :-1]) - wanted
    weight = (spec[..., 1:].abs() * spec[..., :-1].abs()).sqrt()
    return (weight * (1 - torch.cos(error))).sum() / weight.sum().clamp_min(1e-8)


# ----------------------------------------------------------------------------------------------
# Pitch classes


def chroma_filter(n_fft: int, sample_rate: int, low: float = 60.0, high: float = 2500.0) -> torch.Tensor:
    """[12, n_fft // 2 + 1] float32: lmdm.analysis.chroma_weights (each bin in [low, high] Hz to its
    nearest pitch class, weighted by how close it sits to that semitone) as a tensor."""
    return torch.from_numpy(chroma_weights(n_fft, sample_rate, low, high)).float()


def chroma_distance(ref: torch.Tensor, est: torch.Tensor, sample_rate: int, n_fft: int = 2048, hop: int = 256,
                    low: float = 60.0, high: float = 2500.0) -> torch.Tensor:
    """How differently the pitch classes of two signals [..., T] sound: per frame, the L1 distance (0..2)
    between the two power chromas normalised to sum 1, averaged over frames weighted by the square
    root of the reference's chroma energy (quiet frames count little beside loud ones).

    The spectral losses above weigh a semitone's error like any other: a smeared partial costs little
    there. Here moving energy to the wrong pitch class costs up to 2 at any loudness.
    """
    fb = chroma_filter(n_fft, sample_rate, low, high).to(ref)
    ref_c = fb @ stft_magnitude(ref, n_fft, hop).square()  # [..., 12, frames]
    est_c = fb @ stft_magnitude(est, n_fft, hop).square()
    ref_e, est_e = ref_c.sum(-2), est_c.sum(-2)  # [..., frames]
    diff = (ref_c / (ref_e[..., None, :] + 1e-8) - est_c / (est_e[..., None, :] + 1e-8)).abs().sum(-2)
    weight = ref_e.sqrt()
    return (diff * weight).sum() / weight.sum().clamp_min(1e-8)


# ----------------------------------------------------------------------------------------------
# Mel spectrogram


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)  # HTK formula


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> torch.Tensor:
    """Triangular filters, equally spaced on the mel scale, peak 1 -> [n_mels, n_fft // 2 + 1]."""
    f_max = sample_rate / 2 if f_max is None else f_max
    bin_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # [F]
    edges = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(f_min)), hz_to_mel(torch.tensor(f_max)), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # [n_mels, 1] each
    rising = (bin_hz - lo) / (mid - lo)
    falling = (hi - bin_hz) / (hi - mid)
    return torch.minimum(rising, falling).clamp_min(0).float()


def log_mel(audio: torch.Tensor, sample_rate: int, n_fft: int = 1024, hop: int = 160, n_mels: int = 80) -> torch.Tensor:
    """audio [..., T] -> natural-log mel magnitude [..., n_mels, T // hop + 1]."""
    fb = mel_filterbank(n_fft, n_mels, sample_rate).to(audio)
    return torch.log(fb @ stft_magnitude(audio, n_fft, hop) + LOG_FLOOR)


def log_mel_l1(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> float:
    """Mean |log mel(ref) - log mel(est)|, 80 bands, 1024-point STFT, 10 ms hop. 0 for identical audio."""
    return float((log_mel(ref, sample_rate) - log_mel(est, sample_rate)).abs().mean())


# ----------------------------------------------------------------------------------------------
# Griffin-Lim and the baseline


def griffin_lim(
    magnitude: torch.Tensor, n_fft: int, hop: int, length: int, iters: int = 64, momentum: float = 0.99, seed: int = 0
) -> torch.Tensor:
    """Magnitude [..., n_fft // 2 + 1, frames] -> audio [..., length] whose STFT magnitude matches it.

    Fast Griffin-Lim (Perraudin et al. 2013): alternate projections between 'has this magnitude'
    and 'is the STFT of some signal', with momentum on the phase estimate.
    """
    window = torch.hann_window(n_fft, dtype=magnitude.dtype, device=magnitude.device)
    lead = magnitude.shape[:-2]
    mag = magnitude.reshape(-1, *magnitude.shape[-2:])  # [B, F, frames]
    gen = torch.Generator().manual_seed(seed)
    phase = torch.exp(2j * math.pi * torch.rand(mag.shape, generator=gen, dtype=mag.dtype))
    spec = mag * phase
    previous = torch.zeros_like(spec)
    for _ in range(iters):
        audio = torch.istft(spec, n_fft, hop, window=window, length=length)
        rebuilt = torch.stft(audio, n_fft, hop, window=window, return_complex=True)
        accelerated = rebuilt + (momentum / (1 + momentum)) * (rebuilt - previous)
        previous = rebuilt
        spec = mag * torch.exp(1j * torch.angle(accelerated))
    audio = torch.istft(spec, n_fft, hop, window=window, length=length)
    return audio.reshape(*lead, length)


def mel_to_magnitude(mel: torch.Tensor, fb: torch.Tensor, iters: int = 30) -> torch.Tensor:
    """Non-negative least squares fb @ S ~= mel [..., M, frames] -> S [..., F, frames] (pinv start, NMF updates)."""
    s = (torch.linalg.pinv(fb) @ mel).clamp_min(1e-6)
    for _ in range(iters):
        s = s * (fb.T @ mel) / (fb.T @ (fb @ s)).clamp_min(1e-9)
    return s


def mel_griffin_lim_baseline(
    audio: torch.Tensor, sample_rate: int, n_mels: int, hop: int, n_fft: int | None = None, iters: int = 64
) -> torch.Tensor:
    """audio [..., T] -> audio [..., T] rebuilt from a mel spectrogram of n_mels bands every `hop` samples.

    It keeps n_mels * (T // hop + 1) numbers: at hop 640 and n_mels = latent_dim, as many per second
    as the codec's latents (plus one frame). The window is 4 hops so Griffin-Lim has 75 % overlap.
    """
    n_fft = 4 * hop if n_fft is None else n_fft
    fb = mel_filterbank(n_fft, n_mels, sample_rate).to(audio)
    mel = fb @ stft(audio, n_fft, hop).abs()  # [..., n_mels, frames]: all the baseline keeps
    return griffin_lim(mel_to_magnitude(mel, fb), n_fft, hop, audio.shape[-1], iters)
