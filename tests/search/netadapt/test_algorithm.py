"""NetAdapt end to end on a tiny digits convnet: budgets met, resources monotone, family kept, resume after kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import edgefit
from edgefit.errors import ConfigError
from edgefit.hardware import estimate
from edgefit.search.executor import ExecutorConfig, RayExecutor, SerialExecutor
from edgefit.search.netadapt import (
    FINAL,
    Journal,
    NetAdaptConfig,
    load_member,
    netadapt,
    write_family,
)

from ._tiny import adapter_for, trained

pytestmark = pytest.mark.slow
SERIAL = ExecutorConfig("serial")


@pytest.fixture(scope="module")
def base():
    return trained(1)


def test_meets_every_budget_with_monotone_resources(base, tmp_path):
    net, data = base
    budgets = ("macs=40%", "params=70%", "energy=60%@jetson_orin_nano")
    adapter = adapter_for(net, data, budgets)
    cfg = NetAdaptConfig(budgets=budgets, initial_reduction=0.2, short_term_epochs=0.1, long_term_epochs=1,
                         executor=SERIAL)
    res = netadapt(net, adapter, cfg, tmp_path)
    assert res.met and res.message.startswith("budgets met after")
    steps = [m for m in res.members if m.iteration != FINAL]
    assert [m.iteration for m in steps] == list(range(len(steps)))
    for label in ("macs", "params", "energy@jetson_orin_nano"):
        values = [m.resources[label] for m in steps]
        assert all(b < a for a, b in zip(values, values[1:], strict=False)), label  # strictly falls every iteration
        assert res.final.resources[label] <= res.targets[label]
    # every iteration met its own schedule target on every resource
    for prev, cur in zip(steps, steps[1:], strict=False):
        i = prev.iteration
        for label in res.targets:
            cut = 0.2 * 0.96**i * res.start[label]
            assert cur.resources[label] <= max(prev.resources[label] - cut, res.targets[label]) + 1e-12
    # the recorded resources are the model's, recounted independently
    final = res.model
    p = edgefit.profile(final, input_shape=(1, 1, 8, 8))
    assert res.final.resources["macs"] == p.totals.macs
    assert res.final.resources["energy@jetson_orin_nano"] == estimate(p, "jetson_orin_nano").totals.joules
    # the family is kept, loadable, and smaller for real
    reloaded = load_member(tmp_path, net, adapter, FINAL)
    x = torch.from_numpy(data.x_test[:8])
    with torch.no_grad():
        assert torch.equal(reloaded(x), final(x))
    assert sum(t.numel() for t in final.parameters()) == res.final.resources["params"] < res.start["params"]
    paths = write_family(tmp_path, plot=False)
    assert "final (long fine-tune, 1 epoch)" in paths[0].read_text()  # as configured
    assert len(Journal(tmp_path).members()) == len(res.members)


def test_same_call_returns_the_finished_run_and_other_settings_are_refused(base, tmp_path):
    net, data = base
    adapter = adapter_for(net, data)
    cfg = NetAdaptConfig(budgets=("macs=50%",), initial_reduction=0.3, short_term_epochs=0, long_term_epochs=0,
                         executor=SERIAL)
    first = netadapt(net, adapter, cfg, tmp_path)
    again = netadapt(net, adapter, cfg, tmp_path)
    assert again.resumed_from == first.members[-2].iteration and again.proposals == 0
    assert [m.widths for m in again.members] == [m.widths for m in first.members]
    with pytest.raises(ConfigError, match="other settings"):
        netadapt(net, adapter, NetAdaptConfig(budgets=("macs=30%",), executor=SERIAL), tmp_path)


def test_unreachable_budget_stops_with_the_best_network_and_a_message(base, tmp_path):
    net, data = base
    adapter = adapter_for(net, data, ("macs=1%",))
    cfg = NetAdaptConfig(budgets=("macs=1%",), initial_reduction=0.5, decay=1.0, short_term_epochs=0,
                         long_term_epochs=0, executor=SERIAL)
    res = netadapt(net, adapter, cfg, tmp_path)
    assert not res.met and res.message.startswith("budget cannot be met")
    # iteration 1 cut half the MACs (one block to 8 channels); no single block can cut another half
    assert sorted(res.members[1].widths.values()) == [8, 32] and len(res.members) == 3
    assert res.final.widths == res.members[1].widths and res.final.resources["macs"] > res.targets["macs"]


def test_ratio_selection_runs(base, tmp_path):
    net, data = base
    adapter = adapter_for(net, data)
    cfg = NetAdaptConfig(budgets=("macs=70%",), selection="ratio", initial_reduction=0.3, short_term_epochs=0,
                         long_term_epochs=0, executor=SERIAL)
    assert netadapt(net, adapter, cfg, tmp_path).met


CHILD = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from netadapt._tiny import adapter_for, trained
from edgefit.search.executor import SerialExecutor
from edgefit.search.netadapt import NetAdaptConfig, netadapt

class KillOnSecondIteration(SerialExecutor):
    calls = 0
    def map(self, fn, items):
        KillOnSecondIteration.calls += 1
        if KillOnSecondIteration.calls == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 while iteration 2's proposals run
        return super().map(fn, items)

net, data = trained(0)
cfg = NetAdaptConfig(budgets=("macs=50%",), initial_reduction=0.2, short_term_epochs=0.1, long_term_epochs=0)
netadapt(net, adapter_for(net, data), cfg, {out!r}, executor=KillOnSecondIteration())
"""


def test_kill_9_mid_run_then_the_same_call_resumes(tmp_path):
    tests = str(Path(__file__).parents[1])
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", CHILD.format(tests=tests, out=str(killed))], env=env)
    assert proc.returncode == -signal.SIGKILL
    assert [m.iteration for m in Journal(killed).members()] == [0, 1]  # iteration 2 was lost, nothing else
    net, data = trained(0)
    cfg = NetAdaptConfig(budgets=("macs=50%",), initial_reduction=0.2, short_term_epochs=0.1, long_term_epochs=0,
                         executor=SERIAL)
    resumed = netadapt(net, adapter_for(net, data), cfg, killed)
    assert resumed.resumed_from == 1 and resumed.iterations_run == len(resumed.members) - 3
    straight = netadapt(net, adapter_for(net, data), cfg, clean)
    assert [(m.widths, m.resources, m.score) for m in resumed.members] == [
        (m.widths, m.resources, m.score) for m in straight.members
    ]


def test_ray_with_two_local_workers(base, tmp_path):
    ray = pytest.importorskip("ray")
    net, data = base
    adapter = adapter_for(net, data)
    cfg = NetAdaptConfig(budgets=("macs=90%",), short_term_epochs=0.1, long_term_epochs=0, max_iterations=1)
    ex = RayExecutor(2)
    try:
        res = netadapt(net, adapter, cfg, tmp_path / "ray", executor=ex)
        assert ray.cluster_resources()["CPU"] == 2
    finally:
        ex.close()
    serial = netadapt(net, adapter, cfg, tmp_path / "serial", executor=SerialExecutor())
    assert res.members[1].proposals == 2  # both blocks' proposals fine-tuned on the two workers
    assert [(m.widths, m.score) for m in res.members] == [(m.widths, m.score) for m in serial.members]
