import math

import numpy as np
import pytest
import torch
from torch import nn

from edgefit.compress.prune import MagnitudeConfig, prune_
from edgefit.compress.quantize import (
    KMeansConfig,
    LinearQuantConfig,
    finetune_centroids_,
    kmeans_1d,
    linear_quantize,
    quantize_,
    sqnr_db,
)
from edgefit.errors import ConfigError


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 10))


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_kmeans_distinct_values_and_zeros_preserved(bits, init):
    m = _mlp()
    prune_(m, MagnitudeConfig(sparsity=0.7))
    zeros_before = m[1].weight == 0
    states = quantize_(m, KMeansConfig(bits=bits, init=init))
    w = m[1].weight.detach()
    assert torch.equal(w == 0, zeros_before)  # pruned stay zero, kept stay nonzero
    assert len(torch.unique(w[w != 0])) <= 2**bits
    st = states["1"]
    assert torch.all(st.labels[zeros_before] == -1) and torch.all(st.labels[~zeros_before] >= 0)
    assert torch.equal(st.weight(), w)


def test_kmeans_linear_init_matches_reference():
    # Linear init spaces centroids over [min, max]; on evenly spread data Lloyd keeps them there.
    x = np.linspace(-1, 1, 1001)
    c, lab = kmeans_1d(x, 4, "linear")
    assert c == pytest.approx(np.array([-0.75, -0.25, 0.25, 0.75]), abs=3e-3)
    assert abs(np.bincount(lab) - 250).max() <= 2
    # The paper's linear initialization: k points evenly spaced over [min, max].
    from edgefit.compress.quantize.kmeans import _init_centroids

    z = np.array([-0.5, 0.1, 0.2, 1.0])
    assert _init_centroids(z, 4, "linear", 0).tolist() == pytest.approx([-0.5, 0.0, 0.5, 1.0])
    assert _init_centroids(z, 2, "density", 0).tolist() == pytest.approx([-0.5, 1.0])
    # Reference: scikit-learn KMeans from the same initial centroids converges to the same codebook.
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    y = rng.normal(size=2000)
    c2, _ = kmeans_1d(y, 8, "linear", max_iter=300)
    init = np.linspace(y.min(), y.max(), 8)[:, None]
    ref = KMeans(8, init=init, n_init=1, max_iter=300, tol=0).fit(y[:, None]).cluster_centers_.ravel()
    assert np.sort(ref) == pytest.approx(c2, abs=1e-4)


def test_kmeans_few_values_are_kept_exactly():
    c, lab = kmeans_1d(np.array([0.5, -0.25, 0.5]), 4)
    assert c.tolist() == [-0.25, 0.5] and lab.tolist() == [1, 0, 1]


def test_kmeans_bits_validation():
    for bad in (0, 17, 2.5, True):
        with pytest.raises(ConfigError):
            KMeansConfig(bits=bad)
    with pytest.raises(ConfigError):
        KMeansConfig(init="kmeans++")
    with pytest.raises(ConfigError, match="nope"):
        quantize_(_mlp(), KMeansConfig(bits={"nope": 3}))


def test_centroid_finetuning_moves_centroids_by_summed_gradients():
    from edgefit.data import TrainConfig, load_digits

    d = load_digits()
    m = _mlp()
    prune_(m, MagnitudeConfig(sparsity=0.5))
    before = {k: s.codebook.clone() for k, s in quantize_(m, KMeansConfig(bits=3)).items()}
    zeros = m[1].weight == 0
    # One plain SGD step (no momentum effect on the first step) on one batch = -lr * sum of member grads.
    states = finetune_centroids_(m, d, TrainConfig(epochs=1, lr=1e-3))
    w = m[1].weight.detach()
    assert torch.equal(w == 0, zeros)
    assert len(torch.unique(w[w != 0])) <= 8
    assert not torch.equal(states["1"].codebook, before["1"])
    assert torch.equal(states["1"].weight(), w)


def test_centroid_gradient_rule_on_one_step():
    # dL/dc_k = sum of dL/dW over the weights labelled k: check against autograd on W.
    from edgefit.compress.quantize.kmeans import kmeans_quantize_

    torch.manual_seed(0)
    lin = nn.Linear(6, 3, bias=False)
    st = kmeans_quantize_(nn.Sequential(lin), KMeansConfig(bits=2))["0"]
    x = torch.randn(5, 6)
    cb = st.codebook.clone().requires_grad_(True)
    w = cb[st.labels]
    (x @ w.T).pow(2).sum().backward()
    wq = st.weight().clone().requires_grad_(True)
    (x @ wq.T).pow(2).sum().backward()
    expected = torch.zeros(len(cb)).index_add_(0, st.labels.flatten(), wq.grad.flatten())
    assert torch.allclose(cb.grad, expected, atol=1e-5)


def test_linear_quantization_exact_small_cases():
    qt = linear_quantize(torch.tensor([-1.0, 0.0, 1.0, 2.0]), bits=2)
    assert qt.q.tolist() == [0, 1, 2, 3] and float(qt.scale) == 1.0 and int(qt.zero_point) == 1
    assert qt.dequantize().tolist() == [-1.0, 0.0, 1.0, 2.0]
    qs = linear_quantize(torch.tensor([-2.0, -1.0, 0.5, 2.0]), bits=3, symmetric=True)
    # qmax = 3, scale = 2/3: -2 -> -3, -1 -> -1.5 -> -2 (round half to even), 0.5 -> 0.75 -> 1, 2 -> 3
    assert qs.q.tolist() == [-3, -2, 1, 3] and int(qs.zero_point) == 0
    # reference/004's 8-bit recipe: 256 equal divisions between min and max.
    w = torch.linspace(-0.3, 0.5, 1000)
    q8 = linear_quantize(w, bits=8)
    assert int(q8.q.min()) == 0 and int(q8.q.max()) == 255
    assert float(q8.scale) == pytest.approx(0.8 / 255)
    assert float((q8.dequantize() - w).abs().max()) <= 0.8 / 255 / 2 + 1e-7


@pytest.mark.parametrize("bits", [4, 6, 8])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
def test_linear_quantization_sqnr_floor(bits, symmetric, per_channel):
    torch.manual_seed(bits)
    w = torch.randn(64, 128) * torch.linspace(0.1, 2.0, 64)[:, None]
    s = sqnr_db(w, linear_quantize(w, bits, symmetric=symmetric, per_channel=per_channel).dequantize())
    # ~6 dB per bit; Gaussian weights lose ~10-14 dB to their range (per tensor more).
    floor = 6.02 * bits - (10 if per_channel else 16)
    assert s >= floor
    if per_channel:
        s_tensor = sqnr_db(w, linear_quantize(w, bits, symmetric=symmetric).dequantize())
        assert s > s_tensor


def test_linear_quantize_keeps_pruned_zeros_and_validates():
    m = _mlp()
    prune_(m, MagnitudeConfig(sparsity=0.5))
    zeros = m[1].weight == 0
    quantize_(m, LinearQuantConfig(bits=8, per_channel=True))
    assert torch.all(m[1].weight[zeros] == 0)
    for bad in (1, 17):
        with pytest.raises(ConfigError):
            LinearQuantConfig(bits=bad)
    assert math.isinf(sqnr_db(torch.ones(3), torch.ones(3)))
