"""The latency lookup table: keying, storage and reuse, with a fake timer (no timing asserted)."""

from __future__ import annotations

import json
import platform
import sqlite3
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import edgefit
from edgefit.measure import (
    LatencyStats,
    LatencyTable,
    layer_key,
    lut,
    predict_latency,
    time_callable,
    time_passes,
)


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


def test_latency_stats_nearest_rank():
    s = LatencyStats.from_samples([5, 1, 4, 2, 3, 6, 7, 8, 9, 10])
    assert s.median_s == 5.5 and s.p90_s == 9 and s.min_s == 1 and s.runs == 10
    assert s.p10_s == 1 and LatencyStats.from_samples(range(20, 0, -1)).p10_s == 2


def test_time_passes_warms_then_fills_a_block():
    # clock steps 0.25 s: warm-up until 1.25 runs 3 calls (1/3 s each), so a 2.5 s
    # block takes ceil(7.5) = 8 timed calls of one step each
    calls, wall = [], []
    samples = time_passes(
        lambda: calls.append(1), timer=FakeTimer(0.25), warm_s=1.0, block_s=2.5, wall=wall
    )
    assert samples == [0.25] * 8 and len(calls) == 11 and len(wall) == 8
    few = time_passes(lambda: None, timer=FakeTimer(0.25), warm_s=1.0, block_s=0.1, min_runs=5)
    assert few == [0.25] * 5


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
    pred = predict_latency(
        model, input_shape=(1, 3, 8, 8), table=table, measure=False, leaf_context=False
    )
    # conv1 and conv2 share a key; conv, relu, linear and the root's add are 4 entries,
    # plus the host's calibrated container-call overhead.
    assert table.measured == 4 and len(table) == 5
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
        leaf_context=False,
    )
    assert again.measured == 0 and pred2.cached_configs == 5
    assert pred2.seconds == pytest.approx(pred.seconds)
    assert pred2.measured.median_s == pytest.approx(0.01)
    assert pred2.error == pytest.approx((0.010 - 0.010) / 0.010)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM latency").fetchone()[0] == 5


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
    root = next(r for r in pred.layers if r.name == "")
    assert pred.unpredicted == ("(root)",) and "softmax" in root.reason


def test_copies_for_rotation_footprint():
    from edgefit.measure.lut import MAX_COPIES, copies_for

    assert copies_for(1 << 20, 16 << 20) == 16
    assert copies_for(32 << 20, 16 << 20) == 1  # already larger than the caches to flush
    assert copies_for(1, 16 << 20) == MAX_COPIES
    assert copies_for(1 << 20, 0) == 1  # rotation off


def test_rotation_cycles_copies_on_rewritten_inputs():
    from edgefit.measure.lut import Rotation, time_prepared

    seen = []
    x = torch.arange(4.0)

    def make(i):
        return lambda t: seen.append((i, t.clone()))

    rot = Rotation(make, lambda: (x.clone(),), copies=3)
    stats = time_prepared(rot, warmup=0, runs=2, timer=FakeTimer(0.5))
    # 3 warm calls at build, then at least 2 visits of each copy, in turn.
    order = [i for i, _ in seen]
    assert order[:3] == [0, 1, 2] and order[3:] == [1, 2, 0, 1, 2, 0]
    assert all(torch.equal(t, x) for _, t in seen)  # rewriting in place keeps the values
    assert stats.runs == 6 and stats.median_s == 0.5


