"""Pictures with matplotlib (the optional ``[plot]`` extra): spectrograms, and the figure helpers of
``lmdm.eval.plot``.

    spectrogram_png(audio, 44100, "out.png", title="house at 120 bpm")     # `lmdm render --plot`
    spectrogram_png([original, decoded], 16000, "x.png", labels=["input", "codec"])  # panels top to bottom

audio [T] ──Hann STFT (n_fft, hop), averaged to <= MAX_COLUMNS columns──▶ level in dBFS [F, columns]
          ──one shared colour scale (the loudest bin - top_db .. the loudest bin)──▶ PNG with axes

matplotlib is imported inside the functions, never at module level, so the core package does not
need it; without it they raise ``PlotUnavailable`` ("pip install 'lmdm[plot]'"). Figures are drawn
on the Agg canvas directly (no pyplot, no display, no global backend switch).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL = "pip install 'lmdm[plot]'"
DPI = 120  # 10 x 4 inches -> 1200 x 480 pixels
WIDTH_IN = 10.0
MAX_COLUMNS = 2000  # time columns of a spectrogram (more than the pixels it gets)
COLORMAP = "magma"


class PlotUnavailable(ImportError):
    """matplotlib is not installed: the message says how to install it."""


def plot_unavailable() -> str | None:
    """None when matplotlib can be imported, else the one-line message to show the user."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        return f"plots need matplotlib ({e}): {INSTALL}"
    return None


def new_figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    """An empty figure on the Agg canvas (constrained layout); PlotUnavailable without matplotlib."""
    problem = plot_unavailable()
    if problem is not None:
        raise PlotUnavailable(problem)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: str | Path) -> None:
    """Write the figure as a PNG of exactly figsize x DPI pixels (the folder is made if missing)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)


def wrapped_title(text: str, width: int = 110) -> str:
    """A long prompt over at most 3 lines (the rest is cut with an ellipsis)."""
    return "\n".join(textwrap.wrap(text, width, max_lines=3, placeholder=" …")) or text


def spectrogram_db(audio: np.ndarray, n_fft: int, hop: int, max_columns: int | None = None) -> tuple[np.ndarray, int]:
    """audio [T] -> (level in dBFS [n_fft // 2 + 1, columns], frames per column).

    Hann window, no padding; 0 dBFS is a full-scale sine. With `max_columns`, the power of
    consecutive frames is averaged so that there are at most that many columns.
    """
    audio = np.pad(np.asarray(audio, np.float64), (0, max(0, n_fft - len(audio))))
    frames = 1 + (len(audio) - n_fft) // hop
    group = 1 if max_columns is None else max(1, -(-frames // max_columns))
    window = np.hanning(n_fft)
    scale = 2.0 / window.sum()  # a sine of amplitude 1 -> peak magnitude 1
    columns = []
    for first in range(0, frames, group * 256):  # 256 columns at a time: memory stays small
        starts = hop * np.arange(first, min(frames, first + group * 256))
        power = np.abs(np.fft.rfft(audio[starts[:, None] + np.arange(n_fft)] * window, axis=1) * scale) ** 2
        n = len(starts) // group * group
        pooled = power[:n].reshape(-1, group, power.shape[1]).mean(axis=1)
        columns.append(pooled if n == len(starts) else np.concatenate([pooled, power[n:].mean(axis=0, keepdims=True)]))
    return 10 * np.log10(np.concatenate(columns).T + 1e-12), group


def frequency_unit(top_hz: float) -> tuple[str, float]:
    """("kHz", 1000) for a frequency axis reaching 2 kHz or more, else ("Hz", 1)."""
    return ("kHz", 1000.0) if top_hz >= 2000 else ("Hz", 1.0)


def spectrogram_png(
    audio: np.ndarray | Sequence[np.ndarray],
    sample_rate: int,
    path: str | Path,
    n_fft: int = 512,
    hop: int | None = None,
    top_db: float = 80.0,
    title: str | None = None,
    labels: Sequence[str] | None = None,
) -> Figure:
    """Save a spectrogram picture: time (s) right, frequency 0 .. sample_rate / 2 (linear) up, a dB colour bar.

    `audio` is one signal or a list of signals (e.g. [input, reconstruction]); several are stacked
    top to bottom and share the time axis and one dB scale, so they compare directly; `labels`
    names them. `title` (e.g. the prompt) goes on top. Arrays or CPU tensors: [T], [1, 1, T], or
    [panels, T] / [panels, 1, T] also work. 10 inches wide at DPI; returns the figure.
    """
    hop = n_fft // 4 if hop is None else hop
    signals = _signals(audio)
    specs = [spectrogram_db(s, n_fft, hop, MAX_COLUMNS) for s in signals]
    loudest = max(float(s.max()) for s, _ in specs)
    unit, per_unit = frequency_unit(sample_rate / 2)
    figure = new_figure(4.0 if len(specs) == 1 else 1.2 + 2.6 * len(specs))
    axes = figure.subplots(len(specs), 1, sharex=True, squeeze=False)[:, 0]
    image = None
    for k, ((spec, _), signal, ax) in enumerate(zip(specs, signals, axes)):
        extent = (0.0, len(signal) / sample_rate, 0.0, sample_rate / 2 / per_unit)
        image = ax.imshow(spec, origin="lower", aspect="auto", cmap=COLORMAP, vmin=loudest - top_db, vmax=loudest, extent=extent)
        ax.set_ylabel(f"frequency ({unit})")
        if labels is not None and k < len(labels):
            ax.set_title(labels[k], loc="left", fontsize="medium")
    axes[-1].set_xlim(0.0, max(len(s) for s in signals) / sample_rate)  # imshow set each panel's own length
    axes[-1].set_xlabel("time (s)")
    figure.colorbar(image, ax=list(axes), label="level (dBFS)", pad=0.01, fraction=0.04)
    heading = "spectrogram" if title is None else f'spectrogram: "{title}"'
    figure.suptitle(wrapped_title(heading), fontsize="large")
    save_png(figure, path)
    return figure


def _signals(audio: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """One signal, a stack of signals, or a list of them -> list of float64 [T]."""
    if hasattr(audio, "shape"):
        stacked = np.squeeze(np.asarray(audio, dtype=np.float64))
        return [np.atleast_1d(stacked)] if stacked.ndim <= 1 else list(stacked.reshape(-1, stacked.shape[-1]))
    return [np.atleast_1d(np.squeeze(np.asarray(s, dtype=np.float64))) for s in audio]


def clock(seconds: float) -> str:
    """Seconds -> "m:ss" (negative values get a minus sign)."""
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    minutes, rest = divmod(round(seconds), 60)
    return f"{sign}{minutes}:{rest:02d}"


def clock_step(span: float, ticks: int = 8) -> float:
    """A tick step in seconds (5 s, 10 s, 15 s, 30 s, 1 min, 2 min, 5 min, ...) for about `ticks` ticks."""
    for step in (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span / step <= ticks:
            return float(step)
    return 3600.0 * max(1, round(span / ticks / 3600))


def clock_axis(ax: Axes, span: float) -> None:
    """Minute:second ticks on the x axis of `ax`, about 8 of them over `span` seconds."""
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    ax.xaxis.set_major_locator(MultipleLocator(clock_step(span)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: clock(x)))
