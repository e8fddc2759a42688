"""Interpolating the latency table for unmeasured channel counts, against a hand-made table."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
from torch import nn

from edgefit.measure import LatencyTable, layer_key, predict_latency
from edgefit.measure.lut import HOT_METHOD
from edgefit.metrics import profile
from edgefit.search.netadapt import ResourceMeter, parse_budget
from edgefit.search.netadapt.interpolate import InterpolatingTable, one_count_apart, split_key


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEFIT_CACHE_DIR", str(tmp_path / "cache"))


def _table(tmp_path):
    clock = functools.partial(next, itertools.count(0.0, 0.001))  # a fake clock: any measurement is 1 ms
    return LatencyTable(tmp_path / "lut.sqlite", timer=clock, runs=1, warmup=0, min_sample_s=0, rotate_bytes=0)


def _conv_key(c_out: int, c_in: int = 8) -> str:
    """The key predict_latency uses for a 1x1 conv c_in -> c_out on 1x c_in x 4x4, timed hot."""
    conv = nn.Conv2d(c_in, c_out, 1, bias=False)
    row = next(r for r in profile(nn.Sequential(conv), input_shape=(1, c_in, 4, 4)).layers if r.name == "0")
    return layer_key(row, conv, input_shapes=((1, c_in, 4, 4),), threads=torch.get_num_threads(),
                     method=HOT_METHOD)


def test_linear_between_the_two_nearest_measured_counts(tmp_path):
    table = _table(tmp_path)
    for c, seconds in ((8, 1e-3), (16, 2e-3), (48, 6e-3), (64, 10e-3)):  # hand-made entries
        table.put(_conv_key(c), seconds, 1)
    interp = InterpolatingTable(table)
    assert interp.estimate(_conv_key(24)) == pytest.approx(2e-3 + (6e-3 - 2e-3) * (24 - 16) / (48 - 16))  # 3 ms
    assert interp.estimate(_conv_key(56)) == pytest.approx(8e-3)
    assert interp.estimate(_conv_key(72)) is None  # above every measured count: no extrapolation
    assert interp.estimate(_conv_key(24, c_in=16)) is None  # two counts differ from every entry
    seconds, cached = interp.lookup_or_measure(_conv_key(24), lambda: None)
    assert (seconds, cached, interp.interpolated, table.measured) == (pytest.approx(3e-3), True, 1, 0)
    assert table.get(_conv_key(24)) is None  # interpolations are not stored as measurements
    assert interp.lookup_or_measure(_conv_key(16), lambda: None) == (2e-3, True)  # measured entries win


def test_a_meter_prices_a_narrowed_layer_by_interpolation(tmp_path):
    table = _table(tmp_path)
    for c, seconds in ((8, 1e-3), (32, 4e-3)):
        table.put(_conv_key(c), seconds, 1)
    meter = ResourceMeter([parse_budget("latency=50%")], (1, 8, 4, 4), table=table, interpolate=True)
    seconds = meter(nn.Sequential(nn.Conv2d(8, 16, 1, bias=False)))["latency@host"]
    plain = predict_latency(nn.Sequential(nn.Conv2d(8, 16, 1, bias=False)), input_shape=(1, 8, 4, 4),
                            table=InterpolatingTable(table), measure=False, correction=False)
    assert seconds == pytest.approx(plain.seconds)
    conv = next(r for r in plain.layers if r.name == "0")
    assert conv.seconds == pytest.approx(2e-3)  # 1 + (4 - 1) x (16 - 8) / (32 - 8) ms
    assert meter.table.interpolated == 1 and "interpolated" in meter.how("latency@host")


def test_keys_split_into_template_and_counts():
    assert split_key("not json") is None
    template, numbers = split_key(_conv_key(24))
    assert 24 in numbers and 8 in numbers and "#" in template and "24" not in template
    assert one_count_apart((1, 2), (1, 2)) is None and one_count_apart((1,), (1, 2)) is None
