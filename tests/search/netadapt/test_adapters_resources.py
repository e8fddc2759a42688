"""Resource meters against the profile and device model; the fidelity adapter; the executors' contract."""

from __future__ import annotations

import pytest
import torch

import edgefit
from edgefit.errors import ConfigError, DeviceError
from edgefit.hardware import estimate
from edgefit.search.executor import ExecutorConfig, SerialExecutor, make_executor
from edgefit.search.netadapt import (
    FidelityAdapter,
    NetworkAdapter,
    ResourceMeter,
    calibrate_batchnorm_,
    parse_budget,
    shrink,
)
from edgefit.zoo import create

from ._tiny import adapter_for, tiny_net


def test_meter_reads_profile_and_device_model():
    net = tiny_net().eval()
    budgets = [parse_budget(b) for b in ("macs=50%", "params=50%", "model_size=1KB", "peak_activations=1KB",
                                         "latency=1ms@stm32f746", "energy=1mJ@stm32f746")]
    meter = ResourceMeter(budgets, (1, 1, 8, 8), bits=8)
    values = meter(net)
    p = edgefit.profile(net, input_shape=(1, 1, 8, 8), bits=8)
    est = estimate(p, "stm32f746")
    # conv1 32*9*64 + conv2 32*32*9*64 + fc 32*10 MACs; 320 + 64 + 9,248 + 330 parameters
    assert values["macs"] == 18_432 + 589_824 + 320 == p.totals.macs
    assert values["params"] == 320 + 64 + 9_248 + 330
    assert values["model_size"] == 9_962  # 8 bits per parameter
    assert values["peak_activations"] == p.totals.peak_live_bytes
    assert values["latency@stm32f746"] == est.totals.seconds
    assert values["energy@stm32f746"] == est.totals.joules
    assert meter.how("latency@host").startswith("sum of the host's per-layer latency lookup table")
    assert meter.how("energy@stm32f746") == "energy estimate of the device model"


def test_meter_refuses_unknown_devices_and_host_energy():
    with pytest.raises(DeviceError):
        ResourceMeter([parse_budget("latency=1ms@no_such_board")], (1, 1, 8, 8))
    with pytest.raises(ConfigError, match="energy budgets need a named device"):
        ResourceMeter([parse_budget("energy=50%")], (1, 1, 8, 8))


def test_default_adapter_implements_the_protocol():
    from edgefit.data import load_digits

    adapter = adapter_for(tiny_net(), load_digits())
    assert isinstance(adapter, NetworkAdapter)
    assert adapter.get_num_simplifiable_blocks() == 2
    prop = adapter.simplify_network_def_based_on_constraint(tiny_net(), 1, {"macs": 400_000})
    # block "3" (conv2 outputs): 24 channels -> 18,432 + 442,368 + 240 MACs, too many; 16 -> 313,104
    assert prop.widths == {"0": 32, "3": 16} and prop.resources == {"macs": 18_432 + 294_912 + 160}
    assert adapter.simplify_network_def_based_on_constraint(tiny_net(), 0, {"macs": 10}) is None


def test_fidelity_adapter_scores_output_closeness():
    torch.manual_seed(0)
    model = create("fastdepth", alpha=0.25)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    calibrate_batchnorm_(model, x)
    bn = model.encoder[0][1]
    with torch.no_grad():
        first = model.encoder[0][0](x)
    assert torch.allclose(bn.running_mean, first.mean((0, 2, 3)), atol=1e-6)
    meter = ResourceMeter([parse_budget("macs=50%")], (1, 3, 32, 32))
    adapter = FidelityAdapter(model, torch.zeros(1, 3, 32, 32), meter, x)
    assert adapter.evaluate(model) == 1.0
    small = shrink(model, torch.zeros(1, 3, 32, 32), {"encoder.12.1.0": 64})
    assert adapter.evaluate(small) < 1.0 and adapter.test_accuracy(small) is None


def test_executor_config_and_serial_map():
    assert SerialExecutor().map(abs, [-1, 2, -3]) == [1, 2, 3]
    assert isinstance(make_executor(ExecutorConfig("process", 1)), SerialExecutor)
    with pytest.raises(ConfigError, match="unknown executor"):
        ExecutorConfig("mpi")
    with pytest.raises(ConfigError, match="only for the ray executor"):
        ExecutorConfig("process", 2, "auto")


def test_floor_is_every_block_at_its_narrowest_width():
    from edgefit.search.netadapt.algorithm import _unreachable, resource_floor

    net = tiny_net().eval()
    adapter = adapter_for(net, None, ("macs=50%", "params=50%"))
    floor = resource_floor(adapter, net)
    # both 32-channel blocks at 8 channels on 8x8: conv 1->8 and 8->8 (3x3, 64 positions), fc 8->10
    conv_macs = 8 * 9 * 64 + 8 * 8 * 9 * 64
    narrow = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                 torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
    totals = edgefit.profile(narrow, input_shape=(1, 1, 8, 8)).totals
    assert floor == {"macs": float(totals.macs), "params": float(totals.params)}
    assert totals.macs >= conv_macs + 80
    assert totals.params == (8 * 9 + 8) + 2 * 8 + (8 * 8 * 9 + 8) + (8 * 10 + 10)
    text = _unreachable(floor, {"macs": floor["macs"] - 1, "params": floor["params"]})
    assert text.startswith("unreachable by shrinking: macs <=") and "params" not in text
    assert floor["macs"] == 41552 and _unreachable(floor, {"macs": 40000.0}) == (
        "unreachable by shrinking: macs <= 4e+04 is below 4.155e+04 (every block at its narrowest width)")
    assert _unreachable(floor, {"macs": floor["macs"]}) == "" and _unreachable(None, {"macs": 1.0}) == ""


