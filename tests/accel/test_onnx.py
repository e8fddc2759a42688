"""ONNX export of dense, pruned, k-means and int8 models, checked on ONNX Runtime."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgefit.accel.onnx import OrtModel, export_int8, export_onnx
from edgefit.compress.prune import MagnitudeConfig, prune_
from edgefit.compress.quantize import KMeansConfig, LinearQuantConfig, quantize_
from edgefit.data import evaluate
from edgefit.errors import ConfigError


@pytest.fixture(scope="module")
def trained(digits_convnet):
    return digits_convnet(4)


@pytest.mark.parametrize("variant", ["dense", "pruned", "kmeans"])
def test_float_export_matches_pytorch(tmp_path, trained, variant):
    net, data = trained
    net = copy.deepcopy(net)
    if variant == "pruned":
        prune_(net, MagnitudeConfig(sparsity=0.8))
    if variant == "kmeans":
        quantize_(net, KMeansConfig(bits=3))
    path = export_onnx(net, tmp_path / "m.onnx", (1, 1, 8, 8))
    x = data.x_test[:64]
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.allclose(OrtModel(path)(x), ref, atol=1e-4)


@pytest.mark.slow
def test_int8_on_onnxruntime_matches_the_simulated_model(tmp_path, trained):
    net, data = trained
    sim = copy.deepcopy(net)
    cal = data.x_train[:512]
    quantize_(sim, LinearQuantConfig(bits=8, act_bits=8, symmetric=True, per_channel=True), calibration=cal)
    path = export_int8(sim, tmp_path / "q.onnx", (1, 1, 8, 8), cal)
    ort = OrtModel(path)
    assert abs(ort.accuracy(data) - evaluate(sim, data)) <= 0.002 + 1e-9  # within 0.2 pp
    with torch.no_grad():
        ref = sim(torch.from_numpy(data.x_test)).numpy()
    diff = ort(data.x_test) - ref  # ONNX Runtime also rounds every intermediate output to uint8
    assert np.sqrt((diff**2).mean()) < 0.05 * np.sqrt((ref**2).mean())
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_bad_exports_are_one_line(tmp_path):
    class Svd(nn.Module):
        def forward(self, x):
            return torch.linalg.svd(x)[1]

    with pytest.raises(ConfigError, match="aten::linalg_svd.*not supported") as e:
        export_onnx(Svd(), tmp_path / "s.onnx", (2, 3))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="calibration"):
        export_int8(nn.Linear(2, 2), tmp_path / "l.onnx", (1, 2), np.zeros((0, 2)))


def test_every_public_name_of_the_package_resolves():
    import edgefit.accel as accel

    for name in accel.__all__:
        assert getattr(accel, name) is not None


def test_export_checked_reports_the_difference_it_measured(tmp_path):
    from torch import nn

    from edgefit.accel.onnx import export_checked

    net = nn.Sequential(nn.Linear(4, 3)).eval()
    check = export_checked(net, tmp_path / "m.onnx", (1, 4))
    assert check.inputs == 2 and not check.calibration
    assert check.file_bytes == (tmp_path / "m.onnx").stat().st_size
    assert check.max_abs_diff < 1e-5 and check.relative_diff < 1e-5
    with pytest.raises(ConfigError, match=r"calibration samples are \(5,\), the model takes \(4,\)"):
        export_checked(net, tmp_path / "q.onnx", (1, 4), calibration=np.zeros((8, 5), np.float32))


@pytest.mark.slow
def test_int8_can_keep_the_first_layer_float(tmp_path, trained):
    import onnx

    net, data = trained
    cal = data.x_train[:256]
    path = export_int8(net, tmp_path / "q.onnx", (1, 1, 8, 8), cal, keep_first_float=True)
    graph = onnx.load(str(path)).graph
    weights = {i.name for i in graph.initializer}
    first = next(n for n in graph.node if n.op_type == "Conv")
    assert first.input[0] == "input" and first.input[1] in weights  # the float input and float weights, no DQ
    # int8 weights and int32 biases of the two Linears only
    assert sum(n.op_type == "DequantizeLinear" and n.input[0] in weights for n in graph.node) == 4
    assert abs(OrtModel(path).accuracy(data) - evaluate(net, data)) <= 0.01
