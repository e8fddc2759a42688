"""Final networks of NetAdapt and of the architecture search: table prediction, interval and measured latency.

The table runs on a fake clock (every reading 1 ms after the last) with a stored
host correction, so nothing is calibrated; the end-to-end measurement is real, and
only its consistency with the interval is asserted, never a time.
"""

from __future__ import annotations

import functools
import itertools
import json

import pytest
import torch
from torch import nn

from edgefit.measure import LatencyTable
from edgefit.measure.correction import HostCorrection, correction_key
from edgefit.search.executor import ExecutorConfig
from edgefit.search.host_check import check_markdown, host_latency_check


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def table(tmp_path):
    clock = functools.partial(next, itertools.count(0.0, 0.001))
    t = LatencyTable(tmp_path / "lut.sqlite", timer=clock, runs=1, warmup=0, min_sample_s=0, hot_bytes=1 << 40)
    corr = HostCorrection("hot", 1.5, (-0.2, 0.0, 0.1, 0.3), canary_s=None)
    t.put_text(correction_key("hot", torch.get_num_threads()), corr.to_json())
    return t


def assert_consistent(check: dict, budget_s: float | None = None) -> None:
    assert check["measured_s"] > 0
    assert check["low_s"] <= check["predicted_s"] <= check["high_s"]
    assert check["measured_in_interval"] == (check["low_s"] <= check["measured_s"] <= check["high_s"])
    assert check["measured_s"] <= check["measured_median_s"]  # the uncontended latency: a low quantile
    assert check["predicted_s"] == pytest.approx(1.5 * check["table_s"])  # the stored correction's factor
    assert check["regime"] == "hot" and check["confidence"] == 0.9
    if budget_s is not None:
        assert check["budget_s"] == pytest.approx(budget_s)
        assert check["measured_within_budget"] == (check["measured_s"] <= budget_s)


def test_check_has_consistent_fields(table):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    check = host_latency_check(model, (1, 1, 8, 8), table=table, budget_s=1.0, runs=3)
    assert_consistent(check, 1.0)
    assert check["budget_met"] is True  # the upper bound of a few fake milliseconds is far below 1 s
    assert "budget_table_s" not in check  # an absolute budget is judged as given
    scaled = host_latency_check(model, (1, 1, 8, 8), table=table, budget_s=1.0, budget_on_table=True, runs=3)
    assert scaled["budget_table_s"] == 1.0 and scaled["budget_s"] == pytest.approx(1.5)
    assert not host_latency_check(model, (1, 1, 8, 8), table=table, budget_s=1e-9, runs=3)["budget_met"]
    assert "inside" in check_markdown(check) or "outside" in check_markdown(check)


def test_check_markdown_states_the_budget_both_ways():
    check = {"predicted_s": 0.002, "low_s": 0.0018, "high_s": 0.0023, "confidence": 0.9, "measured_s": 0.0024,
             "measured_in_interval": False, "budget_s": 0.0022, "budget_met": False, "measured_within_budget": False}
    assert check_markdown(check) == (
        "host latency: predicted 2.000 ms [1.800-2.300] (90% interval), measured 2.400 ms: outside the interval;"
        " budget 2.200 ms: not met by the prediction at 90%, not met by the measurement")
    check.update(budget_s=0.0025, budget_met=True, measured_within_budget=True)
    assert check_markdown(check).endswith("budget 2.500 ms: met by the prediction at 90%, met by the measurement")


