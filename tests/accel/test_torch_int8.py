"""int8 on PyTorch's own quantized kernels: scales, integers and error bound derived by hand,
agreement with the simulated 8/8 model on digits, bad input as one line."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgefit.accel._side_by_side import time_side_by_side
from edgefit.accel.torch_int8 import (
    TorchInt8Config,
    bench_torch_int8,
    convert_torch_int8,
    fold_bn_fp32,
)
from edgefit.compress.quantize import LinearQuantConfig, quantize_
from edgefit.data import evaluate
from edgefit.errors import ConfigError


def test_one_linear_layer_within_the_bound_derived_from_its_scales():
    torch.manual_seed(0)
    fc = nn.Sequential(nn.Linear(6, 4)).eval()
    x = torch.randn(64, 6)
    q = convert_torch_int8(fc, x)
    w = fc[0].weight.detach()
    with torch.no_grad():
        y = fc(x)
        yq = q(x)
    # min/max ranges, widened to hold 0, over 255 uint8 steps; weights max|w| / 127 per output channel
    s_x = float(x.max() - x.min()) / 255
    s_y = float(max(y.max(), 0) - min(y.min(), 0)) / 255
    s_w = w.abs().amax(1) / 127
    ql = getattr(q, "0")
    assert ql.scale == pytest.approx(s_y, rel=1e-6)
    assert torch.allclose(ql.weight().q_per_channel_scales().float(), s_w, rtol=1e-6)
    assert torch.equal(ql.weight().int_repr().long(), torch.round(w / s_w[:, None]).long())
    # (w + dw)(x + dx) - wx = w dx + dw x + dw dx, |dx| <= s_x / 2, |dw| <= s_w / 2; bias at s_x s_w; output
    # rounded to s_y / 2
    bound = (w.abs().sum(1) * s_x / 2 + x.abs() @ (s_w / 2).expand(6, 4) + 6 * s_x * s_w / 4
             + s_x * s_w / 2 + s_y / 2 + 1e-6)
    err = (yq - y).abs()
    assert bool((err <= bound).all())
    assert float(err.max()) > 0.1 * s_y  # a real integer path, not a float copy


def test_relu6_folds_into_the_convolution_output_range():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU6()).eval()
    with torch.no_grad():
        net[0].weight.mul_(20)  # outputs well beyond 6 and below 0
    x = torch.randn(32, 1, 6, 6)
    plain = convert_torch_int8(net, x, TorchInt8Config(fold_relu6=False))
    folded = convert_torch_int8(net, x)
    conv = getattr(folded, "0")
    assert type(conv).__name__ == "ConvReLU2d" and "relu6" not in folded.code.lower()
    assert conv.zero_point == 0 and conv.scale == pytest.approx(6 / 255)  # codes 0..255 are 0..6: ReLU6 itself
    with torch.no_grad():
        ref, out, out_plain = net(x), folded(x), plain(x)
    assert float(out.max()) == pytest.approx(6.0) and float(out.min()) == 0.0
    # input step s_x / 2 times the sum of |w| over the 3x3 window, weight step, bias at s_x s_w, output step 6 / 255 / 2
    w = net[0].weight.detach().flatten(1)
    s_x, s_w = float(x.max() - x.min()) / 255, w.abs().amax(1) / 127
    bound = float((w.abs().sum(1) * s_x / 2 + 9 * float(x.abs().max()) * s_w / 2 + 9 * s_x * s_w / 4 + s_x * s_w / 2).max()) + 3 / 255
    assert float((out - ref).abs().max()) <= bound + 1e-5
    assert float((out - ref).abs().max()) < float((out_plain - ref).abs().max())  # a finer grid than the conv's range


def test_relu6_below_6_keeps_the_convolutions_calibrated_top():
    from edgefit.accel.torch_int8 import fold_relu6_

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU6()).eval()
    with torch.no_grad():
        net[0].weight.mul_(0.1)  # every output well inside (-6, 6)
    m = convert_torch_int8(net, torch.randn(32, 1, 6, 6), TorchInt8Config(fold_relu6=False))
    conv = getattr(m, "0")
    top = (255 - conv.zero_point) * conv.scale  # the top of the convolution's uint8 range
    assert 0 < top < 6
    assert fold_relu6_(m) == ["0"]
    fused = getattr(m, "0")
    assert type(fused).__name__ == "ConvReLU2d" and (fused.zero_point, fused.scale) == (0, top / 255)


@pytest.fixture(scope="module")
def digits_pair(digits_convnet):
    net, data = digits_convnet(20)
    sim = copy.deepcopy(net)
    cal = data.x_train[:512]
    quantize_(sim, LinearQuantConfig(bits=8, act_bits=8, symmetric=True, per_channel=True), calibration=cal)
    return sim, convert_torch_int8(sim, cal), data


def test_digits_int8_agrees_with_the_simulated_8_8_model(digits_pair):
    sim, q, data = digits_pair
    assert abs(evaluate(q, data) - evaluate(sim, data)) <= 0.002 + 1e-9  # within 0.2 pp
    x = torch.from_numpy(data.x_test)
    with torch.no_grad():
        ref, out = sim(x), q(x)
    differ = ref.argmax(1) != out.argmax(1)
    assert float(differ.float().mean()) <= 0.02
    # int8 logits are uint8 codes times one scale; the flips seen on less-trained nets were ties of the top two codes
    top2 = out[differ].topk(2, dim=1).values
    assert torch.equal(top2[:, 0], top2[:, 1])
    assert float(((out - ref) ** 2).mean().sqrt()) < 0.05 * float((ref**2).mean().sqrt())
    kinds = {type(m).__module__.split(".")[3] for m in q.modules() if "quantized" in type(m).__module__}
    assert kinds == {"quantized", "intrinsic"}  # torch.ao.nn.quantized Linear, intrinsic ConvReLU2d / LinearReLU


def test_the_float_model_is_left_as_it_was(digits_pair):
    sim, _, _ = digits_pair
    assert isinstance(sim[0], nn.Conv2d) and sim[0].weight.dtype == torch.float32


def test_bench_returns_both_runtimes_per_batch_and_restores_threads():
    saved = torch.get_num_threads()
    rows = bench_torch_int8(nn.Sequential(nn.Linear(4, 3)), (1, 4), batches=(1, 2), runs=1, warmup=0, threads=1)
    assert [r["batch"] for r in rows] == [1, 2]
    sides = {"fp32", "fp32_eager", "int8", "fp32_torchscript", "int8_torchscript"}  # 2-D input: no channels-last
    assert set(rows[0]) == {"batch", "baseline", "int8_side", "speedup", *sides}
    for r in rows:
        base = min(("fp32", "fp32_torchscript"), key=lambda k: r[k]["median_s"])
        fast8 = min(("int8", "int8_torchscript"), key=lambda k: r[k]["median_s"])
        assert (r["baseline"], r["int8_side"]) == (base, fast8)
        assert r["speedup"] == r[base]["median_s"] / r[fast8]["median_s"]
    assert torch.get_num_threads() == saved


def test_bench_times_a_convnet_in_every_fp32_layout_and_leaves_it_as_given():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    r = bench_torch_int8(net, (1, 3, 8, 8), batches=(1,), runs=1, warmup=0, threads=1)[0]
    assert {"fp32", "fp32_channels_last", "fp32_torchscript", "fp32_eager", "int8", "int8_torchscript"} <= set(r)
    assert r["baseline"] == min(("fp32", "fp32_channels_last", "fp32_torchscript"), key=lambda k: r[k]["median_s"])
    assert not next(net.parameters()).is_contiguous(memory_format=torch.channels_last)


def test_a_model_torchscript_cannot_trace_is_timed_without_it_and_says_why():
    class DictOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return {"y": self.fc(x)}

    r = bench_torch_int8(DictOut(), (1, 4), batches=(1,), runs=1, warmup=0)[0]
    assert "fp32_torchscript" not in r and "int8_torchscript" not in r
    assert set(r["not_timed"]) == {"fp32_torchscript", "int8_torchscript"}
    assert r["not_timed"]["fp32_torchscript"].startswith("TorchScript cannot trace the model: ")
    assert (r["baseline"], r["int8_side"]) == ("fp32", "int8")


def test_torchscript_computes_what_the_model_computes(digits_pair):
    from edgefit.accel.torch_int8 import torchscript

    _, q, data = digits_pair
    x = torch.from_numpy(data.x_test[:8]).float()
    with torch.inference_mode():
        assert torch.equal(torchscript(q, x)(x), q(x))  # same int8 kernels, same integers


def test_the_fp32_baseline_folds_batch_norm_and_computes_the_same():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    folded = fold_bn_fp32(net)
    assert isinstance(folded[1], nn.Identity) and isinstance(net[1], nn.BatchNorm2d)
    x = torch.randn(3, 2, 6, 6)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5)


def test_side_by_side_interleaves_the_calls():
    calls, steps = [], []
    out = time_side_by_side({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, runs=2, warmup=1,
                            on_step=lambda: steps.append(1))
    assert calls == ["a", "b", "a", "b", "a", "b"] and len(steps) == 6 and set(out) == {"a", "b"}
    with pytest.raises(ConfigError, match="runs >= 1"):
        time_side_by_side({}, runs=0, warmup=0)


class _ShapeLoop(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return sum(self.fc(x[i : i + 1]) for i in range(x.shape[0]))


@pytest.mark.parametrize("model, cal, message", [
    (nn.Linear(4, 3), np.zeros((0, 4)), "needs calibration inputs"),
    (nn.Linear(4, 3), None, "needs calibration inputs"),
    (_ShapeLoop(), np.zeros((2, 4)), "torch.fx cannot trace the model"),
    (nn.Linear(4, 3), np.zeros((2, 5)), r"calibration inputs \(5,\) do not run through the model"),
])
def test_bad_input_is_one_line(model, cal, message):
    with pytest.raises(ConfigError, match=message) as e:
        convert_torch_int8(model, cal)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "tpu"}, "backend must be one of x86, fbgemm, onednn, qnnpack"),
    ({"observer": "mse"}, "observer must be minmax or histogram"),
    ({"batch": 0}, "batch must be >= 1"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TorchInt8Config(**kwargs)
