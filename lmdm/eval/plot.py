"""Scores over time with matplotlib (the optional ``[plot]`` extra): the `lmdm eval --plot` picture.

    panels = [Panel("RMS", [Series("a.wav", x, y)], unit="dBFS", min_span=12.0), ...]
    line_plots(panels, "eval.png")              # -> the matplotlib Figure, also saved as a PNG
    report_png(report, "eval.png")              # the four panels of an lmdm.eval Report

One panel per measure, stacked top to bottom, a shared time axis with minute:second ticks; each
label (file) is one colour in every panel, a line with a dot per segment; NaN breaks a line.
The y axis of a panel is fixed (`y_range`), or comes from the data but is at least `min_span`
wide (a level that moves by 0.1 dB stays a flat line instead of filling the height), optionally
starting at `bottom`. Without matplotlib: lmdm.plot.PlotUnavailable ("pip install 'lmdm[plot]'").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np

from lmdm.plot import clock_axis, new_figure, save_png, wrapped_title

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lmdm.eval.report import Report

PANEL_HEIGHT_IN = 2.2
LEGEND_COLUMNS = 4


@attrs.frozen(eq=False)
class Series:
    label: str
    x: np.ndarray  # [N] seconds
    y: np.ndarray  # [N], NaN = no value


@attrs.frozen(eq=False)
class Panel:
    title: str
    series: Sequence[Series]
    y_range: tuple[float, float] | None = None  # fixed (low, high), else from the data
    unit: str = ""  # the y axis label, e.g. "dBFS"
    min_span: float = 0.0  # from the data: the y axis is at least this wide
    bottom: float | None = None  # from the data: the y axis starts here (e.g. 0 for a distance)
    reference: float | None = None  # a dashed horizontal line at this value (e.g. 1 = typical)


def value_limits(values: np.ndarray, min_span: float = 0.0, bottom: float | None = None, margin: float = 0.05) -> tuple[float, float]:
    """(low, high) of a y axis from the finite `values`: their range with a `margin` (a fraction of
    it) on both sides, widened about its middle to at least `min_span` (a span of 1 when the values
    are flat and min_span is 0). With `bottom`, the axis starts there and reaches at least
    bottom + min_span. No finite values: (bottom or 0, that + max(min_span, 1))."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    least = min_span if min_span > 0 else 1.0
    if bottom is not None:
        top = float(v.max()) if len(v) else bottom
        return bottom, max(top + margin * (top - bottom), bottom + least)
    if len(v) == 0:
        return 0.0, least
    lo, hi = float(v.min()), float(v.max())
    lo, hi = lo - margin * (hi - lo), hi + margin * (hi - lo)
    span = max(hi - lo, min_span) if hi - lo > 1e-9 else least
    middle = (lo + hi) / 2
    return middle - span / 2, middle + span / 2


def panel_limits(panel: Panel) -> tuple[float, float]:
    """The y axis limits of one panel (see Panel)."""
    if panel.y_range is not None:
        return panel.y_range
    values = np.concatenate([np.asarray(s.y, np.float64) for s in panel.series] or [np.zeros(0)])
    return value_limits(values, panel.min_span, panel.bottom)


