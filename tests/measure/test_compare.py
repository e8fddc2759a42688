"""Measured beside estimated: the library side of `edgefit bench` (no timing asserted)."""

import pytest
from torch import nn

import edgefit
from edgefit.errors import ConfigError
from edgefit.measure.compare import BenchResult, bench_model
from edgefit.measure.latency import LatencyStats, ThroughputPoint
from edgefit.report import bench_lines


def _result():
    prof = edgefit.profile(nn.Linear(64, 32), input_shape=(1, 64))
    est = edgefit.estimate(prof, "jetson_nano")
    lat = LatencyStats.from_samples([4 * est.totals.seconds, 2 * est.totals.seconds, 3 * est.totals.seconds])
    sweep = (ThroughputPoint(2, LatencyStats.from_samples([0.5])),)
    return BenchResult("Linear", lat, sweep, est, 1, 0), est


def test_ratio_and_dict():
    result, est = _result()
    assert result.measured_over_estimate == pytest.approx(3.0)  # median of 4x, 2x, 3x
    d = result.to_dict()
    assert d["throughput"] == [{"batch": 2, **LatencyStats.from_samples([0.5]).to_dict(), "items_per_s": 4.0}]
    assert d["estimate"]["seconds"] == est.totals.seconds
    assert d["estimate"]["throughput_per_s"] == {"2": est.throughput(2)}


def test_lines_show_both_and_the_sweep():
    result, _ = _result()
    lines = bench_lines(result)
    assert lines[0].startswith("Linear on ") and lines[3] == "  measured / roofline estimate: 3.00x"
    assert lines[-2].split()[:2] == ["2", "500"] and lines[-2].split()[3] == "4.0"


def test_meta_model_cannot_be_measured():
    model = nn.Linear(4, 2).to("meta")
    prof = edgefit.profile(model, input_shape=(1, 4))
    with pytest.raises(ConfigError, match="no real weights"):
        bench_model(model, prof, [(1, 4)])
    with pytest.raises(ConfigError, match="runs"):
        bench_model(nn.Linear(4, 2), prof, [(1, 4)], runs=0)