def test_big_working_set_rotates_weight_copies(tmp_path):
    """A model larger than rotate_bytes is looked up under the rotated method, with weight copies."""
    model = Net()
    table = LatencyTable(
        tmp_path / "lut.sqlite",
        warmup=0,
        runs=1,
        timer=FakeTimer(0.001),
        min_sample_s=0,
        rotate_bytes=4096,
    )
    pred = predict_latency(model, input_shape=(1, 3, 8, 8), table=table, measure=False)
    with sqlite3.connect(tmp_path / "lut.sqlite") as db:
        methods = {json.loads(k)["method"] for (k,) in db.execute("SELECT key FROM latency")}
    assert methods == {lut.METHOD, lut.CALL_METHOD}
    assert pred.unpredicted == () and table.measured == 4
    # The same model with the default 16 MiB budget fits: timed hot, under other keys.
    hot = LatencyTable(
        tmp_path / "lut.sqlite", warmup=0, runs=1, timer=FakeTimer(0.001), min_sample_s=0
    )
    pred_hot = predict_latency(
        model, input_shape=(1, 3, 8, 8), table=hot, measure=False, leaf_context=False
    )
    assert hot.measured == 4 and any("timed hot" in n for n in pred_hot.notes)


def test_cat_rows_are_predicted():
    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], 1)

    pred = predict_latency(
        Cat(),
        input_shape=(1, 3, 8, 8),
        table=LatencyTable(timer=FakeTimer(), runs=1, warmup=0, min_sample_s=0),
        measure=False,
    )
    assert pred.unpredicted == ()


def test_default_timer_follows_threads():
    import time as _time

    from edgefit.measure import cpu_timer, default_timer, steady_allocator

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert default_timer() is cpu_timer
        torch.set_num_threads(2)
        assert default_timer() is _time.perf_counter
    finally:
        torch.set_num_threads(before)
    # glibc takes the two mallopt settings; anywhere else it is a no-op returning False
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert steady_allocator() is glibc


def test_container_call_overhead_row(tmp_path):
    """One extra row: container modules times the overhead calibrated on a synthetic nest."""
    from edgefit.measure.lut import container_calls, module_call_overhead

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU())

        def forward(self, x):
            return self.body(x)

    model = nn.Sequential(Block(), Block())
    assert container_calls(model) == 5  # root, 2 blocks, 2 bodies
    table = LatencyTable(tmp_path / "l.sqlite", timer=FakeTimer(), runs=1, warmup=0, min_sample_s=0)
    # the 64-block nest takes 130 us, one ReLU alone 1 us: (130 - 64) / 65 containers
    readings = iter([130e-6, 1e-6])
    table.timed = lambda fn: SimpleNamespace(p10_s=next(readings))
    per = module_call_overhead(table)
    assert per == pytest.approx(66e-6 / 65)
    table.behind_gate = lambda measure: pytest.fail("calibrated again instead of reusing")
    assert module_call_overhead(table) == per  # stored, reused
    del table.timed, table.behind_gate
    pred = predict_latency(model, input_shape=(1, 4), table=table, measure=False)
    calls = [r for r in pred.layers if r.name == "(container calls)"]
    assert len(calls) == 1 and calls[0].seconds == pytest.approx(5 * per)
    off = predict_latency(
        model, input_shape=(1, 4), table=table, measure=False, call_overhead=False
    )
    assert all(r.name != "(container calls)" for r in off.layers)


def test_leaf_context_row_for_models_timed_hot(tmp_path, monkeypatch):
    """Leaf calls times the calibrated per-call cost; none for one leaf or a rotated model."""
    from edgefit.measure import lut

    table = LatencyTable(tmp_path / "l.sqlite", timer=FakeTimer(), runs=1, warmup=0, min_sample_s=0)
    # The calibration: (synthetic CNN end to end - its prediction) / its 11 leaf calls.
    monkeypatch.setattr(lut, "predict_latency", lambda *a, **k: SimpleNamespace(seconds=0.028))
    monkeypatch.setattr(lut, "time_callable", lambda *a, **k: LatencyStats.from_samples([0.05]))
    per = lut.leaf_context_overhead(table)
    assert per == pytest.approx((0.050 - 0.028) / 11)
    monkeypatch.undo()
    assert lut.leaf_context_overhead(table) == per  # stored, reused
    pred = predict_latency(Net(), input_shape=(1, 3, 8, 8), table=table, measure=False)
    rows = [r for r in pred.layers if r.name == "(leaf calls in a network)"]
    # conv1, conv2, relu and fc: 4 leaf calls
    assert len(rows) == 1 and rows[0].kind == "4 leaf calls"
    assert rows[0].seconds == pytest.approx(4 * per)
    one = predict_latency(nn.Linear(4, 4), input_shape=(1, 4), table=table, measure=False)
    assert all(r.name != "(leaf calls in a network)" for r in one.layers)
    rotated = LatencyTable(
        tmp_path / "l.sqlite", timer=FakeTimer(), runs=1, warmup=0, min_sample_s=0, hot_bytes=0
    )
    cold = predict_latency(Net(), input_shape=(1, 3, 8, 8), table=rotated, measure=False)
    assert all(r.name != "(leaf calls in a network)" for r in cold.layers)


