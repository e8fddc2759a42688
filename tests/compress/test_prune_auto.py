"""Per-group sensitivity, automatic ratios for a target, energy-aware pruning,
feature-map selection and the least-squares refit against a reference solution."""

import numpy as np
import pytest
import torch
from torch import nn

from edgefit.compress.prune import (
    AutoChannelConfig,
    ChannelConfig,
    EnergyAwareConfig,
    channel_groups,
    group_sensitivity,
    model_cost,
    prune_,
)
from edgefit.compress.prune.fmap import greedy_removal_order, least_squares_refit_
from edgefit.errors import ConfigError
from edgefit.zoo import create

SHAPE = (1, 1, 8, 8)


def test_auto_meets_macs_target():
    m = create("lenet5_digits")
    base = model_cost(m, SHAPE)
    prune_(m, AutoChannelConfig(target=0.5, input_shape=SHAPE))
    assert model_cost(m, SHAPE) <= 0.5 * base
    assert model_cost(m, SHAPE) > 0.4 * base  # the smallest pruning that meets it, not much more


def test_auto_energy_target_and_errors():
    m = create("lenet5_digits")
    e0 = model_cost(m, SHAPE, "energy", device="eyeriss")
    prune_(m, AutoChannelConfig(target=0.6, cost="energy", device="eyeriss", input_shape=SHAPE))
    assert model_cost(m, SHAPE, "energy", device="eyeriss") <= 0.6 * e0
    with pytest.raises(ConfigError, match="needs a device"):
        AutoChannelConfig(cost="latency")
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        AutoChannelConfig(target=1.0)
    with pytest.raises(ConfigError, match="cannot reach"):
        prune_(create("lenet5_digits"), AutoChannelConfig(target=0.001, max_ratio=0.5, input_shape=SHAPE))


def test_group_sensitivity_scans_groups():
    m = create("lenet5_digits")
    g = channel_groups(m, input_shape=SHAPE)
    calls = []

    def score(model):  # deterministic stand-in for accuracy: fraction of channels kept
        calls.append(1)
        return sum(p.numel() for p in model.parameters()) / 1e6

    s = group_sensitivity(m, g, score, ratios=(0.5,))
    assert set(s.scores) == set(g) and len(calls) == 1 + len(g)
    assert all(v[0] < s.baseline for v in s.scores.values())
    assert s.drop("features.0", 0.25) == pytest.approx((s.baseline - s.scores["features.0"][0]) / 2)


def test_energy_aware_prunes_hungriest_group_first():
    m = create("lenet5_digits")
    order = []
    prune_(m, EnergyAwareConfig(target=0.7, device="eyeriss", input_shape=SHAPE, finetune_epochs=0),
           on_step=lambda name, frac: order.append((name, frac)))
    # classifier.0 holds most of the energy and is a consumer of the features.3 group
    assert order[0][0] == "features.3" and order[-1][1] <= 0.7
    assert [f for _, f in order] == sorted([f for _, f in order], reverse=True)


def test_greedy_order_by_hand():
    z = torch.tensor([[1.0, -1.0, 0.1], [2.0, -2.0, 0.0]])
    # step 0: squared norms 5, 5, 0.01 -> remove 2 (sum s = [0.1, 0]);
    # step 1: ||s + z_0||^2 = 5.21, ||s + z_1||^2 = 4.81 -> remove 1 (it cancels s); 0 is kept longest
    assert greedy_removal_order(z).tolist() == [2.0, 1.0, 0.0]


def test_least_squares_matches_reference():
    torch.manual_seed(0)
    orig = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 3, padding=1))
    pruned = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 3, padding=1))
    pruned.load_state_dict(orig.state_dict())
    from edgefit.compress.prune import prune_groups_

    g = channel_groups(pruned, input_shape=(1, 2, 6, 6))
    keep = [0, 2, 5]
    prune_groups_(pruned, {"0": keep}, groups=g)
    x = torch.randn(4, 2, 6, 6)
    err = least_squares_refit_(pruned, orig, {"2": torch.arange(4)}, x, ridge=0.0)
    # reference: numpy lstsq on the im2col of the kept input channels against the original outputs
    with torch.no_grad():
        h = orig[1](orig[0](x))[:, keep]
        y = orig(x) - orig[2].bias[None, :, None, None]
    cols = torch.nn.functional.unfold(h, 3, padding=1).transpose(1, 2).reshape(-1, 3 * 9).double().numpy()
    target = y.permute(0, 2, 3, 1).reshape(-1, 4).double().numpy()
    ref, *_ = np.linalg.lstsq(cols, target, rcond=None)
    np.testing.assert_allclose(pruned[2].weight.detach().reshape(4, -1).numpy(), ref.T, rtol=1e-3, atol=1e-4)
    assert 0 < err["2"] < 1


@pytest.mark.slow
def test_fmap_keeps_accuracy_better_than_l2():
    from edgefit.data import TrainConfig, evaluate, load_digits, train

    data = load_digits()
    torch.manual_seed(0)
    m = create("lenet5_digits")
    train(m, data, TrainConfig(epochs=3))
    x = torch.from_numpy(data.x_train[:256])
    a, b = create("lenet5_digits"), create("lenet5_digits")
    a.load_state_dict(m.state_dict())
    b.load_state_dict(m.state_dict())
    prune_(a, ChannelConfig(ratio=0.6, importance="fmap", input_shape=SHAPE), data=(x, None))
    prune_(b, ChannelConfig(ratio=0.6, importance="l2", input_shape=SHAPE))
    assert evaluate(a, data) > evaluate(b, data)
