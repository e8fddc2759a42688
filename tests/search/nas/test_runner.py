"""The search loop: constraints, storage, resume after a kill, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import edgefit
from edgefit.errors import ConfigError, DeviceError, RegistryError
from edgefit.search import search
from edgefit.search.nas import EvolutionConfig, RandomConfig, StorageError, load_architecture

from ._toy import OPTIMUM, TOY, score

SRC = str(Path(__file__).resolve().parents[3] / "src")


def test_constraint_rejects_before_evaluation():
    seen = []

    def evaluate(arch):
        seen.append(dict(arch))
        return score(arch)

    # the toy's conv3x3 on 4 channels has 144 weights: every arch using it breaks params<=200
    result = search(TOY, RandomConfig(seed=1), trials=12, constraints=["params<=200"], evaluate=evaluate)
    rejected = [r for r in result.records if not r.feasible]
    assert rejected and all(r.metrics["params"] > 200 for r in rejected)
    assert all("conv3x3" in (r.arch["node1.op"], r.arch["node2.op"]) for r in rejected)
    assert len(seen) == len(result.feasible)  # rejected ones were never evaluated
    assert all(r.violations["params<=200"] > 0 for r in rejected)
    assert result.time_nas["infeasible"] == len(rejected)
    assert result.best.arch["node1.op"] != "conv3x3"


def test_hardware_objectives_are_exact_profile_numbers():
    result = search(TOY, RandomConfig(), objectives=["macs", "size", "latency@stm32f746", "energy@stm32f746"],
                    trials=3)
    for r in result.records:
        model = TOY.build(r.arch)
        assert r.values["size"] == 4 * sum(p.numel() for p in model.parameters())  # fp32 bytes
        assert r.values["macs"] == edgefit.profile(model, input_shape=(1, 1, 8, 8)).totals.macs
        assert r.values["macs"] > 0 and r.values["latency@stm32f746"] > 0 and r.values["energy@stm32f746"] > 0
    assert result.time_nas["evaluated"] == 3 and result.time_nas["seconds_per_sample"] > 0


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"space": "mbv3"}, RegistryError, "unknown search space 'mbv3'.*mbv2"),
        ({"algorithm": "annealing"}, RegistryError, "unknown optimizer"),
        ({"objectives": ["accuracy", "speed"]}, ConfigError, "unknown objective 'speed'"),
        ({"objectives": ["latency"]}, ConfigError, "needs a device"),
        ({"objectives": ["latency@jetsn_nano"]}, DeviceError, "jetson_nano"),
        ({"constraints": ["size<=100B"]}, ConfigError, "no architecture in space 'toy' can meet size<=100B"),
        ({"constraints": ["latency@host<2ms"]}, ConfigError, "METRIC<=VALUE"),
        ({"constraints": ["accuracy<=0.5"]}, ConfigError, "only costs"),
        ({"storage": "nosuchdb://x"}, StorageError, "cannot open storage"),
        ({"storage": "sqlite:////no/such/dir/s.db"}, StorageError, "does not exist"),
        ({"trials": 0}, ConfigError, "trials"),
    ],
)
def test_bad_input_is_one_clear_error(kwargs, error, text):
    args = {"space": TOY, "algorithm": "random", "trials": 2, "evaluate": score, **kwargs}
    with pytest.raises(error, match=text):
        search(args.pop("space"), args.pop("algorithm"), **args)


@pytest.mark.slow
def test_resume_continues_the_same_study(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    straight = search(TOY, EvolutionConfig(population=4, sample=2), trials=12, evaluate=score)
    first = search(TOY, EvolutionConfig(population=4, sample=2), trials=5, storage=url, evaluate=score)
    assert len(first.records) == 5
    again = search(TOY, EvolutionConfig(population=4, sample=2), trials=12, storage=url, evaluate=score)
    assert [r.arch for r in again.records] == [r.arch for r in straight.records]
    with pytest.raises(ConfigError, match="different algorithm"):
        search(TOY, RandomConfig(), trials=12, storage=url, evaluate=score, study_name=again.study_name)


KILLED_RUN = """
import os, signal
from edgefit.search import search
from edgefit.search.nas import EvolutionConfig
import importlib.util, sys
spec = importlib.util.spec_from_file_location("toy", {toy!r}); toy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy)
calls = []
def evaluate(arch):
    calls.append(arch)
    if len(calls) == 4:
        os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of trial 3
    return toy.score(arch)
search(toy.TOY, EvolutionConfig(population=4, sample=2), trials=8, storage={url!r}, evaluate=evaluate)
"""


@pytest.mark.slow
def test_resume_after_kill_retries_the_trial_left_running(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'k.db'}"
    code = KILLED_RUN.format(toy=str(Path(__file__).with_name("_toy.py")), url=url)
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    study = optuna.load_study(study_name="toy-evolution-accuracy", storage=url)
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "RUNNING"]
    left = study.trials[3].params

    result = search(TOY, EvolutionConfig(population=4, sample=2), trials=8, storage=url, evaluate=score)
    assert result.recovered == [3] and result.failed == 1
    assert len(result.records) == 8
    retried = [t for t in optuna.load_study(study_name="toy-evolution-accuracy", storage=url).trials
               if t.user_attrs.get("retry_of") == 3]
    assert len(retried) == 1 and retried[0].params == left and retried[0].state.name == "COMPLETE"


def test_export_writes_loadable_architectures(tmp_path):
    result = search(TOY, RandomConfig(seed=2), trials=24, evaluate=score)
    paths = result.export(tmp_path, [result.best])
    spec = json.loads(paths[0].read_text())
    assert spec["arch"] == OPTIMUM and spec["input_shape"] == [1, 1, 8, 8]
    model = load_architecture(paths[0])
    assert sum(p.numel() for p in model.parameters()) > 0
    from edgefit.zoo import resolve_model

    assert type(resolve_model(f"{paths[1]}:build").model).__name__ == "Sequential"
    assert result.plot(tmp_path / "p.png").stat().st_size > 0
    assert "| trial | accuracy | architecture |" in result.to_markdown()
