"""Channel blocks from the dependency graph; shrinking gives really smaller layers and keeps the important channels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import edgefit
from edgefit.errors import ConfigError
from edgefit.search.netadapt import channel_importance, find_blocks, shrink
from edgefit.zoo import create


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 10),
    ).eval()


def test_blocks_of_a_conv_chain_and_of_fastdepth():
    assert find_blocks(small_net(), torch.zeros(1, 1, 8, 8)) == {"0": 16, "3": 24}
    blocks = find_blocks(create("fastdepth", alpha=0.25).eval(), torch.zeros(1, 3, 64, 64))
    # 14 encoder pointwise/first convs, minus 3 coupled to decoder outputs by the additive skips,
    # plus decoder stages 1 and 5; the head (the output) is never a block; depthwise convs
    # share their producer's block.
    assert len(blocks) == 16
    assert "head.0" not in blocks and "decoder.3.1.0" not in blocks  # coupled to encoder.1.1.0 by a skip
    assert blocks["encoder.1.1.0"] == 16


def test_shrink_keeps_the_largest_l1_channels_and_really_shrinks():
    net = small_net()
    x = torch.randn(2, 1, 8, 8)
    small = shrink(net, torch.zeros(1, 1, 8, 8), {"0": 8})
    assert small[0].weight.shape == (8, 1, 3, 3) and small[3].weight.shape == (24, 8, 3, 3)
    assert small[1].num_features == 8
    scores = channel_importance(net, torch.zeros(1, 1, 8, 8), "0")
    kept = torch.sort(torch.argsort(scores, descending=True)[:8]).values
    assert torch.equal(small[0].weight, net[0].weight[kept])
    assert torch.equal(small[3].weight, net[3].weight[:, kept])
    # L1 norm of the filters producing each channel (the group's one producer here)
    assert torch.allclose(scores, net[0].weight.detach().abs().sum((1, 2, 3)), rtol=1e-6)
    p0, p1 = (edgefit.profile(m, input_shape=(1, 1, 8, 8)).totals.macs for m in (net, small))
    assert (p0, p1) == (16 * 9 * 64 + 24 * 16 * 9 * 64 + 240, 8 * 9 * 64 + 24 * 8 * 9 * 64 + 240)
    with torch.no_grad():
        assert torch.equal(shrink(net, torch.zeros(1, 1, 8, 8), {"0": 16})(x), net(x))


def test_shrink_and_blocks_errors():
    with pytest.raises(ConfigError, match="no prunable block"):
        find_blocks(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ConfigError, match="outside 1..16"):
        shrink(small_net(), torch.zeros(1, 1, 8, 8), {"0": 17})
    with pytest.raises(ConfigError, match="no block 'nope'"):
        shrink(small_net(), torch.zeros(1, 1, 8, 8), {"nope": 4})
