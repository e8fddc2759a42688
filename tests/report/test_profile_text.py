"""The per-layer widths, binary operations and precisions the profile and estimate texts print."""

from types import SimpleNamespace

import torch
from torch import nn

import edgefit
from edgefit.report.table import _precisions, profile_table
from edgefit.units import si


def _net():
    torch.manual_seed(0)
    return nn.Sequential(*(nn.Linear(i, o, bias=False) for i, o in ((8, 4), (4, 4), (4, 4), (4, 2))))


def test_summary_names_each_weight_width_and_the_binary_operations():
    widths = {"1": 8, "2": 4, "3": 1, "default": 32}
    text = profile_table(edgefit.profile(_net(), input_shape=(1, 8), bits=widths, activation_bits=widths))
    # weights 32 x 32 + 16 x 8 + 16 x 4 + 8 x 1 bits = 1224 bits = 153 B; layer 3's 8 MACs are binary
    assert "model size: 153 B (153 bytes at per-layer weight widths 32/8/4/1 bits)" in text.splitlines()
    assert "binary layers: 16 XNOR + popcount bit operations (2 per binary MAC)" in text.splitlines()


def test_summary_of_uniform_widths_names_one_width_and_no_binary_line():
    text = profile_table(edgefit.profile(_net(), input_shape=(1, 8), bits=8))
    assert "model size: 72 B (72 bytes at 8-bit weights)" in text.splitlines()
    assert "binary layers" not in text


def test_precisions_count_the_layers_at_each_width():
    rows = [SimpleNamespace(precision=p) for p in ("fp32", "int8", None, "binary", "fp32")]
    assert _precisions(SimpleNamespace(precision="int8", layers=rows)) == "int8 (most work; per layer: fp32 x2, int8 x2, binary x1)"
    assert _precisions(SimpleNamespace(precision="int8", layers=rows[1:3])) == "int8"


def test_si_prefixes_up_to_exa():
    assert (si(1.248e15, "op/s"), si(2e18, "B"), si(4.61e12, "op/s"), si(724_406_816, compact=True)) == (
        "1.25 Pop/s", "2 EB", "4.61 Top/s", "724M",
    )
