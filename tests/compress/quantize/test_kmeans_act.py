"""K-means weight sharing with calibrated uniform activations (the lectures' summary
table: weight sharing at 16-bit activations): the grid, the .efz round trip, the
precisions it reports, and bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from edgefit.compress import inspect_compressed, load_compressed, save_compressed
from edgefit.compress.quantize import KMeansConfig, expand_kinds, finetune_centroids_, quantize_
from edgefit.compress.quantize.precision import efz_precisions, layer_precisions, model_widths
from edgefit.compress.quantize.recipe import make_config
from edgefit.errors import ConfigError
from edgefit.zoo import create

NAME = "lenet5_digits"  # features.0, features.3: Conv2d; classifier.0, classifier.2: Linear
X = torch.from_numpy(np.random.default_rng(0).uniform(0, 16, (16, 1, 8, 8)).astype(np.float32))


def _fc():
    net = nn.Sequential(nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 1.0, 2.0, 2.0]]))
    return net


def test_16_bit_activation_grid_hand_derived():
    # Calibration sees inputs in [-1, 2] (min/max): 2^16 - 1 = 65,535 steps of 3 / 65,535,
    # zero point round(1 / (3 / 65,535)) = 21,845. Two distinct weights at 1 bit: the codebook is {1, 2}.
    net = _fc()
    states = quantize_(net, KMeansConfig(bits=1, act_bits=16), calibration=torch.tensor([[-1.0, 0.0, 0.5, 2.0]]))
    st = states["0"]
    assert st.codebook.tolist() == [1.0, 2.0] and st.labels.tolist() == [[0, 0, 1, 1]]
    assert st.act == {"kind": "uniform", "bits": 16, "scale": 3 / 65535, "zero_point": 21845} and st.act_bits == 16
    # 0.25 / step = 5461.25 -> code 5461 + 21845; 3.0 clamps at code 65,535 (= 2.0); -5.0 at code 0 (= -1.0)
    x = torch.tensor([[0.25, 3.0, -5.0, 1.0]], dtype=torch.float64)
    got = net[0].edgefit_act.quantize(x)[0].tolist()
    assert got == pytest.approx([5461 * 3 / 65535, 2.0, -1.0, 1.0], rel=1e-12, abs=0)
    assert abs(got[0] - 0.25) < 3 / 65535 / 2  # within half a step
    with torch.no_grad():  # the hook runs in the forward pass: 1 x 0.24999 + 1 x 2 + 2 x (-1) + 2 x 1
        assert float(net(x.float())) == pytest.approx(5461 * 3 / 65535 + 2.0, abs=1e-6)
    assert layer_precisions(net)["0"].act_bits == 16


def test_without_act_bits_activations_stay_float():
    net = _fc()
    st = quantize_(net, KMeansConfig(bits=1))["0"]
    assert st.act is None and st.act_bits == 32 and not hasattr(net[0], "edgefit_act")


def test_finetuning_keeps_the_activation_quantizer():
    from edgefit.data import TrainConfig, load_digits

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    data = load_digits()
    quantize_(net, KMeansConfig(bits=3, act_bits=8), calibration=data)
    spec = net[1].edgefit_kmeans.act
    states = finetune_centroids_(net, data, TrainConfig(epochs=1, lr=1e-3))
    assert states["1"].act == spec and states["1"].act_bits == 8 and net[1].edgefit_act.spec() == spec


def test_efz_round_trip_restores_activations_and_reports_their_bits(tmp_path):
    torch.manual_seed(0)
    m = create(NAME)
    quantize_(m, KMeansConfig(bits=expand_kinds({"conv": 8, "fc": 4}, m), act_bits=16), calibration=X)
    p = tmp_path / "k.efz"
    save_compressed(m, p, model_name=NAME)
    loaded = load_compressed(p)
    for (k, a), b in zip(m.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a.view(torch.int32), b.view(torch.int32)), k
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(X), loaded(X))
    layers = ("features.0", "features.3", "classifier.0", "classifier.2")
    assert all(loaded.get_submodule(n).edgefit_act.spec() == m.get_submodule(n).edgefit_kmeans.act for n in layers)
    info = inspect_compressed(p)
    assert info["quantized"]["classifier.0"]["ab"] == 16 and info["quantized"]["classifier.0"]["f"] == "kmeans"
    for prec in (efz_precisions(p), layer_precisions(loaded)):
        assert {n: (q.family, q.act_bits) for n, q in prec.items()} == {n: ("kmeans", 16) for n in layers}
        assert prec["classifier.2"].weight_bits == 4 and prec["features.0"].weight_bits <= 8
    widths = model_widths(loaded)["activation_bits"]
    assert {n: widths[n] for n in layers} == {n: 16 for n in layers} and widths["default"] == 16
    # without activation quantization a k-means file is what it was: no quantization entry, version 1
    plain = create(NAME)
    quantize_(plain, KMeansConfig(bits=4))
    save_compressed(plain, tmp_path / "p.efz", model_name=NAME)
    assert inspect_compressed(tmp_path / "p.efz")["quantized"] == {}
    assert inspect_compressed(tmp_path / "p.efz")["format_version"] == 1
    assert efz_precisions(tmp_path / "p.efz")["classifier.0"].act_bits == 32


@pytest.mark.parametrize("kwargs, message", [
    ({"act_bits": 17}, "kmeans supports 2..16-bit activations, got 17"),
    ({"act_bits": 1}, "kmeans supports 2..16-bit activations, got 1"),
    ({"act_bits": True}, "kmeans supports 2..16-bit activations, got True"),
    ({"act_bits": 16, "calibration": "max"}, "calibration must be one of"),
])
def test_bad_activation_options_are_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        KMeansConfig(**kwargs)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=message):
        make_config("kmeans", **kwargs)


def test_activation_quantization_without_calibration_data_is_one_line():
    with pytest.raises(ConfigError, match=r"kmeans activation quantization \(act_bits=16\) needs calibration data"):
        quantize_(_fc(), KMeansConfig(bits=1, act_bits=16))
