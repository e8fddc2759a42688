"""The stacked dataflow-energy bars: one bar per dataflow, heights are energy / RS energy."""

import pytest

from edgefit.accel.arch import SpatialArch
from edgefit.accel.compare import DataflowConfig, compare_layers
from edgefit.accel.layers import ConvLayer
from edgefit.report.accel_plots import LEVEL_COLORS, dataflow_energy_figure, plot_dataflow_energy


@pytest.fixture(scope="module")
def report():
    layer = ConvLayer("c", n=1, c=2, h=6, w=6, m=4, r=3, s=3)
    cfg = DataflowConfig(arch=SpatialArch(3, 3, 64, 4096), dataflows=("rs", "nlr"), batch=1)
    return compare_layers("tiny", [layer], cfg)


def test_bar_heights_are_normalized_energies(report):
    ax = dataflow_energy_figure(report).axes[0]
    tops = {}
    for patch in ax.patches:
        x = round(patch.get_x() + patch.get_width() / 2)
        tops[x] = max(tops.get(x, 0.0), patch.get_y() + patch.get_height())
    assert len(ax.patches) == 2 * len(LEVEL_COLORS)
    assert tops[0] == pytest.approx(1.0)
    assert tops[1] == pytest.approx(report.ratio("nlr"))


def test_plot_file_is_written(report, tmp_path):
    path = plot_dataflow_energy(report, tmp_path / "e.svg")
    assert path.read_text().startswith("<?xml")
