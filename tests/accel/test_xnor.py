import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgefit.accel import xnor
from edgefit.accel.xnor import (
    PackedSigns,
    pack_conv_weight,
    pack_signs,
    resolve_backend,
    xnor_conv2d,
    xnor_linear,
    xnor_matmul,
)
from edgefit.errors import ConfigError

HAS_NUMBA = importlib.util.find_spec("numba") is not None
BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed"))]


def _pm1(a):
    return np.where(a >= 0, 1.0, -1.0).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 63, 64, 65, 200])
def test_xnor_matmul_equals_pm1_reference(k, backend):
    rng = np.random.default_rng(k)
    x, w = rng.standard_normal((5, k)), rng.standard_normal((7, k))
    ref = F.linear(torch.from_numpy(_pm1(x)), torch.from_numpy(_pm1(w))).numpy()
    assert np.array_equal(xnor_linear(x, pack_signs(w), backend=backend), ref.astype(np.int32))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stride,padding,kernel,channels", [(1, 0, 3, 5), (1, 1, 3, 5), (2, 1, 3, 5), (1, 2, 5, 5),
                                                            (1, 1, 3, 70), (2, 0, 1, 130)])
def test_xnor_conv_equals_pm1_reference(stride, padding, kernel, channels, backend):
    rng = np.random.default_rng(channels)
    x, w = rng.standard_normal((channels, 9, 9)), rng.standard_normal((4, channels, kernel, kernel))
    x[0, 0, :3] = 0.0  # sign(0) = +1, as pack_signs
    ref = F.conv2d(torch.from_numpy(_pm1(x))[None], torch.from_numpy(_pm1(w)), stride=stride, padding=padding)[0]
    got = xnor_conv2d(x, pack_conv_weight(w), (kernel, kernel), stride, padding, backend=backend)
    assert np.array_equal(got, ref.numpy().astype(np.int32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_matmul_counts_only_valid_lanes(backend):
    # a = [+1, 0 (padding), -1]; w rows [+1, +1, +1] and [-1, -1, +1]: 1*1 + (-1)*1 = 0, 1*(-1) + (-1)*1 = -2
    a = pack_signs(np.array([[1.0, 0.0, -1.0]]), zero_is_padding=True)
    w = pack_signs(np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, 1.0]]))
    assert xnor_matmul(a, w, backend=backend).tolist() == [[0, -2]]


def test_packing_is_one_bit_per_weight_and_hand_example():
    w = pack_signs(np.ones((256, 9216)))
    assert w.nbytes == 256 * 9216 // 8  # 32x less than float32
    a = pack_signs(np.array([[1.0, -1.0, 1.0]]))
    assert xnor_matmul(a, pack_signs(np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0]]))).tolist() == [[1, -3]]
    with pytest.raises(ConfigError, match="inner sizes differ"):
        xnor_matmul(a, pack_signs(np.ones((1, 4))))


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
def test_numba_channel_packing_matches_numpy_bit_layout():
    from edgefit.accel import _xnor_jit

    bits = np.random.default_rng(1).random((130, 3, 2)) < 0.5
    got = np.zeros((3, 2, 3), np.uint64)
    _xnor_jit.pack_channels(bits, got)
    assert np.array_equal(got, pack_signs(np.where(bits.transpose(1, 2, 0), 1.0, -1.0)).words)


def test_backend_choice_and_errors(monkeypatch):
    assert resolve_backend("numpy") == "numpy"
    assert resolve_backend("auto") == ("numba" if HAS_NUMBA else "numpy")
    with pytest.raises(ConfigError, match="unknown XNOR backend 'gpu'"):
        resolve_backend("gpu")
    monkeypatch.setattr(xnor, "_jit", lambda: None)  # as without numba installed
    assert resolve_backend("auto") == "numpy"
    with pytest.raises(ConfigError, match="needs numba"):
        resolve_backend("numba")
    w = pack_conv_weight(np.ones((2, 3, 3, 3)))
    with pytest.raises(ConfigError, match="4 channels x 3x3 kernel != packed filter length 27"):
        xnor_conv2d(np.ones((4, 5, 5)), w, (3, 3))
    assert isinstance(w, PackedSigns)