def line_plots(
    panels: Sequence[Panel], path: str | Path, x_range: tuple[float, float] | None = None, title: str | None = None
) -> Figure:
    """Panels stacked top to bottom over a shared time axis (seconds, shown as m:ss) -> a PNG at `path`.

    10 inches wide, 2.2 inches per panel plus the legend, at lmdm.plot.DPI; returns the Figure
    (its axes keep the limits, for tests)."""
    labels = list(dict.fromkeys(s.label for p in panels for s in p.series))
    legend_rows = -(-len(labels) // LEGEND_COLUMNS)
    figure = new_figure(0.6 + PANEL_HEIGHT_IN * len(panels) + 0.25 * legend_rows + (0.3 if title else 0.0))
    axes = figure.subplots(max(1, len(panels)), 1, sharex=True, squeeze=False)[:, 0]
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for panel, ax in zip(panels, axes):
        draw_panel(ax, panel, colors)
    x_lo, x_hi = x_range if x_range is not None else time_limits(panels)
    axes[-1].set_xlim(x_lo, x_hi)
    clock_axis(axes[-1], x_hi - x_lo)
    axes[-1].set_xlabel("time (m:ss)")
    if labels:
        handles = [axes[0].plot([], [], color=colors[label], marker="o", markersize=4)[0] for label in labels]
        figure.legend(handles, [label[-60:] for label in labels], loc="outside lower center", ncols=min(len(labels), LEGEND_COLUMNS), fontsize="small", frameon=False)
    if title:
        figure.suptitle(wrapped_title(title))
    save_png(figure, path)
    return figure


def draw_panel(ax, panel: Panel, colors: dict[str, str]) -> None:  # ax: matplotlib.axes.Axes
    """One panel: its series as lines with a dot per point, its title, unit and y limits."""
    for s in panel.series:
        ax.plot(np.asarray(s.x, np.float64), np.asarray(s.y, np.float64), color=colors[s.label], marker="o", markersize=3.5, linewidth=1.5)
    if not any(np.isfinite(np.asarray(s.y, np.float64)).any() for s in panel.series):
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center", color="0.4")
    if panel.reference is not None:
        ax.axhline(panel.reference, color="0.5", linestyle="--", linewidth=1)
    low, high = panel_limits(panel)
    edge = 0.03 * (high - low) if panel.y_range is not None else 0.0  # dots on a fixed limit (p = 1) stay whole
    ax.set_ylim(low - edge, high + edge)
    ax.set_title(panel.title, loc="left", fontsize="medium")
    ax.set_ylabel(panel.unit)
    ax.grid(True, color="0.9")


def time_limits(panels: Sequence[Panel]) -> tuple[float, float]:
    """0 (or the earliest time, if negative) .. the latest time of all series and 2 %, at least 1 s wide."""
    xs = np.concatenate([np.asarray(s.x, np.float64) for p in panels for s in p.series] or [np.zeros(0)])
    xs = xs[np.isfinite(xs)]
    if len(xs) == 0:
        return 0.0, 1.0
    lo, hi = min(0.0, float(xs.min())), float(xs.max())
    return lo, max(lo + 1.0, hi + 0.02 * (hi - lo))


def report_series(report: Report, field: str) -> list[Series]:
    """One Series per file: segment middles (s) and a Segment field (None -> NaN)."""
    out = []
    for f in report.files:
        mid = np.array([(s.start + s.end) / 2 for s in f.segments])
        values = np.array([np.nan if getattr(s, field) is None else getattr(s, field) for s in f.segments], float)
        out.append(Series(Path(f.name).name, mid, values))
    return out


def report_png(report: Report, path: str | Path) -> Figure:
    """The per-segment scores of every file over time -> a PNG (4 panels); returns the Figure."""
    asked = any(s.asked_probability is not None for f in report.files for s in f.segments)
    panels = [
        Panel("p(asked style)" if asked else "p(top style)", report_series(report, "asked_probability" if asked else "style_probability"),
              y_range=(0.0, 1.0), unit="probability"),
        Panel("drift: mean squared Mahalanobis distance to the reference / D (dashed: 1 = a typical corpus window)",
              report_series(report, "drift"), unit="drift", min_span=2.0, bottom=0.0, reference=1.0),
        Panel("tempo (model-free)", report_series(report, "tempo_bpm"), unit="BPM", min_span=20.0),
        Panel("RMS level", report_series(report, "rms_db"), unit="dBFS", min_span=12.0),
    ]
    end = max((s.end for f in report.files for s in f.segments), default=1.0)
    title = f"lmdm eval: {len(report.files)} file{'s' if len(report.files) != 1 else ''}, {report.segment_seconds:g} s segments"
    return line_plots(panels, path, x_range=(0.0, end), title=title)
