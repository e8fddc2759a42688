"""Channel dependency groups and channel pruning: exact equivalence, exact counts,
round trip, and one-line errors."""

import copy

import pytest
import torch
from torch import nn

from edgefit.compress.prune import (
    ChannelConfig,
    channel_groups,
    channel_importance,
    prune_,
    prune_groups_,
)
from edgefit.compress.prune.channel import _keep_per_module, keep_top
from edgefit.compress.prune.saved import is_pruned_file, load_pruned, save_pruned
from edgefit.errors import ConfigError, DataError, TraceError
from edgefit.metrics import profile
from edgefit.zoo import create

# (model, input size): small inputs keep the suite fast; VGG/AlexNet need their flatten size.
# Plain chains with flatten -> Linear (AlexNet, VGG-16 at 224) are covered by LeNet-5 here and by the
# benchmark's coverage table, which prunes every zoo CNN at its canonical input.
FAST = [("lenet5", 32), ("mobilenet_v1", 32)]
# residual + grouped (ResNeXt), concat (SqueezeNet's fire modules), depthwise + residual (MobileNetV2);
# the benchmark prunes the rest of the zoo (DenseNet, GoogLeNet, ResNet-50...) with the same checks.
SLOW = [("mobilenet_v2", 32), ("resnext50_32x4d", 32), ("squeezenet1_0", 64)]


