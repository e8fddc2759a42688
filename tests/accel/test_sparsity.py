"""Zeros, skippable MACs and activation codes on hand-made inputs."""

import numpy as np
import pytest
import torch
from torch import nn

from edgefit.accel.arch import SpatialArch
from edgefit.accel.sparsity import (
    SparsityConfig,
    _nonzero_macs,
    huffman_bits16,
    measure_sparsity,
    quantize16,
    rlc_bits,
    rlc_pairs,
    zero_flag_bits,
)
from edgefit.errors import RegistryError


def test_zero_flag_code():
    # the lecture's code: 16'b0 -> 1'b0, 16'bx -> {1'b1, 16'bx}
    assert zero_flag_bits(np.array([0, 0, 0, 7])) == 3 + 17


def test_rlc_pairs_split_long_runs_and_trailing_zeros():
    assert rlc_pairs(np.array([0, 0, 5, 3])) == 2
    assert rlc_pairs(np.array([0] * 31 + [9])) == 1              # a run of 31 fits 5 bits
    assert rlc_pairs(np.array([0] * 32 + [9])) == 2              # (31, 0) then (0, 9)
    assert rlc_pairs(np.array([4] + [0] * 40)) == 1 + 2          # trailing 40 zeros: (31, 0) (8, 0)
    assert rlc_bits(np.array([1, 2, 3, 4])) == 2 * 64            # 4 pairs, 3 per 64-bit word


def test_huffman_of_two_symbols_is_one_bit_each():
    assert huffman_bits16(np.array([0, 0, 0, 5, 5])) == 5


def test_quantize16_keeps_zeros_and_the_peak():
    q = quantize16(np.array([0.0, -0.5, 1.0], dtype=np.float32))
    assert q.tolist() == [0, -16384, 32767]


def test_nonzero_macs_exact():
    conv = nn.Conv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 0.0], [2.0, 3.0]]]]))
    x = torch.tensor([[[[1.0, 0.0, 2.0], [0.0, 0.0, 4.0], [5.0, 6.0, 0.0]]]])
    # 4 outputs x 4 MACs; nonzero activations in the four windows: 1, 2, 2, 2
    act, both = _nonzero_macs(conv, x)
    assert act == 7
    # weights nonzero at (0,0), (1,0), (1,1): windows keep 1, 1, 2, 1 of their nonzeros
    assert both == 5
    lin = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 2.0]]))
    assert _nonzero_macs(lin, torch.tensor([[1.0, 2.0, 0.0]])) == (4, 1)


def test_measure_sparsity_on_a_small_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    x = torch.relu(torch.randn(6, 1, 6, 6))
    rep = measure_sparsity(net, x, SparsityConfig(arch=SpatialArch(4, 4, 128, 8192), batch=2))
    conv, fc = rep.layers
    assert (conv.name, fc.name, rep.images) == ("0", "3", 6)
    assert conv.macs == 6 * 4 * 4 * 4 * 9 and fc.macs == 6 * 64 * 3
    assert conv.ifmap_zero == float((x == 0).double().mean())
    assert fc.ifmap_zero == float((torch.relu(net[0](x)) == 0).double().mean())
    assert conv.macs_nonzero_both <= conv.macs_nonzero_ifmap < conv.macs
    assert conv.bits["raw"] == x.numel() * 16
    assert conv.bits["zero flag"] == zero_flag_bits(quantize16(x.numpy()))
    assert conv.energy["gating"] == (conv.macs - conv.macs_nonzero_ifmap) * 2  # ALU 1 + weight RF read 1
    assert 0 < conv.energy["rlc_dram"] < conv.energy["total"]
    assert "total" in rep.table()
    assert conv.zeros == (int((x == 0).sum()), 0, int((torch.relu(net[0](x)) == 0).sum()))
    assert (conv.layer.n, conv.layer.m, fc.layer.kind) == (6, 4, "fc")


def test_zero_counts_go_to_the_energy_tool_file(tmp_path):
    from edgefit.accel.energy_tool import read_energy_tool

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    with torch.no_grad():
        net[0].weight[0].zero_()
    x = torch.zeros(2, 1, 5, 5)
    x[:, :, 0, 0] = 1.0
    rep = measure_sparsity(net, x, SparsityConfig(arch=SpatialArch(4, 4, 128, 8192), batch=1))
    line = rep.write_energy_tool(tmp_path / "z.txt").read_text().strip()
    # ifmap 2 x 25 values, 48 zeros; 9 of the 18 weights zero; all 2 x 2 x 3 x 3 outputs zero
    # (only the bias remains, and the default init draws it; so count from the model)
    zeros_out = int((torch.relu(net(x)) == 0).sum())
    assert line == f"1,5,5,1,2,48,16,3,3,1,2,9,16,3,3,2,2,{zeros_out},16,1,1,0,0,0,0"
    assert read_energy_tool(tmp_path / "z.txt")[0].n == 2


def test_unknown_dataflow_in_config():
    with pytest.raises(RegistryError):
        SparsityConfig(dataflow="zz")
