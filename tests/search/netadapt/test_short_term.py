"""The short-term fine-tune scores a shrunk proposal with BatchNorm statistics of that proposal."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from edgefit.data import TrainConfig, evaluate, load_digits, train
from edgefit.errors import ConfigError
from edgefit.search.netadapt import (
    ConvnetAdapter,
    ResourceMeter,
    calibrate_batchnorm_,
    parse_budget,
)
from edgefit.search.netadapt.algorithm import short_term


def bn_behind_block() -> nn.Module:
    """Block "0" (conv1's channels) feeds conv2, whose BatchNorm goes stale when block "0" shrinks."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


def adapter(net, data, **kw):
    meter = ResourceMeter([parse_budget("macs=50%")], (1, 1, 8, 8))
    return ConvnetAdapter(net, torch.zeros(1, 1, 8, 8), meter, data, **kw)


def test_calibration_sets_exact_statistics_of_the_bn_input_and_nothing_else():
    net = bn_behind_block()
    x = torch.from_numpy(load_digits().x_train[:100])
    with torch.no_grad():
        feats = net[:3](x).transpose(0, 1).reshape(32, -1).double()
    weights = copy.deepcopy(net[2].weight)
    for batch in (None, 7):  # no BatchNorm upstream: batching does not change the statistics
        calibrate_batchnorm_(net, x, batch_size=batch)
        assert torch.allclose(net[3].running_mean.double(), feats.mean(1), atol=1e-5)
        assert torch.allclose(net[3].running_var.double(), feats.var(1), rtol=1e-5)
    assert torch.equal(net[2].weight, weights) and not net.training


def test_zero_epoch_fine_tune_recalibrates_unless_told_not_to():
    data = load_digits()
    net = bn_behind_block()
    x = torch.from_numpy(adapter(net, data).tune_data.x_train[:512])  # the first calibration_images
    with torch.no_grad():
        mean = net[:3](x).mean((0, 2, 3))
    stale = net[3].running_mean.clone()
    adapter(net, data, recalibrate_bn=False).fine_tune(net, 0, seed=0)
    assert torch.equal(net[3].running_mean, stale)
    adapter(net, data).fine_tune(net, 0, seed=0)
    assert torch.allclose(net[3].running_mean, mean, atol=1e-5)
    with pytest.raises(ConfigError, match="calibration_images must be >= 2"):
        adapter(net, data, calibration_images=1)


@pytest.mark.slow
def test_short_fine_tune_does_not_collapse_a_shrunk_proposal():
    """Block "0" at half its channels: with stale statistics, a quarter epoch left it at ~27% (parent ~82%)."""
    data = load_digits()
    parent = bn_behind_block()
    train(parent, data, TrainConfig(epochs=2, lr=3e-3))
    ad = adapter(parent, data)
    parent_score = ad.evaluate(parent)
    proposal = ad.simplify_model_based_on_network_def(parent, {"0": 16})
    before = ad.evaluate(proposal)
    assert before < 0.3 < 0.75 < parent_score  # shrinking alone breaks it: conv2's BatchNorm is stale
    score, state = short_term((ad, copy.deepcopy(proposal), 0.25, 0))
    assert score >= parent_score - 0.15 and score > 2 * before
    proposal.load_state_dict(state)
    assert evaluate(proposal, ad.tune_data) == score  # the state returned is the network scored