@pytest.mark.slow
def test_netadapt_records_the_final_networks_measured_latency(table, tmp_path, monkeypatch):
    from contextlib import contextmanager

    import edgefit.search.host_check as host_check
    from edgefit.search.netadapt import (
        ConvnetAdapter,
        NetAdaptConfig,
        ResourceMeter,
        netadapt,
        write_family,
    )

    from .netadapt._tiny import tiny_net

    lock = {"held": False, "entered": 0}

    @contextmanager
    def timing_lock():  # e.g. /tmp/edgefit-bench.lock: held while the host is timed, never nested
        assert not lock["held"]
        lock["held"], lock["entered"] = True, lock["entered"] + 1
        yield
        lock["held"] = False

    check = host_check.host_latency_check

    def checked(*args, **kw):
        assert lock["held"]  # the end-to-end measurement runs inside the lock
        return check(*args, **kw)

    monkeypatch.setattr(host_check, "host_latency_check", checked)
    net = tiny_net()
    cfg = NetAdaptConfig(budgets=("latency=50%",), long_term_epochs=0, executor=ExecutorConfig("serial"))
    meter = ResourceMeter(cfg.budgets, (1, 1, 8, 8), table=table, timing_lock=timing_lock)
    adapter = ConvnetAdapter(net, torch.zeros(1, 1, 8, 8), meter)
    adapter.evaluate = lambda model: 0.5  # no data needed: on the fake clock no proposal is cheaper
    result = netadapt(net, adapter, cfg, tmp_path / "fam")
    assert not result.met and result.iterations_run == 0
    # every layer costs the same on the fake clock: the narrowest network is no cheaper, and the run says so
    assert result.floor["latency@host"] == pytest.approx(result.start["latency@host"])
    assert "unreachable by shrinking: latency@host" in result.message
    # the 50% budget is a share of the table's sum: judged after the same x1.5 correction as the prediction
    assert result.measured["budget_table_s"] == result.targets["latency@host"]
    assert_consistent(result.measured, 1.5 * result.targets["latency@host"])
    assert result.measured["table_s"] == pytest.approx(result.final.resources["latency@host"])  # uncorrected
    assert lock["entered"] >= 3 and not lock["held"]  # start, floor and proposals priced inside it, then the check
    write_family(tmp_path / "fam", plot=False)
    final = json.loads((tmp_path / "fam" / "family.json").read_text())[-1]
    assert final["iteration"] == -1 and final["host_latency"] == result.measured
    assert "Final network, host latency: predicted" in (tmp_path / "fam" / "family.md").read_text()
    again = netadapt(net, adapter, cfg, tmp_path / "fam")  # the finished run, from its journal
    assert again.measured == result.measured


@pytest.mark.slow
def test_search_records_the_fronts_measured_latency(table, tmp_path):
    from edgefit.search import search
    from edgefit.search.nas import RandomConfig, load_architecture

    from .nas._toy import TOY, score

    result = search(TOY, RandomConfig(seed=0), objectives=["accuracy", "latency@host"],
                    constraints=["latency@host<=10s"], trials=3, evaluate=score, latency_table=table)
    assert set(result.host_latency) == {r.number for r in result.front}
    for r in result.front:
        check = result.host_latency[r.number]
        assert_consistent(check, 10.0)
        assert check["predicted_s"] == pytest.approx(r.values["latency@host"])  # what the search ranked by
    paths = result.export(tmp_path / "out")
    spec = json.loads(next(p for p in paths if p.suffix == ".json" and p.name.startswith("arch_")).read_text())
    assert spec["host_latency"] == result.host_latency[spec["trial"]]
    assert load_architecture(tmp_path / "out" / f"arch_{spec['trial']}.json") is not None
    assert result.to_dict()["host_latency"] == {str(k): v for k, v in result.host_latency.items()}
    assert len(result.host_latency_lines()) == len(result.front)


def test_search_without_host_latency_measures_nothing():
    from edgefit.search import search
    from edgefit.search.nas import RandomConfig
    from edgefit.search.nas.runner import needs_data

    from .nas._toy import TOY, score

    result = search(TOY, RandomConfig(seed=0), objectives=["accuracy", "macs"], trials=2, evaluate=score)
    assert result.host_latency == {} and result.host_latency_lines() == []
    assert needs_data(["accuracy"]) and not needs_data(["macs", "latency@host"])


def test_check_markdown_shows_the_median_under_load_beside_the_uncontended_latency():
    check = {"predicted_s": 0.002, "low_s": 0.0018, "high_s": 0.0023, "confidence": 0.9, "measured_s": 0.0021,
             "measured_median_s": 0.0026, "measured_in_interval": True}
    assert check_markdown(check) == (
        "host latency: predicted 2.000 ms [1.800-2.300] (90% interval), measured 2.100 ms: inside the interval"
        " (median under load 2.600 ms)")
