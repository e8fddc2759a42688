"""The feature-based host correction: features, the ridge fit, held-out residuals, conformal interval."""

from __future__ import annotations

import importlib.util
import math
import statistics
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from edgefit.errors import ConfigError
from edgefit.measure import LayerPrediction, predict_latency
from edgefit.measure.correction import HostCorrection, correction_key, feature_calibration_networks
from edgefit.measure.features import (
    FEATURE_NAMES,
    FeatureCorrection,
    conformal_bound,
    conformal_rank,
    feature_vector,
    network_features,
    op_class,
)
from edgefit.metrics import profile

from .test_correction import _fingerprint, _table

ROOT = Path(__file__).resolve().parents[2]


def _small():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32, 10),
    )


def test_op_classes():
    assert op_class("Conv2d", nn.Conv2d(8, 8, 3, groups=8)) == "depthwise"
    assert op_class("Conv2d", nn.Conv2d(8, 8, 3, groups=4)) == "conv"  # grouped, not depthwise
    assert op_class("Conv2d", nn.Conv2d(1, 8, 3)) == "conv"  # groups 1 == in_channels 1
    assert op_class("Linear") == "linear" and op_class("AdaptiveAvgPool2d") == "pooling"
    assert op_class("add") == "elementwise" and op_class("(leaf calls in a network)") == "overhead"


def test_network_features_by_hand():
    model = _small()
    prof = profile(model, input_shape=(1, 3, 8, 8))
    rows = [
        LayerPrediction("0", "Conv2d", 4e-6, True),
        LayerPrediction("1", "Conv2d", 2e-6, True),
        LayerPrediction("2", "ReLU", 1e-6, True),
        LayerPrediction("3", "MaxPool2d", 1e-6, True),
        LayerPrediction("5", "Linear", 2e-6, True),
        LayerPrediction("(container calls)", "1 module calls", 1e-6, True),
        LayerPrediction("x", "Weird", None, False),  # unpredicted: left out
    ]
    f = network_features(model, prof, rows, "hot", cache_bytes=1024.0)
    total = 11e-6
    assert f["share_conv"] == pytest.approx(4 / 11) and f["share_depthwise"] == pytest.approx(2 / 11)
    assert f["share_elementwise"] == pytest.approx(1 / 11) and f["share_pooling"] == pytest.approx(1 / 11)
    assert f["share_linear"] == pytest.approx(2 / 11) and f["share_overhead"] == pytest.approx(1 / 11)
    assert f["log_table_s"] == pytest.approx(math.log(total))
    assert f["log_calls"] == pytest.approx(math.log(5))  # five layer rows, not the overhead row
    assert f["log_s_per_call"] == pytest.approx(math.log(total / 5))
    # weights: conv 3*8*9+8 = 224, depthwise 8*9+8 = 80, linear 32*10+10 = 330 -> 634 floats
    assert f["log2_weights_cache"] == pytest.approx(math.log2(634 * 4 / 1024))
    # outputs: 8*6*6 + 8*4*4 + 8*4*4 + 8*2*2 + 10 = 586 floats (flatten is a view)
    assert f["log2_activations_cache"] == pytest.approx(math.log2(586 * 4 / 1024))
    assert f["hot"] == 1.0 and set(f) == set(FEATURE_NAMES)
    with pytest.raises(ConfigError):
        feature_vector({}, 1, 1.0, 1.0, 1.0, True)


def test_conformal_ranks_and_bounds():
    # (n + 1) p: 41 * 0.95 = 38.95 -> 39th; 41 * 0.05 = 2.05 -> 2nd
    assert conformal_rank(40, 0.95) == 39 and conformal_rank(40, 0.05) == 2
    assert conformal_rank(19, 0.95) == 19 and conformal_rank(5, 0.95) == 5  # clipped to n
    res = [0.05 * i for i in range(-10, 10)]  # -0.5 .. 0.45, 20 values
    # 21 * 0.95 = 19.95 -> 20th = 0.45; 21 * 0.05 = 1.05 -> 1st = -0.5
    assert conformal_bound(res, 0.95) == pytest.approx(0.45)
    assert conformal_bound(res, 0.05) == pytest.approx(-0.5)
    c = HostCorrection("hot", 2.0, tuple(math.expm1(r) for r in res), interval_method="conformal")
    lo, hi = c.interval(1.0, 0.9)
    assert lo == pytest.approx(math.exp(-0.5)) and hi == pytest.approx(math.exp(0.45))
    assert c.upper(1.0, 0.9) == pytest.approx(math.exp(conformal_bound(res, 0.9)))  # 18.9 -> 19th
    with pytest.raises(ConfigError):
        HostCorrection("hot", 1.0, (0.0, 0.0, 0.0), interval_method="bootstrap")


def _feats(**kw):
    f = dict.fromkeys(FEATURE_NAMES, 0.0)
    f.update(kw)
    return f


