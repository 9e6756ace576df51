"""Pictures without matplotlib: a tiny PNG writer, a colormap, and spectrogram images.

    spectrogram_png([original, decoded], 16000, "docs/img/x.png")   # panels stacked top to bottom

Only numpy, zlib and struct.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# (position, red, green, blue): dark purple -> magenta -> orange -> pale yellow, close to 'magma'.
COLORMAP = np.array(
    [
        [0.00, 0, 0, 4],
        [0.25, 80, 18, 123],
        [0.50, 183, 55, 121],
        [0.75, 252, 137, 97],
        [1.00, 252, 253, 191],
    ]
)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """uint8 image [H, W] (grey) or [H, W, 3] (RGB) -> an 8-bit PNG file."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be [H, W] or [H, W, 3], got {image.shape}")
    height, width = image.shape[:2]
    colour_type = 0 if image.ndim == 2 else 2
    rows = image.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)  # filter byte 0 ('none') per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + chunk(b"IEND", b"")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(png)


def colorize(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1], any shape [...] -> uint8 RGB [..., 3] through COLORMAP."""
    v = np.clip(values, 0.0, 1.0)
    channels = [np.interp(v, COLORMAP[:, 0], COLORMAP[:, c]) for c in (1, 2, 3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def spectrogram_db(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """audio [T] -> power in dB [n_fft // 2 + 1, frames] (Hann window, no padding)."""
    audio = np.pad(audio, (0, max(0, n_fft - len(audio))))
    frames = 1 + (len(audio) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]  # [frames, n_fft]
    power = np.abs(np.fft.rfft(audio[index] * np.hanning(n_fft), axis=1)) ** 2
    return 10 * np.log10(power.T + 1e-12)


def spectrogram_png(
    audio: np.ndarray | Sequence[np.ndarray],
    sample_rate: int,
    path: str | Path,
    n_fft: int = 512,
    hop: int | None = None,
    top_db: float = 80.0,
) -> None:
    """Save a spectrogram picture (time right, frequency up, 0 .. sample_rate / 2, linear).

    `audio` is one signal or a list of signals (e.g. [input, reconstruction]); several are stacked
    top to bottom with a white line between them and share one dB scale, so they compare directly.
    Arrays or CPU tensors: [T], [1, 1, T], or [panels, T] / [panels, 1, T] also work.
    """
    hop = n_fft // 4 if hop is None else hop
    specs = [spectrogram_db(s, n_fft, hop)[::-1] for s in _signals(audio)]  # low frequencies at the bottom
    loudest = max(s.max() for s in specs)
    width = max(s.shape[1] for s in specs)
    panels = []
    for spec in specs:
        scaled = (spec - (loudest - top_db)) / top_db  # [F, frames], 1 = loudest bin of all panels
        panel = colorize(np.pad(scaled, ((0, 0), (0, width - spec.shape[1]))))
        panels += [panel, np.full((2, width, 3), 255, np.uint8)]
    write_png(path, np.concatenate(panels[:-1], axis=0))


def _signals(audio: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """One signal, a stack of signals, or a list of them -> list of float64 [T]."""
    if hasattr(audio, "shape"):
        stacked = np.squeeze(np.asarray(audio, dtype=np.float64))
        return [stacked] if stacked.ndim == 1 else list(stacked.reshape(-1, stacked.shape[-1]))
    return [np.squeeze(np.asarray(s, dtype=np.float64)) for s in audio]