def test_wait_until_quiet_polls_until_idle(monkeypatch):
    """The quiet gate returns once other processes leave the CPUs idle, False when it gives up."""
    from edgefit.measure import latency

    readings = iter([0.5, 0.4, 0.05])
    monkeypatch.setattr(latency, "machine_busy", lambda window_s=0.05: next(readings))
    assert latency.wait_until_quiet(max_wait_s=60) is True
    monkeypatch.setattr(latency, "machine_busy", lambda window_s=0.05: 0.5)
    assert latency.wait_until_quiet(max_wait_s=0) is False
    monkeypatch.setattr(latency, "machine_busy", lambda window_s=0.05: None)
    assert latency.wait_until_quiet(max_wait_s=0) is True  # no /proc/stat: never blocks


def test_table_gate_called_per_new_entry(tmp_path):
    calls = []
    table = LatencyTable(
        tmp_path / "g.sqlite",
        timer=FakeTimer(),
        runs=1,
        warmup=0,
        min_sample_s=0,
        gate=lambda: calls.append(1) or len(calls) % 2 == 0,
    )
    predict_latency(Net(), input_shape=(1, 3, 8, 8), table=table, measure=False, leaf_context=False)
    # 4 new configurations and the call-overhead calibration; every other gate "timed out".
    assert table.gated == len(calls) == 5 and table.gate_timeouts == 3


def _gate(readings, **kw):
    """A SpeedGate whose canary returns ``readings`` in turn (no sleeping, no /proc/stat)."""
    from edgefit.measure import SpeedGate

    it = iter(readings)
    return SpeedGate(canary=lambda: next(it), quiet=False, poll_s=0, **kw)


def test_speed_gate_waits_for_the_fast_episode():
    # First use: 5 readings find the best (1.0); then 1.5 and 1.3 are too slow, 1.1 passes.
    gate = _gate([2.0, 1.0, 1.6, 1.5, 1.4, 1.5, 1.3, 1.1], tolerance=1.12, max_wait_s=60)
    assert gate() is True and gate.best == 1.0 and gate.timeouts == 0
    gate = _gate([1.0] * 5 + [2.0] * 100, max_wait_s=0)
    assert gate() is False and gate.timeouts == 1  # gave up: measures anyway


def test_speed_gate_total_wait_is_bounded():
    """Once max_total_wait_s is spent the gate no longer waits: it reads once and answers."""
    # 5 readings to find the best, then exactly one per call: a second would exhaust the canary
    gate = _gate([1.0] * 5 + [2.0] * 2, max_wait_s=60, max_total_wait_s=0)
    assert gate() is False and gate() is False and gate.timeouts == 2


def test_speed_gate_steady_tracks_the_best_reading():
    gate = _gate([1.0, 1.05, 1.3, 0.8, 0.95])
    assert [gate.steady() for _ in range(5)] == [True, True, False, True, False]
    assert gate.best == 0.8 and gate.rejected == 2


def test_speed_gate_rejects_nonsense_settings():
    from edgefit.errors import ConfigError
    from edgefit.measure import SpeedGate

    with pytest.raises(ConfigError, match="tolerance"):
        SpeedGate(tolerance=0.9, canary=lambda: 1.0)


