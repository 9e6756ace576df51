"""Line plots without matplotlib: a 5x7 pixel font, a line rasteriser, and the `lmdm eval --plot` picture.

    panels = [Panel("drift", [Series("a.wav", x, y)]), ...]
    write_png("eval.png", line_plots(panels))          # lmdm.plot.write_png

One panel per measure, stacked top to bottom, time on x; each file is one coloured line with a
dot per segment; NaN breaks a line. Text is upper case (the font has A-Z, 0-9 and a few signs).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from lmdm.plot import write_png

# 5x7 glyphs, one string of 7 rows of 5 bits each.
GLYPHS: dict[str, str] = {
    "0": "01110 10001 10011 10101 11001 10001 01110", "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111", "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010", "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110", "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110", "9": "01110 10001 10001 01111 00001 00010 01100",
    "A": "01110 10001 10001 11111 10001 10001 10001", "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110", "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111", "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111", "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110", "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001", "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001", "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110", "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101", "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110", "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110", "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010", "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100", "Z": "11111 00001 00010 00100 01000 10000 11111",
    " ": "00000 00000 00000 00000 00000 00000 00000", ".": "00000 00000 00000 00000 00000 01100 01100",
    "-": "00000 00000 00000 11111 00000 00000 00000", ":": "00000 01100 01100 00000 01100 01100 00000",
    "/": "00000 00001 00010 00100 01000 10000 00000", "%": "11000 11001 00010 00100 01000 10011 00011",
    "(": "00010 00100 01000 01000 01000 00100 00010", ")": "01000 00100 00010 00010 00010 00100 01000",
    "=": "00000 00000 11111 00000 11111 00000 00000", "+": "00000 00100 00100 11111 00100 00100 00000",
    ",": "00000 00000 00000 00000 01100 00100 01000", "_": "00000 00000 00000 00000 00000 00000 11111",
    "?": "01110 10001 00001 00010 00100 00000 00100",
}
GLYPH_W, GLYPH_H = 5, 7

PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127]],
    dtype=np.uint8,
)
INK, GRID, PAPER = np.array([30, 30, 30], np.uint8), np.array([215, 215, 215], np.uint8), np.array([255, 255, 255], np.uint8)


def glyph(char: str) -> np.ndarray:
    """One character -> bool [7, 5] (unknown characters show as '?')."""
    rows = GLYPHS.get(char.upper(), GLYPHS["?"]).split()
    return np.array([[bit == "1" for bit in row] for row in rows])


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """A line of text -> bool [7 * scale, 6 * len * scale] (1 pixel of space after each glyph)."""
    if not text:
        return np.zeros((GLYPH_H * scale, 0), bool)
    cells = [np.pad(glyph(c), ((0, 0), (0, 1))) for c in text]
    mask = np.concatenate(cells, axis=1)
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def draw_text(image: np.ndarray, text: str, x: int, y: int, color: np.ndarray = INK, scale: int = 1) -> None:
    """Stamp text with its top-left corner at (x, y), clipped to the image (in place)."""
    mask = text_mask(text, scale)
    h, w = mask.shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(image.shape[1], x + w), min(image.shape[0], y + h)
    if x1 > x0 and y1 > y0:
        sub = mask[y0 - y : y1 - y, x0 - x : x1 - x]
        image[y0:y1, x0:x1][sub] = color


def draw_line(image: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: np.ndarray, width: int = 2) -> None:
    """A straight line of `width` pixels between two points (pixel coordinates, in place)."""
    steps = int(max(abs(x1 - x0), abs(y1 - y0)) * 2) + 1
    xs = np.round(np.linspace(x0, x1, steps + 1)).astype(int)
    ys = np.round(np.linspace(y0, y1, steps + 1)).astype(int)
    for dx in range(width):
        for dy in range(width):
            xx, yy = xs + dx - width // 2, ys + dy - width // 2
            ok = (xx >= 0) & (xx < image.shape[1]) & (yy >= 0) & (yy < image.shape[0])
            image[yy[ok], xx[ok]] = color


def nice_range(values: np.ndarray) -> tuple[float, float]:
    """Finite min/max with a 5 % margin; a flat or empty series gets a unit range."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-9:
        return lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def short_number(value: float, span: float) -> str:
    """A tick label with enough decimals to tell the ends of a range `span` wide apart."""
    decimals = min(4, max(0, 1 - int(np.floor(np.log10(max(span, 1e-9))))))
    return f"{value:.{decimals}f}"


def clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


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


