"""The probe's input: a mel spectrogram and a chroma per 20 ms frame, from one STFT (torch).

    mel, chroma = spectral_features(audio)        # audio [B, T] at 16 kHz
    x = probe_input(mel, chroma)                  # [B, 76, frames]: 64 log-mel bands + 12 chroma

The mel part is kept linear until `probe_input` so training can change the gain cheaply
(a gain g multiplies the magnitudes, then the log is taken).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lmdm.analysis import chroma_weights

SAMPLE_RATE = 16000
N_FFT = 1024
HOP = 320  # 20 ms: 50 frames/s
N_MELS = 64
F_MIN, F_MAX = 30.0, 8000.0
LOG_FLOOR = 1e-3  # added to mel magnitudes before the log (~ -110 dB below a full-scale sine's peak)
CHROMA_FLOOR = 0.1  # added to a frame's chroma energy before normalising, so near-silence has ~0 chroma


def hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)  # HTK


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular filters equally spaced on the HTK mel scale, peak 1 -> [n_mels, n_fft // 2 + 1]."""
    bin_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # [F]
    edges = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(f_min)), hz_to_mel(torch.tensor(f_max)), n_mels + 2, dtype=torch.float64))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # [n_mels, 1] each
    rising = (bin_hz - lo) / (mid - lo)
    falling = (hi - bin_hz) / (hi - mid)
    return torch.minimum(rising, falling).clamp_min(0).float()


_MEL = mel_filterbank(N_FFT, N_MELS, SAMPLE_RATE, F_MIN, F_MAX)  # [64, 513]
_CHROMA = torch.from_numpy(chroma_weights(N_FFT, SAMPLE_RATE, 200.0, 4000.0)).float()  # [12, 513]
_WINDOW = torch.hann_window(N_FFT)


def frame_count(samples: int) -> int:
    """Frames `spectral_features` gives for a signal of `samples` (frame f is centred on sample f * HOP)."""
    return samples // HOP + 1


def spectral_features(audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """audio [B, T] (16 kHz, T >= 1) -> (mel magnitude [B, 64, frames], chroma [B, 12, frames]).

    Chroma per frame sums to ~1 where there is pitched energy and ~0 in silence.
    """
    audio = torch.nan_to_num(audio.float(), nan=0.0, posinf=0.0, neginf=0.0)
    padded = torch.nn.functional.pad(audio, (N_FFT // 2, N_FFT // 2))  # centred frames, zeros outside
    spec = torch.stft(padded, N_FFT, HOP, window=_WINDOW, center=False, return_complex=True).abs()  # [B, 513, frames]
    mel = _MEL @ spec
    chroma = _CHROMA @ spec
    chroma = chroma / (chroma.sum(dim=1, keepdim=True) + CHROMA_FLOOR)
    return mel, chroma


def probe_input(mel: torch.Tensor, chroma: torch.Tensor, gain_db: torch.Tensor | float = 0.0) -> torch.Tensor:
    """(mel [B, 64, F], chroma [B, 12, F]) -> [B, 76, F]: log(mel * gain + floor) stacked on chroma."""
    gain = 10.0 ** (torch.as_tensor(gain_db, dtype=mel.dtype) / 20.0)
    if gain.ndim == 1:
        gain = gain[:, None, None]
    return torch.cat([torch.log(mel * gain + LOG_FLOOR), chroma], dim=1)


def windows(total_frames: int, window_frames: int) -> list[tuple[int, int]]:
    """Non-overlapping [start, end) frame ranges of `window_frames` covering a signal; a signal
    shorter than one window gives one short window."""
    if total_frames <= window_frames:
        return [(0, total_frames)]
    count = total_frames // window_frames
    return [(i * window_frames, (i + 1) * window_frames) for i in range(count)]


def seconds_to_frames(seconds: float) -> int:
    return max(1, int(math.floor(seconds * SAMPLE_RATE / HOP + 0.5)))


def as_mono(audio: np.ndarray) -> np.ndarray:
    """[T] or [T, channels] -> float32 [T]."""
    a = np.asarray(audio, dtype=np.float32)
    return a.mean(axis=1) if a.ndim == 2 else a.reshape(-1)
