"""Low-rank and separable factorization: exact reconstruction at full rank,
Eckart-Young error at lower rank, rank choice, save/load of factorized models."""

import pytest
import torch
from torch import nn

from edgefit.compress.factorize import FactorizeConfig, Factorized, factorize_, pick_rank
from edgefit.compress.prune.saved import load_pruned, save_pruned
from edgefit.errors import ConfigError
from edgefit.metrics import profile


def _weight_of(f: Factorized, method: str, shape) -> torch.Tensor:
    """Rebuild the dense weight a factorized pair computes, by feeding it a delta basis."""
    a, b = f[0].weight.detach(), f[1].weight.detach()
    if method == "svd":
        return b @ a
    if method == "lowrank":
        return (b.flatten(1) @ a.flatten(1)).reshape(shape)
    o, c, kh, kw = shape  # separable: W[o, c, y, x] = sum_r H[o, r, x] V[r, c, y]
    return torch.einsum("orx,rcy->ocyx", b[:, :, 0, :], a[:, :, :, 0])


@pytest.mark.parametrize("method,layer,rank", [
    ("svd", nn.Linear(40, 30), 5),
    ("lowrank", nn.Conv2d(6, 12, 3, padding=1), 4),
    ("separable", nn.Conv2d(6, 12, 3, padding=1), 4),
])
def test_eckart_young(method, layer, rank):
    torch.manual_seed(0)
    model = nn.Sequential(layer)
    w = layer.weight.detach().clone()
    res = factorize_(model, FactorizeConfig(method=method, rank=rank))
    f = model[0]
    assert isinstance(f, Factorized) and res.ranks == {"0": rank}
    from edgefit.compress.factorize import _matrix

    s = torch.linalg.svdvals(_matrix(layer, method))
    err = (_weight_of(f, method, w.shape) - w).pow(2).sum()
    torch.testing.assert_close(err, s[rank:].pow(2).sum(), rtol=1e-4, atol=1e-6)
    assert res.params_before == w.numel()
    assert res.params_after == sum(p.numel() for n, p in f.named_parameters() if n.endswith("weight"))


def test_separable_counts_and_shapes():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1))
    x = torch.randn(1, 8, 10, 10)
    y0 = model(x)
    factorize_(model, FactorizeConfig(method="separable", rank=6))
    assert model(x).shape == y0.shape
    # k x 1 then 1 x k: r k (in + out) MACs per output pixel, 5x5 output pixels
    assert profile(model, input_shape=(1, 8, 10, 10)).totals.macs == 6 * 3 * 8 * 5 * 10 + 16 * 6 * 3 * 5 * 5


def test_rank_choice():
    lin = nn.Linear(10, 10)
    s = torch.tensor([4.0, 2.0, 1.0, 1.0] + [0.0] * 6)
    # squared singular values 16, 4, 1, 1 of 22: cumulative 0.727, 0.909, 0.955, 1
    assert pick_rank(s, lin, "svd", FactorizeConfig(energy=0.7), "x") == 1
    assert pick_rank(s, lin, "svd", FactorizeConfig(energy=0.8), "x") == 2
    assert pick_rank(s, lin, "svd", FactorizeConfig(energy=0.95), "x") == 3
    assert pick_rank(s, lin, "svd", FactorizeConfig(param_ratio=0.5), "x") == 2  # 2 * 20 <= 50 < 3 * 20


def test_bad_config_and_round_trip(tmp_path):
    for kw in ({}, {"rank": 0}, {"rank": 2, "energy": 0.9}, {"energy": 1.5}, {"method": "tucker", "rank": 2}):
        with pytest.raises(ConfigError):
            FactorizeConfig(**kw)
    from edgefit.zoo import create

    m = create("lenet_300_100_digits")
    with pytest.raises(ConfigError, match="not an eligible layer"):
        factorize_(m, FactorizeConfig(rank={"classifier.9": 4}))
    factorize_(m, FactorizeConfig(rank={"classifier.0": 16}))
    x = torch.randn(3, 1, 8, 8)
    path = save_pruned(m, tmp_path / "f.safetensors", base="zoo:lenet_300_100_digits", input_shape=(1, 1, 8, 8))
    back = load_pruned(path).model
    torch.testing.assert_close(back(x), m(x))