def line_plots(
    panels: Sequence[Panel], x_range: tuple[float, float] | None = None, width: int = 960, panel_height: int = 150, scale: int = 2
) -> np.ndarray:
    """Panels stacked top to bottom, a shared time axis (seconds) -> uint8 RGB image [H, W, 3]."""
    left, right, top_gap, bottom_gap = 14 * 6 * scale // 2 + 8, 16, 12 + GLYPH_H * scale, 10 + GLYPH_H * scale
    all_x = np.concatenate([s.x for p in panels for s in p.series] or [np.zeros(1)])
    x_lo, x_hi = x_range if x_range is not None else nice_range(all_x)
    labels = list(dict.fromkeys(s.label for p in panels for s in p.series))
    legend_h = (GLYPH_H * scale + 6) * min(len(labels), len(PALETTE)) + 8
    height = len(panels) * (panel_height + top_gap + bottom_gap) + legend_h
    image = np.full((height, width, 3), PAPER, np.uint8)
    plot_w = width - left - right
    for k, panel in enumerate(panels):
        y_top = k * (panel_height + top_gap + bottom_gap) + top_gap
        values = np.concatenate([s.y for s in panel.series] or [np.zeros(1)])
        y_lo, y_hi = panel.y_range if panel.y_range is not None else nice_range(values)
        image[y_top, left : left + plot_w] = GRID
        image[y_top + panel_height, left : left + plot_w] = GRID
        image[y_top : y_top + panel_height, left] = GRID
        image[y_top : y_top + panel_height, left + plot_w - 1] = GRID
        draw_text(image, panel.title, left, y_top - GLYPH_H * scale - 4, INK, scale)
        draw_text(image, short_number(y_hi, y_hi - y_lo), 4, y_top, INK, scale)
        draw_text(image, short_number(y_lo, y_hi - y_lo), 4, y_top + panel_height - GLYPH_H * scale, INK, scale)
        draw_text(image, clock(max(x_lo, 0.0)), left, y_top + panel_height + 4, INK, scale)
        end_label = clock(x_hi)
        draw_text(image, end_label, left + plot_w - 6 * scale * len(end_label), y_top + panel_height + 4, INK, scale)

        def px(x: np.ndarray) -> np.ndarray:
            return left + (x - x_lo) / (x_hi - x_lo) * (plot_w - 1)

        def py(y: np.ndarray) -> np.ndarray:
            return y_top + panel_height - (y - y_lo) / (y_hi - y_lo) * panel_height

        for s in panel.series:
            color = PALETTE[labels.index(s.label) % len(PALETTE)]
            xs, ys = px(np.asarray(s.x, float)), py(np.asarray(s.y, float))
            for i in range(len(xs)):
                if not np.isfinite(ys[i]):
                    continue
                if i + 1 < len(xs) and np.isfinite(ys[i + 1]):
                    draw_line(image, xs[i], ys[i], xs[i + 1], ys[i + 1], color)
                draw_line(image, xs[i], ys[i], xs[i], ys[i], color, width=5)
    y = height - legend_h + 4
    for i, label in enumerate(labels[: len(PALETTE)]):
        image[y : y + GLYPH_H * scale, left : left + GLYPH_H * scale] = PALETTE[i]
        draw_text(image, label[-60:], left + GLYPH_H * scale + 8, y, INK, scale)
        y += GLYPH_H * scale + 6
    return image


def report_png(report, path) -> None:  # report: lmdm.eval.report.Report
    """The per-segment scores of every file over time -> a PNG (4 panels)."""
    from pathlib import Path

    def series(field: str) -> list[Series]:
        out = []
        for f in report.files:
            mid = np.array([(s.start + s.end) / 2 for s in f.segments])
            vals = np.array([np.nan if getattr(s, field) is None else getattr(s, field) for s in f.segments], float)
            out.append(Series(Path(f.name).name, mid, vals))
        return out

    asked = any(s.asked_probability is not None for f in report.files for s in f.segments)
    panels = [
        Panel("P(ASKED STYLE)" if asked else "P(TOP STYLE)", series("asked_probability" if asked else "style_probability"), (0.0, 1.0)),
        Panel("DRIFT: MAHALANOBIS TO REFERENCE (1 = A TYPICAL CORPUS WINDOW)", series("drift")),
        Panel("TEMPO BPM", series("tempo_bpm")),
        Panel("RMS DBFS", series("rms_db")),
    ]
    end = max((s.end for f in report.files for s in f.segments), default=1.0)
    write_png(path, line_plots(panels, x_range=(0.0, end)))