def test_reducible_budgets_are_shares_above_the_floor():
    from edgefit.search.netadapt import NetAdaptConfig
    from edgefit.search.netadapt.algorithm import _offsets, budget_targets

    start, floor = {"macs": 608576.0}, {"macs": 41552.0}
    total = NetAdaptConfig(budgets=("macs=50%",))
    reducible = NetAdaptConfig(budgets=("macs=50%",), relative_to="reducible")
    assert budget_targets(total, start, _offsets(total, floor, start, ["macs"])) == {"macs": 304288.0}
    # 41,552 + 0.5 x (608,576 - 41,552) = 325,064
    assert budget_targets(reducible, start, _offsets(reducible, floor, start, ["macs"])) == {"macs": 325064.0}
    with pytest.raises(ConfigError, match="nothing is reducible"):
        _offsets(reducible, {"macs": 608576.0}, start, ["macs"])
    with pytest.raises(ConfigError, match="relative_to"):
        NetAdaptConfig(budgets=("macs=50%",), relative_to="floor")
    assert "relative_to" not in total.fingerprint() and reducible.fingerprint()["relative_to"] == "reducible"


def _logged_lock(log: list):
    """A lock (context manager factory) that appends "lock" and "unlock" to ``log``."""
    from contextlib import contextmanager

    @contextmanager
    def lock():
        log.append("lock")
        yield
        log.append("unlock")

    return lock


def test_locked_table_locks_only_to_time():
    from contextlib import contextmanager

    from edgefit.search.netadapt.resources import LockedTable

    log = []
    lock = _logged_lock(log)

    class Table:  # stores what it measures; its gate runs the measurement
        hits = 0

        def __init__(self):
            self.rows = {"a": 1.0}

        def get(self, key):
            return self.rows.get(key)

        def lookup_or_measure(self, key, fn):
            if key in self.rows:
                return self.rows[key], True
            self.rows[key] = self.behind_gate(fn)
            return self.rows[key], False

        def behind_gate(self, measure):
            log.append("timed")
            return measure()

    locked = LockedTable(Table(), lock)
    assert locked.lookup_or_measure("a", lambda: 9.0) == (1.0, True) and log == []  # stored: no lock
    assert locked.lookup_or_measure("b", lambda: 2.0) == (2.0, False)
    assert log == ["lock", "timed", "unlock"]
    log.clear()
    assert locked.behind_gate(lambda: locked.lookup_or_measure("c", lambda: 3.0)) == (3.0, False)
    assert log == ["lock", "timed", "timed", "unlock"]  # nested: taken once
    assert locked.hits == 0 and locked.rows["c"] == 3.0  # everything else is the wrapped table's
    sticky = LockedTable(Table(), lock, sticky=lambda: True)  # a pricing phase: kept once taken
    log.clear()
    sticky.lookup_or_measure("b", lambda: 2.0)
    sticky.lookup_or_measure("c", lambda: 3.0)
    assert sticky.lookup_or_measure("a", lambda: 9.0) == (1.0, True)
    assert log == ["lock", "timed", "timed"]
    sticky.release()
    sticky.release()
    assert log == ["lock", "timed", "timed", "unlock"]

    @contextmanager
    def busy():  # a lock whose wait timed out
        raise TimeoutError("held elsewhere")
        yield

    failing = LockedTable(Table(), busy)
    with pytest.raises(TimeoutError):
        failing.lookup_or_measure("b", lambda: 2.0)
    log.clear()
    failing._lock = lock  # the next measurement takes the lock again, not a stale "held"
    failing.lookup_or_measure("c", lambda: 3.0)
    assert log == ["lock", "timed", "unlock"]


def test_locked_table_locks_a_second_take(tmp_path):
    """A stored entry due for its second take is timed, so it is looked up under the lock."""
    from edgefit.measure import LatencyTable
    from edgefit.search.netadapt.resources import LockedTable

    log = []
    lock = _logged_lock(log)

    table = LatencyTable(tmp_path / "lut.sqlite", timer=lambda: 0.0, second_take_after_s=0.0)
    table.put("a", 2.0, 10)
    table.measure = lambda fn: type("S", (), {"p10_s": 1.0, "runs": 10})()  # no real timing
    locked = LockedTable(table, lock)
    assert locked.lookup_or_measure("a", None) == (1.0, True)  # the faster take kept
    assert log == ["lock", "unlock"] and table.second_takes == 1
    assert locked.lookup_or_measure("a", None) == (1.0, True) and log == ["lock", "unlock"]  # two takes: no lock
