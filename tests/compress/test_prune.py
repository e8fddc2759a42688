import pytest
import torch
from torch import nn

from edgefit.compress.prune import (
    GradualConfig,
    MagnitudeConfig,
    NeuronConfig,
    pick_sparsities,
    plot_sensitivity,
    prune_,
    prune_neurons_,
    remove_dead_connections_,
    sensitivity_scan,
    sparsity,
)
from edgefit.errors import ConfigError


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 50), nn.ReLU(), nn.Linear(50, 30), nn.ReLU(), nn.Linear(30, 10))


@pytest.mark.parametrize("s", [0.0, 0.25, 0.5, 0.9, 0.99])
def test_exact_sparsity_per_layer(s):
    m = _mlp()
    masks = prune_(m, MagnitudeConfig(sparsity=s))
    for name, layer in (("1", m[1]), ("3", m[3]), ("5", m[5])):
        n = layer.weight.numel()
        assert int((layer.weight == 0).sum()) == round(s * n)
        assert torch.equal(masks[f"{name}.weight"], layer.weight != 0)


def test_pruned_are_the_smallest_and_biases_untouched():
    m = _mlp()
    w0 = m[1].weight.detach().clone()
    b0 = m[1].bias.detach().clone()
    prune_(m, MagnitudeConfig(sparsity={"1": 0.6}))
    kept = m[1].weight != 0
    assert w0.abs()[~kept].max() <= w0.abs()[kept].min()
    assert torch.equal(m[1].bias, b0)
    assert sparsity(m)["3"] == 0.0


def test_global_and_quality_threshold():
    m = _mlp()
    prune_(m, MagnitudeConfig(sparsity=0.8, scope="global"))
    total = sum(layer.weight.numel() for layer in (m[1], m[3], m[5]))
    zeros = sum(int((layer.weight == 0).sum()) for layer in (m[1], m[3], m[5]))
    assert zeros == round(0.8 * total)
    m2 = _mlp()
    w = m2[1].weight.detach().clone()
    prune_(m2, MagnitudeConfig(quality={"1": 1.0}))
    # Han 2015: threshold = quality x std of the layer's weights
    assert torch.equal(m2[1].weight != 0, w.abs() >= w.std())


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "0.5"])
def test_sparsity_validation(bad):
    with pytest.raises(ConfigError):
        MagnitudeConfig(sparsity=bad)


def test_config_errors():
    with pytest.raises(ConfigError):
        MagnitudeConfig()
    with pytest.raises(ConfigError):
        MagnitudeConfig(sparsity={"1": 0.5}, scope="global")
    with pytest.raises(ConfigError, match="Did you mean"):
        prune_(_mlp(), MagnitudeConfig(sparsity={"11": 0.5}))


def test_agp_schedule():
    cfg = GradualConfig(sparsity=0.9, steps=4)
    vals = [cfg.at(t, 0.9) for t in range(1, 5)]
    assert vals[-1] == pytest.approx(0.9)
    assert vals[0] == pytest.approx(0.9 - 0.9 * (0.75**3))
    assert all(a < b for a, b in zip(vals, vals[1:], strict=False))


def test_neuron_pruning_shrinks_and_keeps_outputs():
    m = _mlp()
    x = torch.randn(8, 1, 8, 8)
    hidden = {}
    m[1].register_forward_hook(lambda mod, i, o: hidden.__setitem__("h", o.detach()))
    m(x)
    ref_h = hidden["h"].clone()
    kept = prune_neurons_(m, NeuronConfig(amount={"1": 0.4}, criterion="l2_in"))
    assert m[1].out_features == 30 and m[3].in_features == 30
    assert isinstance(m[1], nn.Linear) and m[1].weight.shape == (30, 64)
    hidden.clear()
    m[1].register_forward_hook(lambda mod, i, o: hidden.__setitem__("h", o.detach()))
    m(x)
    assert torch.equal(hidden["h"], ref_h[:, kept["1"]])


def test_dead_neuron_removal_is_exact():
    m = _mlp()
    with torch.no_grad():
        m[3].weight[:, :20] = 0  # 20 hidden neurons of layer 1 feed nothing
    x = torch.randn(16, 1, 8, 8)
    ref = m(x)
    prune_neurons_(m, NeuronConfig(criterion="dead", layers=("1",)))
    assert m[1].out_features == 30 and m[3].weight.shape == (30, 30)
    assert torch.equal(m(x), ref)


def test_neuron_pruning_bad_layer():
    with pytest.raises(ConfigError, match="cannot neuron-prune"):
        prune_neurons_(_mlp(), NeuronConfig(amount=0.5, criterion="l2_out", layers=("5",)))


def test_dead_connection_cleanup_keeps_the_function():
    m = _mlp()
    with torch.no_grad():
        m[3].weight[:, :10] = 0  # dead: incoming rows of layer-1 neurons 0..9 can go
        m[1].weight[10:15] = 0  # constant neurons: relu(bias) folds into the next bias
    x = torch.randn(16, 1, 8, 8)
    ref = m(x)
    zeroed = remove_dead_connections_(m)
    assert zeroed >= 10 * 64
    assert torch.all(m[1].weight[:10] == 0) and torch.all(m[3].weight[:, 10:15] == 0)
    assert torch.allclose(m(x), ref, atol=1e-5)


def test_sensitivity_scan_and_plot(tmp_path):
    from edgefit.data import TrainConfig, load_digits, train

    d = load_digits()
    m = _mlp()
    train(m, d, TrainConfig(epochs=2))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    res = sensitivity_scan(m, d, sparsities=(0.0, 0.5, 0.99))
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())  # model unchanged
    assert set(res.accuracy) == {"1", "3", "5"}
    assert all(a[0] == res.baseline for a in res.accuracy.values())
    assert all(a[-1] < res.baseline for a in res.accuracy.values())
    picked = pick_sparsities(res, max_drop=0.02)
    assert all(v in (0.0, 0.5, 0.99) for v in picked.values())
    out = plot_sensitivity(res, tmp_path / "sens.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
