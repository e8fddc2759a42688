"""The text of `edgefit predict` and `edgefit devices`, built by library functions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edgefit.errors import ConfigError
from edgefit.hardware import get_device
from edgefit.measure import LatencyStats, LayerPrediction, Prediction
from edgefit.measure.correction import HostCorrection
from edgefit.report.latency import (
    device_row,
    devices_table,
    host_state_lines,
    layer_lines,
    prediction_lines,
)

CORR = HostCorrection(
    "hot", 2.0, (-0.1, 0.0, 0.2), networks=("a", "b", "c"), canary_s=2e-4, created=1000.0,
    retakes=4, load_ratio=1.25,
)


def _prediction(**kw):
    layers = (
        LayerPrediction("conv", "Conv2d", 1e-3, False),
        LayerPrediction("act", "GELU", None, False, "no entry"),
    )
    base = dict(
        model="net", layers=layers, seconds=2e-3, table_seconds=1e-3,
        measured=LatencyStats.from_samples([2.5e-3, 3e-3, 4e-3, 2.4e-3, 5e-3]),
        measured_configs=1, cached_configs=2, notes=("allocator pinned",),
    )
    return Prediction(**{**base, **kw})


def test_prediction_lines_with_interval_measurement_and_budget():
    low, high = CORR.interval(2e-3, 0.9)
    pred = _prediction(low_s=low, high_s=high, correction=CORR, regime="hot")
    lines = prediction_lines(pred, roofline_s=1e-3, budget_s=2e-3, threads=1)
    assert lines[0] == "net on this host (1 threads)"
    assert "10th percentile" in lines[1]
    # the measurement's 10th percentile (nearest rank of 5) is its fastest pass, 2.4 ms
    assert lines[2] == "  predicted (lookup table): 2 ms   error -16.7%"
    assert lines[3] == "  roofline estimate:        1 ms   error -58.3%"
    # log residuals of (-0.1, 0, 0.2): mean m, sd s; bounds 2 ms * exp(m -+ t(0.95; 2) * s * sqrt(4/3)),
    # t(0.95; 2) = 2.8847 (Cornish-Fisher), the upper one x 1.25: 1.2636 ms and 4.1651 ms
    assert (round(low * 1e7), round(high * 1e7)) == (12636, 41651)
    assert lines[4] == (
        "  90% interval:             1.26 ms .. 4.17 ms   (table sum 1 ms x 2.000, hot, "
        "per-regime factor, t interval; upper end x 1.25 for the load seen at calibration)"
    )
    assert lines[5] == (
        "  measured (5 runs):      2.4 ms uncontended (10th percentile), "
        "median 3 ms under the current load"
    )
    # upper bound 2 ms * (1 + t-bound) * 1.25 > 2 ms: not met
    assert lines[6] == "  budget 2 ms met with 90% confidence: no"


def test_prediction_lines_without_measurement_or_correction():
    lines = prediction_lines(_prediction(measured=None))
    assert lines[2] == "  predicted (lookup table): 2 ms"
    assert len(lines) == 3
    with pytest.raises(ConfigError):  # a budget needs the correction's residuals
        prediction_lines(_prediction(), budget_s=1.0)


def test_layer_and_host_state_lines():
    pred = _prediction(correction=CORR, regime="hot")
    assert layer_lines(pred)[1].endswith("unpredicted: no entry")
    table = SimpleNamespace(gated=10, gate_timeouts=3, retaken=2, path="t.sqlite")
    lines = host_state_lines(pred, table, now=1000.0 + 600)
    assert lines == [
        "  host: hot correction from 3 random networks, 10 min old, canary 200 us, "
        "4 retakes when calibrated, load x1.25",
        "  host now: 7 of 10 gated measurements at full speed, 2 retaken",
        "  table: 1 new layer configurations measured, 2 reused (t.sqlite)",
        "  note: allocator pinned",
        "  unpredicted rows (1): act",
    ]


def test_devices_table_rows_and_alignment():
    stm = get_device("stm32f746")
    row = device_row(stm)
    assert row[0] == "stm32f746" and row[4] == "320 KB"
    text = devices_table([stm], host_placeholder=True).splitlines()
    assert text[0].startswith("name       device")
    assert text[1].startswith("stm32f746  ") and text[2].startswith("host       this machine")
    assert len(text) == 3 and devices_table([stm]).count("\n") == 1
