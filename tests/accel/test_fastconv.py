"""Fast convolution algorithms against direct convolution, and their exact operation counts."""

import pytest
import torch

from edgefit.accel.fastconv import (
    ConvAlgoConfig,
    compare_conv_algorithms,
    count_ops,
    fft_cost,
    gauss_complex_mul,
    run_algorithm,
    strassen,
    strassen_cost,
    toeplitz_redundancy,
    transform_cost,
    winograd_matrices,
)
from edgefit.accel.layers import ConvLayer
from edgefit.errors import ConfigError

TINY = ConvLayer("tiny", n=1, c=1, h=4, w=4, m=1, r=3, s=3)
# error bounds, relative to the largest output magnitude
BOUNDS = {torch.float32: {"winograd_f4": 1e-4, "default": 1e-5}, torch.float64: {"default": 1e-12}}
LAYERS = [
    ConvLayer("3x3 pad", n=2, c=5, h=9, w=7, m=6, r=3, s=3, pad=(1, 1, 1, 1)),
    ConvLayer("3x3 grouped", n=1, c=4, h=6, w=6, m=6, r=3, s=3, groups=2),
    ConvLayer("5x5 stride 2", n=1, c=3, h=11, w=11, m=4, r=5, s=5, stride=(2, 2), pad=(2, 2, 2, 2)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
@pytest.mark.parametrize("algo", ["im2col", "winograd_f2", "winograd_f4", "fft", "strassen"])
def test_algorithm_matches_direct(algo, layer, dtype):
    if count_ops(layer, algo) is None:
        pytest.skip("does not apply")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(layer.n, layer.c * layer.groups, layer.h, layer.w, generator=gen, dtype=torch.float64)
    w = torch.randn(layer.m, layer.c, layer.r, layer.s, generator=gen, dtype=torch.float64)
    ref = run_algorithm("direct", x, w, layer)
    out = run_algorithm(algo, x.to(dtype), w.to(dtype), layer, leaf=2).double()
    bound = BOUNDS[dtype].get(algo, BOUNDS[dtype]["default"])
    assert out.shape == ref.shape
    assert ((out - ref).abs().max() / ref.abs().max()).item() < bound


def test_strassen_matches_matmul_on_odd_sizes():
    a, b = torch.randn(7, 5, dtype=torch.float64), torch.randn(5, 9, dtype=torch.float64)
    assert torch.allclose(strassen(a, b, leaf=1), a @ b, atol=1e-12)


def test_gauss_three_multiplications():
    x = torch.randn(6, dtype=torch.complex128)
    y = torch.randn(6, dtype=torch.complex128)
    assert torch.allclose(gauss_complex_mul(x, y), x * y, atol=1e-14)
    assert torch.equal(gauss_complex_mul(torch.tensor([1 + 2j]), torch.tensor([3 + 4j])), torch.tensor([-5 + 10j]))


def test_direct_and_im2col_counts():
    assert count_ops(TINY, "direct").mults == 36 and count_ops(TINY, "direct").adds == 4 * 8
    assert count_ops(TINY, "im2col") == count_ops(TINY, "direct")


def test_toeplitz_redundancy_of_the_slides_example():
    # reference/003: a 3x3 input and a 2x2 filter give a 4x4 Toeplitz matrix (16 vs 9 values)
    assert toeplitz_redundancy(ConvLayer("t", n=1, c=1, h=3, w=3, m=1, r=2, s=2)) == 16 / 9


def test_winograd_counts_by_hand():
    # F(2x2,3x3): 16 products per tile instead of 36 (2.25x); B^T and A^T have only +-1 entries
    assert transform_cost(winograd_matrices(2)[0].tolist()) == (0, 4)   # one add per row
    f2 = count_ops(TINY, "winograd_f2")
    assert (f2.mults, f2.adds) == (16, (4 * 4 + 4 * 4) + (4 * 4 + 2 * 4))  # B^T d B, then A^T M A
    # G has 6 entries of 1/2: 6 x 3 + 6 x 4 multiplies for G g G^T, done offline
    assert (f2.offline_mults, f2.offline_adds) == (42, 28)
    # F(4x4,3x3) on one 6x6 tile: 36 products + 12 x 12 input + 6 x 10 output multiplies
    f4 = count_ops(TINY, "winograd_f4")
    assert f4.mults == 36 + 144 + 60
    assert count_ops(ConvLayer("s2", n=1, c=1, h=5, w=5, m=1, r=3, s=3, stride=(2, 2)), "winograd_f2") is None


def test_winograd_2_25x_on_the_products():
    layer = ConvLayer("big", n=1, c=64, h=18, w=18, m=64, r=3, s=3)   # 16x16 output, 64 tiles of 2x2
    f2 = count_ops(layer, "winograd_f2")
    products = 64 * 64 * 64 * 16
    assert layer.macs / products == 2.25
    assert f2.mults == products  # F(2,3)'s data and output transforms need no multiplies


def test_fft_and_strassen_counts_by_hand():
    # a 4x4 real FFT: 8 complex 4-point FFTs of 4 complex mults (Gauss: 3 + 5) and 8 adds, halved
    assert fft_cost(4, 4) == (48, 144)
    fft = count_ops(TINY, "fft")
    assert (fft.mults, fft.adds) == (2 * 48 + 3 * 12, 2 * 144 + 12 + 24)
    assert strassen_cost(2, 2, 2, leaf=1) == (7, 18)
    assert strassen_cost(4, 4, 4, leaf=1) == (49, 7 * 18 + 18 * 4)
    assert strassen_cost(3, 3, 3, leaf=64) == (27, 9 * 2)


def test_compare_lists_fewest_multiplies_per_layer():
    from edgefit.metrics import profile

    net = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 5, stride=2))
    rows, uncovered = compare_conv_algorithms(profile(net, input_shape=(1, 8, 16, 16)))
    assert uncovered == [] and [r.layer.name for r in rows] == ["0", "2"]
    assert rows[0].counts["winograd_f4"] is not None and rows[1].counts["winograd_f2"] is None
    assert rows[0].fewest_mults == min((c.mults, a) for a, c in rows[0].counts.items() if c)[1]


def test_config_rejects_unknown_algorithm():
    with pytest.raises(ConfigError, match="unknown algorithm 'winograd'"):
        ConvAlgoConfig(algorithms=("winograd",))
    with pytest.raises(ConfigError):
        winograd_matrices(3)
