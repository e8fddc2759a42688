"""Each reduced-precision family against a hand-derived example, QAT, bad input."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgefit.compress.quantize import (
    METHODS,
    BinaryConnectConfig,
    BNNConfig,
    BWNConfig,
    FixedPointConfig,
    KMeansConfig,
    LinearQuantConfig,
    LogConfig,
    TTQConfig,
    TWNConfig,
    XNORConfig,
    fold_batchnorm_,
    quantize_,
    quantize_aware_train_,
)
from edgefit.compress.quantize._family import ActStats
from edgefit.compress.quantize.activation import (
    UniformAct,
    fixed_point,
    log_quantize,
    uniform_params,
    uniform_range,
)
from edgefit.compress.quantize.recipe import make_config
from edgefit.errors import ConfigError

W = torch.tensor([[0.5, -1.5, 0.1, -0.1], [0.2, 0.2, -0.4, 0.0]])


def _one(weight=W, bias=False):
    net = nn.Sequential(nn.Linear(weight.shape[1], weight.shape[0], bias=bias))
    with torch.no_grad():
        net[0].weight.copy_(weight)
    return net


def _q(config, weight=W, **kw):
    net = _one(weight)
    states = quantize_(net, config, **kw)
    return net[0].weight.detach(), states["0"]


def test_registry_has_every_family():
    assert set(METHODS) == {"linear", "fixed", "binaryconnect", "bwn", "twn", "ttq", "bnn", "xnor", "lognet", "kmeans"}


def test_binaryconnect_and_bnn_are_signs():
    for cfg, c in ((BinaryConnectConfig(), 1.0), (BNNConfig(), 0.5)):  # BNN: +-1 scaled by 1/sqrt(fan_in = 4)
        w, st = _q(cfg)
        assert w.tolist() == [[c, -c, c, -c], [c, c, -c, c]]
        assert st.bits == 1 and st.codes.tolist() == [[1, 0, 1, 0], [1, 1, 0, 1]]


def test_bwn_alpha_is_mean_abs_per_filter():
    w, st = _q(BWNConfig())
    a0, a1 = (0.5 + 1.5 + 0.1 + 0.1) / 4, (0.2 + 0.2 + 0.4) / 4
    assert torch.allclose(w, torch.tensor([[a0, -a0, a0, -a0], [a1, a1, -a1, a1]]))
    assert st.levels.shape == (2, 2)


def test_twn_threshold_and_alpha():
    # mean|W| = 3.0 / 8 = 0.375, delta = 0.2625: kept |w| are 0.5, 1.5, 0.4 -> alpha = 0.8
    w, st = _q(TWNConfig())
    assert torch.allclose(w, torch.tensor([[0.8, -0.8, 0, 0], [0, 0, -0.8, 0]]))
    assert st.bits == 2 and st.codes.tolist() == [[2, 0, 1, 1], [1, 1, 0, 1]]


def test_ttq_initial_scales_and_learned_update():
    # delta = 0.05 * 1.5 = 0.075: positives 0.5 0.1 0.2 0.2 (mean 0.25), negatives 1.5 0.1 0.4 (mean 2/3)
    w, st = _q(TTQConfig())
    wp, wn = 0.25, 2 / 3
    assert torch.allclose(w, torch.tensor([[wp, -wn, wp, -wn], [wp, wp, -wn, 0]]))
    # the gradient of W_p is the sum of its weights' gradients
    from edgefit.compress.quantize.ternary import TTQWeight

    q = TTQWeight(0.05, W)
    latent = W.clone().requires_grad_(True)
    q(latent).sum().backward()
    assert float(q.wp.grad) == 4.0 and float(q.wn.grad) == -3.0
    assert torch.allclose(latent.grad, torch.tensor([[wp, wn, wp, wn], [wp, wp, wn, 1.0]]))


def test_dynamic_fixed_point_per_layer_fraction():
    # max|w| = 1.5 -> integer length ceil(log2 1.5) + 1 = 2, so 4 bits leave fl = 2 (steps of 0.25)
    w, st = _q(FixedPointConfig(bits=4))
    assert w.tolist() == [[0.5, -1.5, 0.0, -0.0], [0.25, 0.25, -0.5, 0.0]]
    assert float(st.scale) == 0.25 and fixed_point(torch.tensor([3.0]), 4, 2).tolist() == [1.75]


def test_lognet_powers_of_two():
    # fsr = round(log2 1.5) = 1; 3 bits: exponents -1, 0, 1; 0.2 -> 2^-2 is below: 0
    w, st = _q(LogConfig(bits=3))
    assert w.tolist() == [[0.5, -2.0, 0.0, -0.0], [0.0, 0.0, -0.5, 0.0]]
    assert log_quantize(torch.tensor([5.0, 0.7]), 4, 2, False).tolist() == [4.0, 0.5]


def test_xnor_output_is_scaled_by_beta():
    net = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 2))  # the image input of layer 0 stays float
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(4))
        net[1].weight.copy_(W)
        net[1].bias.copy_(torch.tensor([1.0, -1.0]))
    quantize_(net, XNORConfig(layers=("1",)))
    x = torch.tensor([[2.0, -1.0, 0.0, 1.0]])
    beta = 1.0  # mean |x| = 4 / 4
    a0, a1 = 0.55, 0.2
    # signs of x: + - - + (0 -> -1); rows: (+ - + -).(+ - - +) = 0, (+ + - +).(+ - - +) = 2
    assert torch.allclose(net(x), torch.tensor([[0 * a0 * beta + 1.0, 2 * a1 * beta - 1.0]]))
    only = nn.Sequential(nn.Linear(4, 2))
    quantize_(only, BNNConfig())
    assert not hasattr(only[0], "edgefit_act")  # the first layer's input is the image, not binarized


def test_linear_activation_calibration_methods():
    s = ActStats(lo=-1.0, hi=2.0, sample=[torch.tensor([-1.0, 0.0, 0.5, 2.0])])
    assert uniform_params(-1.0, 2.0, 2) == (1.0, 1)
    assert uniform_range(s, 8, "minmax") == (-1.0, 2.0)
    lo, hi = uniform_range(s, 2, "mse")
    assert -1.0 <= lo <= 0 <= hi <= 2.0
    act = UniformAct(2, 1.0, 1)
    assert act.quantize(torch.tensor([-1.4, 0.4, 1.6, 9.0])).tolist() == [-1.0, 0.0, 2.0, 2.0]


def test_linear_int32_bias_and_activation_hook():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    calib = torch.randn(64, 4)
    states = quantize_(net, LinearQuantConfig(bits=8, act_bits=8, symmetric=True), calibration=calib)
    st = states["0"]
    assert st.act["kind"] == "uniform" and st.act_bits == 8
    assert torch.equal(net[0].bias.detach(), st.bias())
    assert torch.equal(st.bias(), (st.bias_codes.double() * st.bias_scale).float())


def test_bn_folding_is_exact_enough():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    net.eval()
    x = torch.randn(2, 2, 5, 5)
    ref = net(x)
    assert fold_batchnorm_(net) == [("0", "1")]
    assert isinstance(net[1], nn.Identity) and torch.allclose(net(x), ref, atol=1e-5)


def test_keep_first_last_and_unsupported_layers_are_reported():
    net = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    states = quantize_(net, BWNConfig(keep_first_last=True))
    assert set(states) == {"2", "3"}
    assert states.skipped["0"].startswith("first/last") and states.skipped["4"].startswith("first/last")
    states = quantize_(copy.deepcopy(net), TWNConfig())
    assert "Conv1d is not supported by twn" in states.skipped["0"]


def test_bad_input_is_one_clear_line():
    with pytest.raises(ConfigError, match="lognet supports 3..5-bit weights, got 8"):
        LogConfig(bits=8)
    with pytest.raises(ConfigError, match="bwn supports 1-bit weights, got 3"):
        make_config("bwn", bits=3)
    with pytest.raises(ConfigError, match="bnn supports 1-bit activations, got 8"):
        make_config("bnn", act_bits=8)
    with pytest.raises(ConfigError, match="needs calibration data"):
        quantize_(_one(), LinearQuantConfig(act_bits=8))
    with pytest.raises(ConfigError, match="unknown quantization method 'tnn'"):
        make_config("tnn")
    with pytest.raises(ConfigError, match="quantize_ takes one of"):
        quantize_(_one(), object())


@pytest.mark.parametrize("config", [BinaryConnectConfig(), TTQConfig(), XNORConfig(), LogConfig(bits=4, act_bits=4),
                                    FixedPointConfig(bits=6, act_bits=8), LinearQuantConfig(bits=4, act_bits=8)])
def test_qat_trains_through_the_estimator_and_leaves_quantized_weights(config):
    from edgefit.data import TrainConfig, load_digits

    data = load_digits()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    before = copy.deepcopy(net)
    states = quantize_aware_train_(net, data, config, TrainConfig(epochs=1))
    for name, st in states.items():
        layer = dict(net.named_modules())[name]
        assert torch.equal(layer.weight.detach(), st.weight())
        assert not torch.equal(layer.weight, dict(before.named_modules())[name].weight)
    assert not hasattr(net[1], "parametrizations")
    if isinstance(config, BinaryConnectConfig):
        assert set(net[1].weight.unique().tolist()) == {-1.0, 1.0}


def test_kmeans_through_the_registry():
    w, _ = _q(KMeansConfig(bits=1))
    assert len(torch.unique(w[w != 0])) <= 2


def test_fp_weights_decode_exactly_from_codes():
    for cfg in (LinearQuantConfig(bits=5, per_channel=True), FixedPointConfig(bits=5), LogConfig(bits=5), TTQConfig()):
        net = _one(torch.from_numpy(np.random.default_rng(0).standard_normal((6, 7)).astype(np.float32)))
        st = quantize_(net, cfg)["0"]
        assert torch.equal(net[0].weight.detach(), st.weight()) and int(st.codes.max()) < 2**st.bits


def test_precisions_pick_the_device_rate_with_a_source():
    from edgefit.compress.quantize.precision import LayerPrecision, op_kind
    from edgefit.errors import DeviceError
    from edgefit.hardware import get_device, precision_for_widths, runs_at
    from edgefit.hardware.device import device_from_dict

    a100, mcu = get_device("a100"), get_device("stm32f746")
    assert runs_at(a100, precision_for_widths(1, 1)) == "binary" and a100.peak("binary") == 4992e12
    assert runs_at(a100, precision_for_widths(4, 4)) == "int4" and a100.peak("int4") == 1248e12
    assert runs_at(a100, precision_for_widths(8, 8)) == "int8"
    assert runs_at(a100, precision_for_widths(1, 32)) == "fp32"
    assert runs_at(mcu, precision_for_widths(1, 1)) == "int8"  # no binary rate listed
    assert "whitepaper" in a100.sources["low_precision_ops_per_s.binary"]
    assert op_kind(LayerPrecision("ttq", 2, 32)) == "add/sub"
    import yaml

    data = yaml.safe_load(open(a100.path))
    data["low_precision_ops_per_s"]["int2"] = {"value": 1.0, "source": "x"}
    with pytest.raises(DeviceError, match="unknown precision 'int2' in low_precision_ops_per_s"):
        device_from_dict(data)