def _randomize_bn(m: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.copy_(torch.rand(mod.num_features, generator=g) * 0.2 - 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.bias.data.copy_(torch.rand(mod.num_features, generator=g) * 0.2 - 0.1)


def _half(groups) -> dict:
    keep = {}
    gen = torch.Generator().manual_seed(1)
    for n, g in groups.items():
        nb = 1 if g.blocks is None else int(g.blocks.max()) + 1
        keep[n] = keep_top(torch.rand(g.width, generator=gen), nb * max(1, g.width // (2 * nb)), g.blocks)
    return keep


def zero_removed(dense: nn.Module, groups, keep) -> nn.Module:
    """``dense`` with the producers and batch norms of the channels not in ``keep`` zeroed."""
    mods = dict(dense.named_modules())
    with torch.no_grad():
        for (mn, role), idx in _keep_per_module(groups, keep).items():
            if role in ("out", "bn"):
                mods[mn].weight[idx] = 0
                if mods[mn].bias is not None:
                    mods[mn].bias[idx] = 0
    return dense


def _equivalence(name: str, res: int) -> None:
    """Pruning == zeroing the removed channels' producers and batch norms in the dense model.

    Every zoo activation maps 0 to 0, so a channel whose producers and BN are zero is
    zero everywhere it flows (residual adds, concats, depthwise convs, flatten -> Linear):
    the pruned model must compute exactly what that dense model computes.
    """
    torch.manual_seed(0)
    m = create(name, num_classes=10).eval()
    _randomize_bn(m)
    x = torch.randn(2, 1 if name == "lenet5" else 3, res, res)
    groups = channel_groups(m, x)
    assert len(groups) > 0
    keep = _half(groups)
    dense = zero_removed(copy.deepcopy(m), groups, keep)
    prune_groups_(m, keep, groups=groups)
    with torch.no_grad():
        a, b = dense(x), m(x)
    assert a.shape == b.shape
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    assert sum(p.numel() for p in m.parameters()) < sum(p.numel() for p in dense.parameters())


@pytest.mark.parametrize("name,res", FAST)
def test_pruned_equals_zeroed_dense(name, res):
    _equivalence(name, res)


@pytest.mark.slow
@pytest.mark.parametrize("name,res", SLOW)
def test_pruned_equals_zeroed_dense_big(name, res):
    _equivalence(name, res)


def test_lenet_groups_exact():
    m = create("lenet5_digits")
    g = channel_groups(m, torch.zeros(4, 1, 8, 8))  # any batch: traced at batch 1
    assert [(n, x.width) for n, x in g.items()] == [("features.0", 20), ("features.3", 50), ("classifier.0", 500)]
    assert g["features.3"].layers == ("features.3", "classifier.0")
    # flatten: channel c of features.3 is features 4c .. 4c+3 of classifier.0 (2x2 spatial)
    assert g["features.3"].index[("classifier.0", "in")][3].tolist() == [12, 13, 14, 15]
    assert g.unprunable == {"features.0.in": "model input", "classifier.2": "model output"}
    assert g.input_shapes == ((1, 1, 8, 8),)


def test_residual_groups_tie_every_branch():
    m = create("resnet50", num_classes=10)
    g = channel_groups(m, torch.zeros(1, 3, 32, 32))
    stream = g[g.group_of("layer1.0.conv3")]
    assert stream.width == 256
    assert set(stream.producers) == {"layer1.0.conv3", "layer1.0.downsample.0", "layer1.1.conv3", "layer1.2.conv3"}
    assert "layer2.0.conv1" in stream.consumers and "layer2.0.downsample.0" in stream.consumers
    assert len(g) == 37 and set(g.unprunable) == {"conv1.in", "fc"}


def test_depthwise_and_grouped_convs():
    m = create("mobilenet_v2", num_classes=10)
    g = channel_groups(m, torch.zeros(1, 3, 32, 32))
    expand = g[g.group_of("features.2.conv.0.0")]
    assert "features.2.conv.1.0" in expand.producers  # the depthwise conv is tied to its input
    m2 = create("resnext50_32x4d", num_classes=10)
    g2 = channel_groups(m2, torch.zeros(1, 3, 32, 32))
    grp = g2[g2.group_of("layer1.0.conv1")]
    assert grp.blocks is not None and int(grp.blocks.max()) + 1 == 32
    with pytest.raises(ConfigError, match="same number of kept channels"):
        prune_groups_(m2, {grp.name: [0, 1, 2]}, groups=g2)
    kept = prune_(m2, ChannelConfig(ratio={grp.name: 0.5}), groups=g2)
    assert m2.layer1[0].conv2.groups == 32 and m2.layer1[0].conv2.in_channels == kept[grp.name].numel() == 64


def test_shufflenet_named_not_skipped():
    m = create("shufflenet_v1", num_classes=10)
    g = channel_groups(m, torch.zeros(1, 3, 64, 64))
    assert len(g) == 16  # every unit's bottleneck, in rows of the shuffle (test_prune_shuffle.py)
    reasons = set(g.unprunable.values())
    assert any("grouped conv" in r for r in reasons)
    assert all(r for r in reasons)


def test_exact_counts_after_pruning():
    m = create("lenet5_digits")
    prune_(m, ChannelConfig(ratio=0.5, input_shape=(1, 1, 8, 8)))
    p = profile(m, input_shape=(1, 1, 8, 8))
    # conv1 10x1x5x5 at 8x8, conv2 25x10x5x5 at 4x4, fc 100->250, fc 250->10
    assert p.totals.macs == 10 * 25 * 64 + 25 * 10 * 25 * 16 + 100 * 250 + 250 * 10
    assert p.totals.params == (10 * 25 + 10) + (25 * 250 + 25) + (100 * 250 + 250) + (250 * 10 + 10)


def test_importance_criteria():
    m = create("lenet5_digits")
    g = channel_groups(m, torch.zeros(1, 1, 8, 8))
    w = m.features[0].weight.detach()
    torch.testing.assert_close(channel_importance(m, g, "l1")["features.0"], w.abs().sum((1, 2, 3)))
    torch.testing.assert_close(channel_importance(m, g, "l2")["features.0"], w.pow(2).sum((1, 2, 3)).sqrt())
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    t = channel_importance(m, g, "taylor", data=(x, y))
    assert t["features.3"].shape == (50,) and float(t["features.3"].sum()) > 0
    with pytest.raises(ConfigError, match="needs data"):
        channel_importance(m, g, "taylor")
    with pytest.raises(ConfigError, match="batch norm"):
        channel_importance(m, g, "bn_scale")


def test_global_scope_keeps_one_per_group():
    m = create("lenet5_digits")
    kept = prune_(m, ChannelConfig(ratio=0.9, scope="global", input_shape=(1, 1, 8, 8)))
    assert all(k.numel() >= 1 for k in kept.values())
    total = 20 + 50 + 500
    assert abs(sum(k.numel() for k in kept.values()) - 0.1 * total) <= 3


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    m = create("mobilenet_v1", num_classes=10, alpha=0.25).eval()
    prune_(m, ChannelConfig(ratio=0.5, input_shape=(1, 3, 32, 32)))
    x = torch.randn(2, 3, 32, 32)
    path = save_pruned(m, tmp_path / "p.safetensors", base="zoo:mobilenet_v1",
                       options={"num_classes": 10, "alpha": 0.25}, input_shape=(1, 3, 32, 32))
    assert is_pruned_file(path)
    loaded = load_pruned(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), m(x))
    assert profile(loaded.model, input_shape=(1, 3, 32, 32)).totals.macs == profile(m, input_shape=(1, 3, 32, 32)).totals.macs


def test_bad_input(tmp_path):
    for bad in (1.0, -0.1, True, "0.5"):
        with pytest.raises(ConfigError, match=r"\[0, 1\)"):
            ChannelConfig(ratio=bad)
    m = create("lenet5_digits")
    with pytest.raises(ConfigError, match="matches no channel group or layer"):
        prune_(m, ChannelConfig(ratio={"features.33": 0.5}, input_shape=(1, 1, 8, 8)))
    with pytest.raises(ConfigError, match="cannot be pruned: model output"):
        prune_(m, ChannelConfig(ratio={"classifier.2": 0.5}, input_shape=(1, 1, 8, 8)))
    with pytest.raises(ConfigError, match="example input"):
        prune_(m, ChannelConfig(ratio=0.5))
    g = channel_groups(m, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ConfigError, match="distinct and in 0..19"):
        prune_groups_(m, {"features.0": [0, 20]}, groups=g)

    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("no")

    with pytest.raises(TraceError):
        channel_groups(Broken(), torch.zeros(1, 3))
    other = create("lenet_300_100_digits")
    from edgefit.data.weights import save_weights

    save_weights(other, tmp_path / "w.safetensors", metadata={"format": "edgefit-pruned-1", "base": "zoo:lenet5_digits",
                                                               "widths": {}, "options": {}})
    with pytest.raises(DataError, match="does not match"):
        load_pruned(tmp_path / "w.safetensors")
    with pytest.raises(DataError, match="not a pruned"):
        save_weights(other, tmp_path / "plain.safetensors")
        load_pruned(tmp_path / "plain.safetensors")


def test_a_pruned_file_never_picks_code_to_run(tmp_path):
    from edgefit.data.weights import save_weights

    path = tmp_path / "evil.safetensors"
    save_weights(create("lenet5_digits"), path, metadata={
        "format": "edgefit-pruned-1", "base": "os:system", "widths": {}, "options": {"command": "false"}})
    with pytest.raises(DataError, match="was pruned from 'os:system', which runs code to build: pass it explicitly"):
        load_pruned(path)
    save_weights(create("lenet5_digits"), path, metadata={"format": "edgefit-pruned-1", "base": "zoo:lenet5_digits"})
    with pytest.raises(DataError, match="pruned-model header is incomplete"):
        load_pruned(path)


def test_save_model_picks_the_format(tmp_path):
    from edgefit.compress.prune.saved import base_spec, save_model
    from edgefit.data.weights import load_weights_, read_weights_metadata

    m = create("lenet5_digits")
    plain = save_model(m, tmp_path / "w.safetensors", source="lenet5_digits", extra={"test_accuracy": 0.5})
    assert not is_pruned_file(plain)
    assert read_weights_metadata(plain) == {"model": "lenet5_digits", "options": {}, "test_accuracy": 0.5}
    load_weights_(create("lenet5_digits"), plain)
    prune_(m, ChannelConfig(ratio=0.5, input_shape=(1, 1, 8, 8)))
    pruned = save_model(m, tmp_path / "p.safetensors", source="zoo:lenet5_digits", shrunk=True,
                        input_shape=(1, 1, 8, 8))
    assert is_pruned_file(pruned) and base_spec(str(pruned)) == ("zoo:lenet5_digits", {})
    # a model loaded from a pruned file stays a pruned file, with the original base
    again = save_model(load_pruned(pruned).model, tmp_path / "q.safetensors", source=str(pruned))
    assert load_pruned(again).model.features[3].out_channels == 25 and load_pruned(again).base == "zoo:lenet5_digits"