def test_time_callable_retakes_the_measurement_the_gate_rejects():
    # First gate call: 5 readings find the best, one passes; the after-check is slow (2.0),
    # so the gate is waited for again (passes) and the second after-check passes.
    gate = _gate([1.0] * 6 + [2.0] + [1.0] + [1.0], max_wait_s=60)
    calls = []
    stats = time_callable(
        lambda: calls.append(1), warmup=1, runs=3, timer=FakeTimer(0.001), gate=gate
    )
    assert stats.runs == 3 and gate.rejected == 1 and gate.calls == 2
    assert len(calls) == 2 * (1 + 3)  # warm-up and samples, twice
    no_retake = _gate([1.0] * 6 + [2.0], max_wait_s=60)
    time_callable(lambda: None, warmup=0, runs=2, timer=FakeTimer(), gate=no_retake, retakes=0)
    assert no_retake.calls == 1 and no_retake.rejected == 0  # no retakes allowed: not even asked


def test_retaken_measurements_keep_the_faster_take():
    from edgefit.measure import behind_gate, faster

    slow, fast = LatencyStats.from_samples([2.0] * 10), LatencyStats.from_samples([1.0] * 10)
    takes = iter([slow, fast, slow])
    kept, again = behind_gate(lambda: next(takes), None, lambda: False, pick=faster)
    assert kept is fast and again == 2
    # lists of samples compare on their 10th percentile (nearest rank), not their median
    assert faster([1.0, 9.0, 9.0], [2.0, 2.0, 2.0]) == [1.0, 9.0, 9.0]


def test_behind_gate_keeps_the_last_result_after_its_retakes():
    from edgefit.measure import behind_gate

    waits, results = [], iter(range(10))
    out = behind_gate(lambda: next(results), lambda: waits.append(1), lambda: False, retakes=2)
    assert out == (2, 2) and len(waits) == 3  # measured 3 times, never steady: last one kept
    assert behind_gate(lambda: "x", None, None) == ("x", 0)


def test_table_measures_again_when_the_host_slowed_down(tmp_path):
    from edgefit.measure import SpeedGate

    readings = iter([1.0] * 6 + [3.0] + [1.0] * 100)  # the first entry's after-check is slow
    gate = SpeedGate(canary=lambda: next(readings), quiet=False, poll_s=0)
    table = LatencyTable(
        tmp_path / "s.sqlite", timer=FakeTimer(), runs=1, warmup=0, min_sample_s=0, gate=gate
    )
    seconds, cached = table.lookup_or_measure("k", lambda: None)
    assert not cached and table.retaken == 1 and table.gated == 2


class _Shuffle(nn.Module):
    """A parameter-free reshape/transpose leaf, as ShuffleNet's channel shuffle."""

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


def test_reshape_only_leaf_gets_a_measured_entry(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), _Shuffle())
    pred = predict_latency(
        model,
        input_shape=(1, 3, 8, 8),
        table=LatencyTable(
            tmp_path / "lut.sqlite", warmup=0, runs=1, timer=FakeTimer(0.001), min_sample_s=0
        ),
        measure=False,
        call_overhead=False,
    )
    row = next(r for r in pred.layers if r.kind == "_Shuffle")
    assert row.seconds is not None and row.seconds > 0
    assert not pred.unpredicted


def test_disturbance_works_in_and_out_of_inference_mode():
    import torch

    from edgefit.measure import lut

    lut._SCRATCH.clear()
    with torch.inference_mode():
        lut._disturb()  # scratch created here
    buf = lut._SCRATCH[0]
    assert not buf.is_inference()  # else the next call, outside the mode, could not write it
    buf.zero_()
    lut._disturb()  # and written outside inference mode
    assert lut._SCRATCH[0] is buf and bool((buf == 1.0).all())
    buf.zero_()
    with torch.inference_mode():
        lut._disturb()
    assert bool((buf == 1.0).all())


def test_corrupt_table_is_one_config_error(tmp_path):
    from edgefit.errors import ConfigError

    path = tmp_path / "lut.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="latency table .* is not usable"):
        LatencyTable(path, timer=FakeTimer(), runs=1, warmup=0, min_sample_s=0)
