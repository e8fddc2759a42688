"""Budgets parse with units; the reduction schedule is the reference code's, exactly."""

from __future__ import annotations

import pytest

from edgefit.errors import ConfigError
from edgefit.search.netadapt import NetAdaptConfig, parse_budget, reduction, targets
from edgefit.search.netadapt.adapter import _smallest_cut, candidate_widths


@pytest.mark.parametrize(
    ("text", "resource", "value", "relative", "device"),
    [
        ("latency=50%", "latency", 0.5, True, None),
        ("latency=20ms@jetson_nano", "latency", 0.02, False, "jetson_nano"),
        ("energy=2mJ@jetson_orin_nano", "energy", 0.002, False, "jetson_orin_nano"),
        ("macs=0.37G", "macs", 370_000_000.0, False, None),
        ("params=1.34M", "params", 1_340_000.0, False, None),
        ("model_size=1MB", "model_size", 1_048_576.0, False, None),
        ("peak_activations=320KB", "peak_activations", 327_680.0, False, None),
        ("macs=1000", "macs", 1000.0, False, None),
    ],
)
def test_parse_budget(text, resource, value, relative, device):
    b = parse_budget(text)
    assert (b.resource, b.relative, b.device) == (resource, relative, device)
    assert b.value == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latncy=50%", "unknown resource 'latncy'.*Did you mean: latency"),
        ("macs=-5", "must be above zero"),
        ("macs=0", "must be above zero"),
        ("macs=100%", "below 100%"),
        ("macs=5furlongs", "unit 'furlongs'"),
        ("macs", "write resource=value"),
        ("macs=1M@jetson_nano", "only latency and energy"),
    ],
)
def test_bad_budgets_are_one_clear_error(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_budget(text)


def test_budget_above_the_current_value_is_refused():
    assert parse_budget("macs=50%").target(1000.0) == 500.0
    assert parse_budget("macs=400").target(1000.0) == 400.0
    with pytest.raises(ConfigError, match="not below the current value"):
        parse_budget("macs=2k").target(1000.0)


def test_schedule_is_2_5_percent_decaying_0_96():
    # delta_i = 0.025 * 0.96**i * start (reference code defaults)
    assert [reduction(1000.0, i) for i in range(4)] == pytest.approx([25.0, 24.0, 23.04, 22.1184], abs=1e-12)
    assert reduction(1000.0, 2, initial=0.1, decay=0.5) == pytest.approx(25.0)
    # the per-iteration target never goes below the budget
    assert targets(1000.0, 900.0, 500.0, 0) == 875.0
    assert targets(1000.0, 510.0, 500.0, 10) == 500.0
    # 40 iterations of the default schedule cut 1 - 0.96**40 of 62.5%: 50.3% of the start
    assert sum(reduction(1.0, i) for i in range(40)) == pytest.approx(0.625 * (1 - 0.96**40))


def test_candidates_and_smallest_cut():
    assert candidate_widths(64, 8) == [56, 48, 40, 32, 24, 16, 8]
    assert candidate_widths(20, 8) == [16, 8]
    assert candidate_widths(8, 8) == []
    for n in range(6):
        for k in range(n + 1):
            assert _smallest_cut(n, lambda i, k=k: i >= k) == (k if k < n else None)


def test_config_validation():
    with pytest.raises(ConfigError, match="at least one budget"):
        NetAdaptConfig()
    with pytest.raises(ConfigError, match="one budget per resource"):
        NetAdaptConfig(budgets=("macs=50%", "macs=10M"))
    with pytest.raises(ConfigError, match="selection"):
        NetAdaptConfig(budgets=("macs=50%",), selection="best")
    with pytest.raises(ConfigError, match="decay"):
        NetAdaptConfig(budgets=("macs=50%",), decay=0)
