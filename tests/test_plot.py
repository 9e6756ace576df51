"""lmdm.plot and lmdm.eval.plot: spectrogram and score pictures on matplotlib (the `[plot]` extra).

Tests that draw need matplotlib (skipped without it; README's test command installs it); the
missing-matplotlib message is tested either way, by hiding the module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lmdm.eval.plot import Panel, Series, line_plots, value_limits
from lmdm.plot import DPI, INSTALL, PlotUnavailable, clock, clock_step, plot_unavailable, spectrogram_db, spectrogram_png

SR = 16000


@pytest.fixture
def mpl():
    """matplotlib, or skip the test."""
    return pytest.importorskip("matplotlib")


def read_png(path: Path) -> np.ndarray:
    """The pixels [H, W, channels] of a PNG file (which must be one)."""
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def sine(seconds: float, hz: float = 1000.0, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(round(seconds * SR)) / SR)


# ----------------------------------------------------------------------------------------------
# Pure parts (no matplotlib)


def test_spectrogram_db_reads_dbfs_and_pools_long_audio() -> None:
    spec, group = spectrogram_db(sine(1.0, hz=SR / 512 * 32, amplitude=1.0), n_fft=512, hop=128)  # on bin 32
    assert spec.shape == (257, 1 + (SR - 512) // 128) and group == 1
    assert abs(spec.max() - 0.0) < 0.01 and int(spec.mean(axis=1).argmax()) == 32  # full-scale sine = 0 dBFS
    pooled, group = spectrogram_db(sine(10.0), n_fft=512, hop=128, max_columns=100)
    assert pooled.shape[1] <= 100 and group == 13


def test_flat_level_is_not_a_drop() -> None:
    """A level that moves by 0.1 dB must not fill the axis (the old autoscale drew it as a drop)."""
    level = -20.0 + np.array([0.05, -0.05, 0.02, -0.03, np.nan, 0.0])
    lo, hi = value_limits(level, min_span=12.0)
    assert hi - lo >= 12.0 and lo < -20.05 and hi > -19.95 and abs((lo + hi) / 2 + 20.0) < 0.1
    assert value_limits(np.array([-30.0, -5.0]), min_span=12.0) == pytest.approx((-31.25, -3.75))  # wide data: its own range
    assert value_limits(np.array([0.9, 1.1]), min_span=2.0, bottom=0.0) == (0.0, 2.0)
    assert value_limits(np.array([np.nan]), min_span=12.0) == (0.0, 12.0)
    assert value_limits(np.array([3.0, 3.0])) == (2.5, 3.5)


def test_clock_ticks() -> None:
    assert [clock(s) for s in (0, 59.6, 75, 3600)] == ["0:00", "1:00", "1:15", "60:00"]
    assert [clock_step(s) for s in (6, 60, 180, 1800)] == [1.0, 10.0, 30.0, 300.0]


def test_missing_matplotlib_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    problem = plot_unavailable()
    assert problem is not None and INSTALL in problem and "\n" not in problem
    with pytest.raises(PlotUnavailable, match="lmdm\\[plot\\]"):
        spectrogram_png(sine(0.5), SR, tmp_path / "s.png")
    with pytest.raises(ImportError):
        line_plots([Panel("x", [])], tmp_path / "l.png")
    from lmdm.eval.cli import main as eval_main

    assert eval_main([str(tmp_path / "any.wav"), "--plot", str(tmp_path / "e.png")]) == 2  # before any work
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmdm eval: error: --plot: plots need matplotlib") and INSTALL in err and "\n" not in err
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------
# Pictures


def test_spectrogram_png_has_axes_units_and_size(mpl, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "s.png"
    figure = spectrogram_png(sine(2.0), SR, path, title="house at 120 bpm")
    assert read_png(path).shape[:2] == (4 * DPI, 10 * DPI)  # 10 x 4 inches
    ax, bar = figure.axes
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "frequency (kHz)" and bar.get_ylabel() == "level (dBFS)"
    assert ax.get_xlim() == (0.0, 2.0) and ax.get_ylim() == (0.0, 8.0)
    assert "house at 120 bpm" in figure.get_suptitle()
    assert ax.images[0].get_clim()[1] == pytest.approx(20 * np.log10(0.5), abs=0.1)  # the sine's level


def test_spectrogram_panels_share_one_scale_and_time_axis(mpl, tmp_path: Path) -> None:
    """As lmdm.eval.codec uses it: input / reconstruction / baseline stacked, one dB scale."""
    figure = spectrogram_png([sine(1.0), sine(1.0, amplitude=0.05), np.zeros(SR // 2)], SR, tmp_path / "p.png", n_fft=256, labels=["input", "codec", "silence"])
    image = read_png(tmp_path / "p.png")
    assert image.shape[1] == 10 * DPI and image.shape[0] > 2 * 4 * DPI
    panels = figure.axes[:3]
    assert [ax.get_title(loc="left") for ax in panels] == ["input", "codec", "silence"]
    assert len({ax.images[0].get_clim() for ax in panels}) == 1
    assert all(ax.get_xlim() == (0.0, 1.0) for ax in panels)


def test_line_plots_label_units_and_minute_ticks(mpl, tmp_path: Path) -> None:
    x = np.arange(12) * 15 + 7.5  # 3 minutes of 15 s segments
    flat = -20.0 + np.random.default_rng(0).uniform(-0.05, 0.05, len(x))
    panels = [
        Panel("RMS level", [Series("a.wav", x, flat)], unit="dBFS", min_span=12.0),
        Panel("p(asked style)", [Series("a.wav", x, np.where(x > 100, np.nan, 0.7)), Series("b.wav", x, np.full(len(x), 0.2))], (0.0, 1.0), unit="probability"),
    ]
    figure = line_plots(panels, tmp_path / "l.png", x_range=(0.0, 180.0), title="two files")
    image = read_png(tmp_path / "l.png")
    assert image.shape[1] == 10 * DPI and image.shape[0] == round(figure.get_figheight() * DPI)
    level, prob = figure.axes[:2]
    lo, hi = level.get_ylim()
    assert hi - lo >= 12.0 and lo < flat.min() and hi > flat.max()  # a flat line in the middle, not a drop
    assert level.get_ylabel() == "dBFS" and prob.get_ylabel() == "probability" and prob.get_xlabel() == "time (m:ss)"
    assert prob.get_ylim()[0] <= 0.0 and prob.get_ylim()[1] >= 1.0
    ticks = [t.get_text() for loc, t in zip(prob.get_xticks(), prob.get_xticklabels()) if 0 <= loc <= 180]
    assert ticks == ["0:00", "0:30", "1:00", "1:30", "2:00", "2:30", "3:00"]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["a.wav", "b.wav"]


def test_render_plot_writes_a_readable_spectrogram(mpl, tmp_path: Path) -> None:
    """`lmdm render --plot`: out.png next to out.wav, 10 x 4 inches (it was 3747 x 257 pixels, no axes)."""
    from lmdm.cli import main as lmdm_main

    out = tmp_path / "x.wav"
    assert lmdm_main(["render", "warm pads", "--seconds", "1", "-o", str(out), "--model", "tiny", "--steps", "1", "--plot", "--quiet"]) == 0
    assert out.is_file() and read_png(out.with_suffix(".png")).shape[:2] == (4 * DPI, 10 * DPI)