def test_constant_features_give_the_geometric_mean_and_its_loo_residuals():
    ratios = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8]
    fc = FeatureCorrection((_feats(),) * 8, (1.0,) * 8, tuple(ratios))
    logs = [math.log(r) for r in ratios]
    # a constant feature standardises to 0: the ridge predicts the mean log ratio
    assert fc.factor(_feats()) == pytest.approx(math.exp(statistics.fmean(logs)))
    loo = [logs[i] - statistics.fmean(logs[:i] + logs[i + 1 :]) for i in range(8)]
    assert fc.residuals == pytest.approx(tuple(math.expm1(r) for r in loo))
    back = FeatureCorrection.from_json(fc.to_json())
    assert back.factor(_feats()) == pytest.approx(fc.factor(_feats()))
    corr = fc.correction_for(_feats(), "rotated")
    assert corr.model == "features" and corr.interval_method == "conformal"
    assert corr.factor == pytest.approx(fc.factor(_feats()))


def test_ridge_learns_a_feature_and_does_not_extrapolate():
    # measured / table = exp(0.4 * share_depthwise): depthwise-heavy networks run slower
    shares = [i / 11 for i in range(12)]
    feats = tuple(_feats(share_depthwise=s, log_calls=float(i % 3)) for i, s in enumerate(shares))
    measured = tuple(math.exp(0.4 * s) for s in shares)
    fc = FeatureCorrection(feats, (1.0,) * 12, measured)
    assert fc.factor(_feats(share_depthwise=0.5, log_calls=1.0)) == pytest.approx(math.exp(0.2), rel=0.01)
    assert fc.coefficients()["alpha"] == 0.01  # noiseless data: the smallest penalty
    # far outside the calibration set the log ratio is clipped to the range it showed
    assert fc.factor(_feats(share_depthwise=10.0, log_calls=1.0)) == pytest.approx(math.exp(0.4))
    assert max(abs(r) for r in fc.residuals) < 0.02


def test_feature_correction_validates():
    with pytest.raises(ConfigError):
        FeatureCorrection((_feats(),) * 3, (1.0,) * 3, (1.0,) * 3)  # too few networks
    with pytest.raises(ConfigError):
        FeatureCorrection(({"hot": 1.0},) * 8, (1.0,) * 8, (1.0,) * 8)  # features missing
    with pytest.raises(ConfigError):
        FeatureCorrection.from_json("{}")
    with pytest.raises(ConfigError):  # the load ratio is checked as a per-regime correction's is
        FeatureCorrection((_feats(),) * 8, (1.0,) * 8, (1.0,) * 8, load_ratio=0.9)


def test_a_network_correction_carries_the_calibration_state():
    state = dict(networks=("a",) * 8, canary_s=2e-4, created=1000.0, retakes=3, load_ratio=1.2)
    fc = FeatureCorrection((_feats(),) * 8, (1.0,) * 8, (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8), **state)
    corr = fc.correction_for(_feats(), "hot")
    assert fc.calibration_state() == state and corr.calibration_state() == state
    assert fc.stale(3e-4) and corr.stale(3e-4) and not fc.stale(2.1e-4)
    assert FeatureCorrection.from_json(fc.to_json()).calibration_state() == state


def test_prediction_applies_the_stored_feature_correction(tmp_path):
    table = _table(tmp_path)
    model = _small().eval()
    base = predict_latency(model, input_shape=(1, 3, 8, 8), table=table, measure=False, correction=False)
    assert base.correction is None and base.features is not None
    ratios = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8)
    fc = FeatureCorrection((_feats(),) * 8, (1.0,) * 8, ratios)
    table.put_text(correction_key("features", torch.get_num_threads()), fc.to_json())
    pred = predict_latency(model, input_shape=(1, 3, 8, 8), table=table, measure=False,
                           correction_model="features")
    assert pred.correction.model == "features"
    assert pred.seconds == pytest.approx(base.table_seconds * fc.factor(base.features))
    assert pred.low_s <= pred.seconds <= pred.high_s
    assert pred.to_dict()["features"] == base.features
    # the default is the per-regime factor: with none stored and no calibration, no correction
    assert predict_latency(model, input_shape=(1, 3, 8, 8), table=table, measure=False).correction is None
    corr = HostCorrection("hot", 1.5, (-0.2, 0.0, 0.1, 0.3))
    table.put_text(correction_key("hot", torch.get_num_threads()), corr.to_json())
    pred = predict_latency(model, input_shape=(1, 3, 8, 8), table=table, measure=False)
    assert pred.correction.model == "factor" and pred.seconds == pytest.approx(1.5 * base.table_seconds)
    with pytest.raises(ConfigError, match="correction model"):
        predict_latency(model, input_shape=(1, 3, 8, 8), table=table, measure=False, correction_model="mean")


