"""The per-host correction: fit, interval, host state, storage, and its training networks."""

from __future__ import annotations

import functools
import importlib.util
import itertools
import math
import random
import statistics
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from edgefit.errors import ConfigError, EdgefitError
from edgefit.measure import LatencyStats, LatencyTable, predict_latency
from edgefit.measure.correction import (
    HostCorrection,
    calibrate_correction,
    calibration_networks,
    correction_key,
    fit_correction,
    random_block_network,
    t_quantile,
)

ROOT = Path(__file__).resolve().parents[2]


def _table(tmp_path, **kw):
    """A table on a fake clock: every reading 1 ms after the last."""
    clock = functools.partial(next, itertools.count(0.0, 0.001))
    return LatencyTable(tmp_path / "l.sqlite", timer=clock, runs=1, warmup=0, min_sample_s=0, **kw)


def test_fit_is_median_ratio_with_leave_one_out_residuals():
    # ratios 2.0, 1.0, 1.5, 1.2: median 1.35; without 2.0 the median is 1.2 -> 2/1.2 - 1
    c = fit_correction("hot", [1.0, 2.0, 2.0, 5.0], [2.0, 2.0, 3.0, 6.0])
    assert c.factor == pytest.approx(1.35)
    assert c.residuals == pytest.approx((2 / 1.2 - 1, 1 / 1.5 - 1, 1.5 / 1.2 - 1, 1.2 / 1.5 - 1))
    with pytest.raises(ConfigError):
        fit_correction("hot", [1.0, 1.0], [1.0, 1.0])  # too few networks
    with pytest.raises(ConfigError):
        fit_correction("hot", [1.0, 0.0, 1.0], [1.0, 1.0, 1.0])


def test_t_quantile_matches_tables():
    # Student-t tables: t(0.95; 5) = 2.015, t(0.975; 10) = 2.228, t(0.9; 30) = 1.310
    assert t_quantile(0.95, 5) == pytest.approx(2.015, rel=2e-3)
    assert t_quantile(0.975, 10) == pytest.approx(2.228, rel=2e-3)
    assert t_quantile(0.9, 30) == pytest.approx(1.310, rel=2e-3)
    assert t_quantile(0.05, 5) == pytest.approx(-t_quantile(0.95, 5))
    with pytest.raises(ConfigError):
        t_quantile(1.0, 5)


def test_interval_is_the_t_prediction_interval_of_the_log_residuals():
    # log residuals -0.1, 0, 0.1: mean 0, sd 0.1, n = 3 -> half width t(0.95; 2) * 0.1 * sqrt(4/3)
    c = HostCorrection("rotated", 1.1, (math.expm1(-0.1), 0.0, math.expm1(0.1)))
    half = t_quantile(0.95, 2) * 0.1 * math.sqrt(4 / 3)
    assert half == pytest.approx(2.885 * 0.11547, rel=1e-3)
    low, high = c.interval(10.0, 0.9)
    assert (low, high) == (pytest.approx(10 * math.exp(-half)), pytest.approx(10 * math.exp(half)))
    assert c.upper(10.0, 0.9) == pytest.approx(
        10 * math.exp(t_quantile(0.9, 2) * 0.11547), rel=1e-4
    )
    # residuals all on one side: the interval still contains the point prediction
    assert HostCorrection("hot", 1.0, (0.10, 0.11, 0.12)).interval(1.0, 0.5)[0] == 1.0
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError):
            c.interval(1.0, bad)
    # the load seen at calibration raises the upper end and the budget bound, not the lower
    loaded = HostCorrection("rotated", 1.1, c.residuals, load_ratio=1.2)
    assert loaded.interval(10.0, 0.9) == (pytest.approx(low), pytest.approx(1.2 * high))
    assert loaded.upper(10.0, 0.9) == pytest.approx(1.2 * c.upper(10.0, 0.9))
    with pytest.raises(ConfigError):
        HostCorrection("hot", 1.0, (0.0, 0.0, 0.0), load_ratio=0.9)


def test_correction_validates_and_round_trips():
    with pytest.raises(EdgefitError):
        HostCorrection("warm", 1.0, (0.0, 0.0, 0.0))
    with pytest.raises(EdgefitError):
        HostCorrection("hot", -1.0, (0.0, 0.0, 0.0))
    with pytest.raises(EdgefitError):
        HostCorrection("hot", 1.0, (0.0, 0.1))  # a prediction interval needs >= 3
    c = HostCorrection(
        "hot", 1.2, (0.1, -0.1, 0.0), networks=("a",), canary_s=2e-4, retakes=3,
        load_ratio=1.3, table_s=(1.0, 2.0, 3.0), measured_s=(1.1, 2.0, 3.0),
    )
    assert HostCorrection.from_json(c.to_json()) == c
    with pytest.raises(ConfigError):
        HostCorrection.from_json("{not json")


