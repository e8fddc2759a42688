import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgefit.accel.xnor import pack_conv_weight, pack_signs, xnor_conv2d, xnor_linear, xnor_matmul
from edgefit.errors import ConfigError


def _pm1(a):
    return np.where(a >= 0, 1.0, -1.0).astype(np.float32)


@pytest.mark.parametrize("k", [1, 63, 64, 65, 200])
def test_xnor_matmul_equals_pm1_reference(k):
    rng = np.random.default_rng(k)
    x, w = rng.standard_normal((5, k)), rng.standard_normal((7, k))
    ref = F.linear(torch.from_numpy(_pm1(x)), torch.from_numpy(_pm1(w))).numpy()
    assert np.array_equal(xnor_linear(x, pack_signs(w)), ref.astype(np.int32))


@pytest.mark.parametrize("stride,padding,kernel", [(1, 0, 3), (1, 1, 3), (2, 1, 3), (1, 2, 5)])
def test_xnor_conv_equals_pm1_reference(stride, padding, kernel):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((5, 9, 9)), rng.standard_normal((4, 5, kernel, kernel))
    ref = F.conv2d(torch.from_numpy(_pm1(x))[None], torch.from_numpy(_pm1(w)), stride=stride, padding=padding)[0]
    got = xnor_conv2d(x, pack_conv_weight(w), (kernel, kernel), stride, padding)
    assert np.array_equal(got, ref.numpy().astype(np.int32))


def test_packing_is_one_bit_per_weight_and_hand_example():
    w = pack_signs(np.ones((256, 9216)))
    assert w.nbytes == 256 * 9216 // 8  # 32x less than float32
    a = pack_signs(np.array([[1.0, -1.0, 1.0]]))
    assert xnor_matmul(a, pack_signs(np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0]]))).tolist() == [[1, -3]]
    with pytest.raises(ConfigError, match="inner sizes differ"):
        xnor_matmul(a, pack_signs(np.ones((1, 4))))
