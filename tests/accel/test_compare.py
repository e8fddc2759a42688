"""Whole-network comparison, the Eyeriss chip figures, and what the model does not cover."""

import pytest
import torch
from torch import nn

from edgefit.accel.arch import SpatialArch, paper_array
from edgefit.accel.compare import DataflowConfig, compare_dataflows, eyeriss_comparison
from edgefit.accel.layers import UnsupportedLayerError, layers_from_profile
from edgefit.errors import ConfigError, RegistryError
from edgefit.metrics import profile
from edgefit.zoo import create


@pytest.fixture(scope="module")
def lenet():
    return profile(create("lenet5_digits", device="meta"), input_shape=(1, 1, 8, 8), name="lenet5_digits")


@pytest.fixture(scope="module")
def report(lenet):
    return compare_dataflows(lenet, DataflowConfig(batch=2))


def test_layers_of_lenet(lenet):
    layers, uncovered = layers_from_profile(lenet, batch=2)
    assert [(x.name, x.kind, x.r, x.macs) for x in layers] == [
        ("features.0", "conv", 5, 2 * 32_000), ("features.3", "conv", 5, 2 * 400_000),
        ("classifier.0", "fc", 2, 2 * 100_000), ("classifier.2", "fc", 1, 2 * 5_000)]
    assert uncovered == []


def test_report_totals_and_breakdown(report):
    assert set(report.results) == {"rs", "ws", "osa", "osb", "osc", "nlr"}
    for d in report.results:
        assert report.total(d) == pytest.approx(report.total(d, "conv") + report.total(d, "fc"))
        assert sum(report.breakdown(d).values()) == pytest.approx(report.total(d))
        assert report.breakdown(d)["alu"] == 2 * 537_000
    assert report.ratio("nlr", "conv") > report.ratio("ws", "conv") > 1
    assert "total CONV" in report.table() and "| dataflow |" in report.breakdown_table("conv", markdown=True)
    by_data = report.breakdown_table(markdown=True, by="data").splitlines()
    assert by_data[0] == "| dataflow | mac | ifmap | weight | psum | total |"
    assert by_data[2].startswith("| RS | ") and by_data[2].endswith(" | 1.000 |")
    with pytest.raises(ConfigError, match="breakdown by 'layer'"):
        report.breakdown_table(by="layer")


def test_equal_area_gives_the_rf_area_to_the_buffer():
    cfg = DataflowConfig()
    assert cfg.dataflows == ("rs", "ws", "osa", "osb", "osc", "nlr")
    assert DataflowConfig(dataflows=("rs", "os", "osa")).dataflows == ("rs", "osa", "osb", "osc")
    assert cfg.arch_for("rs") == paper_array()
    # the RS baseline's storage area (256 x 512 B RFs + 128 KiB) at 12.70 um^2 per buffer byte
    area = 256 * 512 * 20.87 + 131072 * 12.70
    assert (cfg.arch_for("nlr").rf_bytes, cfg.arch_for("nlr").buffer_bytes) == (0, int(area / 12.70))
    assert [cfg.arch_for(d).rf_bytes for d in ("ws", "osa", "osb", "osc")] == [2, 98, 10, 2]
    # OS-A's 98 B RF: 59.15 - (98 - 64) / 64 x (59.15 - 39.94) um^2 per byte
    per_byte = 59.15 - (98 - 64) / 64 * (59.15 - 39.94)
    assert cfg.arch_for("osa").buffer_bytes == int((area - 256 * 98 * per_byte) / 12.70)
    assert DataflowConfig(equal_area=False).arch_for("ws") == paper_array()


def test_config_errors():
    with pytest.raises(RegistryError):
        DataflowConfig(dataflows=("rs", "wss"))
    with pytest.raises(ConfigError):
        DataflowConfig(batch=0)
    with pytest.raises(ConfigError):
        DataflowConfig(dataflows=())


def test_uncovered_layers_are_listed_and_no_layer_is_an_error():
    class Attn(nn.Module):
        def forward(self, x):
            return torch.softmax(x @ x.transpose(-1, -2), -1) @ x

    net = nn.Sequential(nn.Linear(8, 8), Attn())
    rep = compare_dataflows(profile(net, input_shape=(1, 4, 8)), DataflowConfig(dataflows=("rs",), batch=1))
    assert [u[:2] for u in rep.uncovered] == [("1", "Attn")]
    with pytest.raises(UnsupportedLayerError, match="no CONV or FC layer"):
        compare_dataflows(profile(Attn(), input_shape=(1, 4, 8)))


def test_eyeriss_chip_comparison(lenet):
    c = eyeriss_comparison(lenet)
    arch = c.report.config.arch
    rows = c.report.rows("rs", "conv")
    assert c.report.config.batch == 4 and arch.pes == 168
    assert c.compute_seconds == pytest.approx(sum(r.cycles for r in rows) / 200e6)
    assert c.latency_seconds >= c.compute_seconds
    assert c.dram_bytes_per_image == pytest.approx(sum(r.dram_words() for r in rows) * 2 / 4)
    assert c.measured["runtime_seconds"][0] == 0.1153 and c.measured["dram_bytes_per_image"][0] == 3.85e6
    assert [r[0] for r in c.rows()][0] == "CONV latency per batch of 4"


def test_small_array_error_names_the_layer(lenet):
    with pytest.raises(ConfigError, match="layer 'features.0'.*no RS mapping fits 4x4 PEs"):
        compare_dataflows(lenet, DataflowConfig(arch=SpatialArch(4, 4, 512, 65536), dataflows=("rs",), batch=1))