def test_host_state_change_makes_a_correction_stale():
    c = HostCorrection("hot", 1.0, (0.0, 0.0, 0.0), canary_s=1.0)
    assert not c.stale(1.2) and not c.stale(0.81)
    assert c.stale(1.26) and c.stale(0.79)


def test_prediction_applies_the_stored_correction_with_its_interval(tmp_path):
    table = _table(tmp_path)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    raw = predict_latency(model, input_shape=(1, 4), table=table, measure=False, correction=False)
    assert raw.correction is None and raw.low_s is None and raw.regime == "hot"
    with pytest.raises(ConfigError):
        raw.budget_met(1.0)
    corr = HostCorrection("hot", 2.0, (-0.1, 0.0, 0.2), canary_s=None)
    table.put_text(correction_key("hot", torch.get_num_threads()), corr.to_json())
    pred = predict_latency(model, input_shape=(1, 4), table=table, measure=False)
    assert pred.table_seconds == pytest.approx(raw.seconds)
    assert pred.seconds == pytest.approx(2 * raw.seconds)
    assert (pred.low_s, pred.high_s) == corr.interval(pred.seconds, 0.9)
    assert pred.low_s < pred.seconds < pred.high_s
    bound = corr.upper(pred.seconds, 0.9)
    assert pred.budget_met(bound * 1.001) and not pred.budget_met(bound * 0.999)
    assert pred.to_dict()["interval_s"] == [pred.low_s, pred.high_s]
    measured = LatencyStats.from_samples([pred.seconds])
    from dataclasses import replace

    assert replace(pred, measured=measured).measured_in_interval is True


def test_calibration_fits_stores_and_reuses(tmp_path, monkeypatch):
    """The correction is fitted on the calibration networks alone and stored in the table."""
    from edgefit.measure import correction as correction_mod
    from edgefit.measure import lut

    table = _table(tmp_path, hot_bytes=1 << 40)  # every network is timed hot
    nets = calibration_networks("hot", 3)
    monkeypatch.setattr(
        correction_mod, "calibration_networks", lambda regime, count, seed, hot: nets
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        notes = []
        corr = lut.host_correction(table, "hot", calibrate=True, notes=notes)
    assert corr.networks == tuple(label for *_, label in nets)
    assert len(corr.residuals) == 3 and corr.factor > 0 and "calibrated" in notes[0]
    # every end-to-end pass reads the fake clock twice, 1 ms apart: 10th percentile and
    # median are both 1 ms, so no load on top of the uncontended latency
    assert corr.measured_s == pytest.approx((1e-3,) * 3) and len(corr.table_s) == 3
    assert corr.load_ratio == pytest.approx(1.0)
    ratios = [m / t for t, m in zip(corr.table_s, corr.measured_s, strict=True)]
    assert corr.factor == pytest.approx(statistics.median(ratios))
    assert lut.host_correction(table, "hot", calibrate=False) == corr  # stored, reused
    with pytest.raises(ConfigError, match="regime"):
        calibrate_correction(table, "rotated", count=3)  # none falls in it on this table


def _fingerprint(model, shape):
    leaves = [m for m in model.modules() if next(iter(m.children()), None) is None]
    return (tuple(shape), tuple((type(m).__name__, m.extra_repr()) for m in leaves))


def test_no_benchmark_network_is_in_the_calibration_set():
    from edgefit.zoo import create, get_spec

    spec = importlib.util.spec_from_file_location(
        "latency_prediction", ROOT / "benchmarks" / "latency_prediction.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    training = {
        _fingerprint(m, s)
        for regime in ("hot", "rotated")
        for m, s, _ in calibration_networks(regime)
    }
    assert len(training) == 12  # 6 distinct networks per regime
    for name in bench.CNNS:
        model = create(name, device="meta")
        assert _fingerprint(model, get_spec(name).input_shape) not in training, name
    for model, shape, _label in bench.random_networks(20, seed=0):
        assert _fingerprint(model, shape) not in training


def test_random_block_networks_are_seeded_and_run():
    a = random_block_network(random.Random(5), "hot")
    b = random_block_network(random.Random(5), "hot")
    assert a[2] == b[2] and _fingerprint(a[0], a[1]) == _fingerprint(b[0], b[1])
    assert torch.equal(a[0][-1].weight, b[0][-1].weight)
    with torch.inference_mode():
        assert a[0](torch.randn(*a[1])).shape == (1, 10)
    with pytest.raises(ConfigError):
        random_block_network(random.Random(0), "cold")