def test_the_factor_is_calibrated_on_the_feature_networks(tmp_path, monkeypatch):
    """Without a stored factor, a prediction with features calibrates on the 40 varied networks
    (`calibrate_features`, which stores the per-regime factors beside) and applies the factor."""
    import edgefit.measure.correction as C

    table = _table(tmp_path)
    stored = HostCorrection("hot", 1.25, (-0.1, 0.0, 0.1), canary_s=1e-4)
    ratios = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8)
    fresh = FeatureCorrection((_feats(),) * 8, (1.0,) * 8, ratios, networks=("n",) * 8, seconds=3.0)
    calls = []

    def fake(table, canary_s, **kw):
        calls.append(canary_s)
        table.put_text(correction_key("hot", torch.get_num_threads()), stored.to_json())
        return fresh

    monkeypatch.setattr(C, "calibrate_features", fake)
    monkeypatch.setattr(C, "calibrate_correction", lambda *a, **k: pytest.fail("six-network calibration"))
    pred = predict_latency(_small().eval(), input_shape=(1, 3, 8, 8), table=table, measure=False,
                           correction=True)
    assert len(calls) == 1 and pred.correction == stored
    assert pred.seconds == pytest.approx(1.25 * pred.table_seconds)
    assert "host correction calibrated on 8 random networks in 3 s (0 retakes)" in pred.notes


def test_no_benchmark_network_is_in_the_feature_calibration_set():
    from edgefit.zoo import create, get_spec

    spec = importlib.util.spec_from_file_location(
        "latency_prediction", ROOT / "benchmarks" / "latency_prediction.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nets = feature_calibration_networks(40)
        training = {_fingerprint(m, s) for m, s, _ in nets}
        assert len(training) == 40  # distinct networks
        for name in bench.CNNS:
            assert _fingerprint(create(name, device="meta"), get_spec(name).input_shape) not in training
        for model, shape, _label in bench.random_networks(20, seed=0):
            assert _fingerprint(model, shape) not in training
    # deliberately varied: every family, weights from KiBs to over 100 MiB
    families = {label.split(":")[0] for _, _, label in nets}
    assert len(families) == 7
    weights = [sum(p.numel() * 4 for p in m.parameters()) for m, _, _ in nets]
    assert min(weights) < 2**20 and max(weights) > 100 * 2**20


def test_a_stored_per_regime_factor_is_reused_without_calibrating_features(tmp_path, monkeypatch):
    import edgefit.measure.correction as C

    monkeypatch.setattr(C, "calibrate_features", lambda *a, **k: pytest.fail("calibrated"))
    table = _table(tmp_path)
    corr = HostCorrection("hot", 1.5, (-0.2, 0.0, 0.1, 0.3))
    table.put_text(correction_key("hot", torch.get_num_threads()), corr.to_json())
    pred = predict_latency(_small().eval(), input_shape=(1, 3, 8, 8), table=table, measure=False,
                           correction=True)
    assert pred.correction.model == "factor" and pred.seconds == pytest.approx(1.5 * pred.table_seconds)


def test_feature_correction_notes_when_the_host_moved(tmp_path, monkeypatch):
    import edgefit.measure.correction as C
    import edgefit.measure.lut as L

    table = _table(tmp_path)
    ratios = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8)
    stored = FeatureCorrection((_feats(),) * 8, (1.0,) * 8, ratios, canary_s=1e-4)
    table.put_text(correction_key("features", torch.get_num_threads()), stored.to_json())
    monkeypatch.setattr(L, "_canary_reading", lambda table: 2e-4)  # the host now runs 2x slower
    notes = []
    assert L.feature_correction(table, calibrate=False, notes=notes) == stored
    assert notes == ["host state changed since the feature correction was calibrated"]
    fresh = FeatureCorrection((_feats(),) * 8, (1.0,) * 8, ratios, networks=("n",) * 8, retakes=3,
                              seconds=12.4, canary_s=2e-4)
    monkeypatch.setattr(C, "calibrate_features", lambda table, canary_s, **kw: fresh)
    notes = []
    assert L.feature_correction(table, calibrate=True, notes=notes) is fresh
    assert notes == ["host correction calibrated on 8 random networks in 12 s (3 retakes)"]


def test_feature_calibration_times_each_network_at_two_moments(tmp_path, monkeypatch):
    """Two blocks around a network's lookups, then one more after the whole set; p10 of all three."""
    import edgefit.measure.correction as C
    from edgefit.measure.latency import LatencyStats

    nets = [(nn.Sequential(nn.Linear(4, 4 + i)).eval(), (1, 4), f"n{i}") for i in range(8)]
    monkeypatch.setattr(C, "feature_calibration_networks", lambda count, seed: nets)
    calls = []

    def fake_measure(table, model, x):
        calls.append(model)
        late = calls.count(model) == 3  # the later block ran with the host quiet: 1 ms, else 2 ms
        return LatencyStats.from_samples([1e-3 if late else 2e-3] * 10)

    monkeypatch.setattr(C, "measure_network", fake_measure)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = C.calibrate_features(_table(tmp_path), count=8)
    order = [m for m, _, _ in nets for _ in range(2)] + [m for m, _, _ in nets]
    assert [id(m) for m in calls] == [id(m) for m in order]
    # 10th percentile (nearest rank) of 30 samples, 10 of them 1 ms: the 3rd smallest, 1 ms
    assert fc.measured_s == pytest.approx((1e-3,) * 8) and fc.networks == tuple(n for *_, n in nets)
