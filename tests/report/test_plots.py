"""Plots: valid files whose content (axes, points, bars) matches the estimate."""

from __future__ import annotations

import pytest
from tests.hardware.conftest import make_layer, make_profile
from tests.hardware.test_roofline import SLIDE, slide_device

from edgefit.errors import ConfigError
from edgefit.hardware import estimate
from edgefit.report.plots import (
    layer_bars_figure,
    plot_layer_bars,
    plot_roofline,
    plotted_layers,
    roofline_figure,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def est():
    layers = [make_layer(op, macs=int(f * 1e6 / 2), act_bytes=b * 1e6) for op, f, b, *_ in SLIDE]
    layers.append(
        make_layer("flatten", kind="Flatten", act_bytes=100)
    )  # no arithmetic: not on a log plot
    return estimate(make_profile(layers), slide_device())


def test_roofline_figure_content(est):
    fig = roofline_figure(est)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "intensity" in ax.get_xlabel() and "attainable" in ax.get_ylabel()
    points = [tuple(p) for c in ax.collections for p in c.get_offsets()]
    assert len(points) == len(plotted_layers(est)) == 6
    colors = {c.get_label().split("-")[0]: len(c.get_offsets()) for c in ax.collections}
    assert colors == {"memory": 3, "compute": 3}
    labels = {t.get_text() for t in ax.texts}
    assert {"op1", "op6"} <= labels
    assert "1 without arithmetic not shown" in ax.get_title()
    roof = ax.lines[0].get_ydata()
    assert max(roof) == pytest.approx(4608e9)
    op1 = next(p for p in points if p[0] < 3)
    assert op1[1] == pytest.approx(226.5e9, rel=0.005)


def test_plot_files_are_png(est, tmp_path):
    path = plot_roofline(est, tmp_path / "sub" / "roof.png")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000
    bars = plot_layer_bars(est, tmp_path / "bars.png")
    assert bars.read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bars.png",
        "sub",
    ]  # no temporary left behind


def test_bars_content(est):
    fig = layer_bars_figure(est)
    ax_t, ax_e = fig.axes
    assert len(ax_t.patches) == 7 and len(ax_e.patches) == 3 * 7
    heights = [p.get_height() for p in ax_t.patches]
    assert heights[0] == pytest.approx(est.layers[0].seconds * 1e6)
    assert [t.get_text() for t in ax_t.get_xticklabels()][:2] == ["op1", "op2"]


def test_bad_suffix(est, tmp_path):
    with pytest.raises(ConfigError, match="png"):
        plot_roofline(est, tmp_path / "roof.txt")


def test_unwritable_path_is_one_config_error(est, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"cannot write a plot to .*file/roof.png"):
        plot_roofline(est, blocker / "roof.png")
