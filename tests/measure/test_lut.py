"""The latency lookup table: keying, storage and reuse, with a fake timer (no timing asserted)."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch
from torch import nn

import edgefit
from edgefit.measure import LatencyStats, LatencyTable, layer_key, predict_latency, time_callable


class FakeTimer:
    """Each call advances the clock by ``step`` seconds."""

    def __init__(self, step=0.001):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 8, 3, padding=1)  # same configuration as conv1
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        y = self.relu(self.conv1(x) + self.conv2(x))  # a functional add in the root row
        return self.fc(torch.flatten(y, 1))


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFIT_CACHE_DIR", str(tmp_path / "cache"))


def test_latency_stats_nearest_rank():
    s = LatencyStats.from_samples([5, 1, 4, 2, 3, 6, 7, 8, 9, 10])
    assert s.median_s == 5.5 and s.p90_s == 9 and s.min_s == 1 and s.runs == 10


def test_time_callable_with_fake_timer():
    calls = []
    stats = time_callable(lambda: calls.append(1), warmup=2, runs=5, timer=FakeTimer(0.5))
    assert len(calls) == 7 and stats.median_s == 0.5 and stats.runs == 5


def test_key_depends_on_configuration_only():
    prof = edgefit.profile(Net(), input_shape=(1, 3, 8, 8))
    model = Net()
    k1 = layer_key(prof.layer("conv1"), model.conv1, threads=1)
    k2 = layer_key(prof.layer("conv2"), model.conv2, threads=1)
    assert k1 == k2
    key = json.loads(k1)
    assert (
        key["kind"] == "Conv2d"
        and key["input_shapes"] == [[1, 3, 8, 8]]
        and key["dtype"] == "float32"
    )
    assert key["attributes"]["stride"] == [1, 1] and "kernel_size=(3, 3)" in key["module"]
    assert layer_key(prof.layer("conv1"), model.conv1, threads=2) != k1
    assert layer_key(prof.layer("fc"), model.fc, threads=1) != k1


def test_table_stores_once_and_reuses(tmp_path):
    path = tmp_path / "lut.sqlite"
    table = LatencyTable(path, warmup=0, runs=3, timer=FakeTimer(0.002), min_sample_s=0)
    model = Net()
    pred = predict_latency(model, input_shape=(1, 3, 8, 8), table=table, measure=False)
    # conv1 and conv2 share a key; conv, relu, linear and the root's add are 4 entries.
    assert table.measured == 4 and len(table) == 4
    assert pred.measured_configs == 4 and pred.cached_configs == 1
    assert pred.seconds == pytest.approx(5 * 0.002)  # every part timed at one fake step
    assert pred.unpredicted == () and pred.error is None
    # A new table on the same file measures nothing: stored on disk, reused across runs.
    again = LatencyTable(path, warmup=0, runs=3, timer=FakeTimer(1.0), min_sample_s=0)
    pred2 = predict_latency(
        model,
        input_shape=(1, 3, 8, 8),
        table=again,
        measure=True,
        warmup=0,
        runs=3,
        timer=FakeTimer(0.01),
    )
    assert again.measured == 0 and pred2.cached_configs == 5
    assert pred2.seconds == pytest.approx(pred.seconds)
    assert pred2.measured.median_s == pytest.approx(0.01)
    assert pred2.error == pytest.approx((0.010 - 0.010) / 0.010)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM latency").fetchone()[0] == 4


def test_default_table_lives_in_cache_dir(tmp_path):
    table = LatencyTable(timer=FakeTimer(), runs=1, warmup=0, min_sample_s=0)
    assert table.path == tmp_path / "cache" / "latency_lut.sqlite"


def test_unpredicted_functional_rows():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.softmax(self.fc(x), dim=-1)

    pred = predict_latency(
        Odd(),
        input_shape=(1, 4),
        table=LatencyTable(timer=FakeTimer(), runs=1, warmup=0, min_sample_s=0),
        measure=False,
    )
    assert pred.unpredicted == ("(root)",) and "softmax" in pred.layers[-1].reason
