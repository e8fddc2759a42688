import re

import pytest

from edgefit.cli.main import main


def _trained(tmp_path_factory, model: str, epochs: int):
    p = tmp_path_factory.mktemp("w") / f"{model}.safetensors"
    assert main(["train", model, "--epochs", str(epochs), "--output", str(p), "--quiet"]) == 0
    return p


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return _trained(tmp_path_factory, "lenet_300_100_digits", 3)


@pytest.mark.slow
def test_quantize_ttq_with_qat_then_precision_inspect_and_export(tmp_path, weights, capsys):
    out = tmp_path / "t.efz"
    assert main(["quantize", "lenet_300_100_digits", "--weights", str(weights), "--method", "ttq", "--epochs", "1",
                 "--keep-first-last", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kept in float: classifier.0" in text and "ttq: test accuracy" in text
    assert main(["precision", str(out)]) == 0
    text = capsys.readouterr().out
    assert "classifier.2     ttq                2     32       30,000  add/sub" in text
    assert main(["inspect", str(out)]) == 0
    assert "2-bit codes" in capsys.readouterr().out
    assert main(["export", str(out), "-o", str(tmp_path / "t.onnx")]) == 0
    assert "max |difference|" in capsys.readouterr().out


def test_quantize_kmeans_with_16_bit_activations(tmp_path, weights, capsys):
    out = tmp_path / "k.efz"
    assert main(["quantize", "lenet_300_100_digits", "--weights", str(weights), "--method", "kmeans", "--bits", "4",
                 "--act-bits", "16", "-o", str(out)]) == 0
    assert "kmeans: test accuracy" in capsys.readouterr().out
    assert main(["precision", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"classifier\.2 +kmeans +4 +16 +30,000  fp32 MAC", text), text


def test_quantize_xnor_counts_bit_operations(tmp_path, weights, capsys):
    out = tmp_path / "x.efz"
    assert main(["quantize", "lenet_300_100_digits", "--weights", str(weights), "--method", "xnor", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["precision", str(out), "--device", "stm32f746"]) == 0
    text = capsys.readouterr().out
    # classifier.2 is 300 -> 100: 30,000 MACs = 469 64-lane XNOR + popcount pairs
    assert "classifier.2     xnor               1      1       30,000  xnor+popcount            469" in text
    assert "STM32F746" in text


@pytest.mark.parametrize("args, message", [
    (["--method", "bwn", "--bits", "3"], "bwn supports 1-bit weights, got 3"),
    (["--method", "lognet", "--bits", "8"], "lognet supports 3..5-bit weights, got 8"),
    (["--method", "bnn", "--act-bits", "4"], "bnn supports 1-bit activations, got 4"),
    (["--method", "nope"], "unknown quantization method 'nope'"),
    (["--method", "twn", "--calibration", "mse"], "twn takes no option calibration"),
    (["--method", "kmeans", "--act-bits", "17"], "kmeans supports 2..16-bit activations, got 17"),
])
def test_bad_options_are_one_line(tmp_path, weights, capsys, args, message):
    assert main(["quantize", "lenet_300_100_digits", "--weights", str(weights), *args, "-o", str(tmp_path / "b.efz")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_export_of_a_missing_op_is_one_line(tmp_path, capsys):
    mod = tmp_path / "svd_model.py"
    mod.write_text("import torch\nfrom torch import nn\n\nclass M(nn.Module):\n    def forward(self, x):\n"
                   "        return torch.linalg.svd(x)[1]\n\ndef build():\n    return M()\n")
    assert main(["export", f"{mod}:build", "-i", "2,3", "-o", str(tmp_path / "s.onnx")]) == 2
    err = capsys.readouterr().err
    assert "aten::linalg_svd" in err and err.count("\n") == 1


@pytest.mark.slow
def test_export_int8_keeping_the_first_layer_float(tmp_path, weights, capsys):
    import onnx

    out = tmp_path / "q.onnx"
    assert main(["export", "lenet_300_100_digits", "--weights", str(weights), "--int8", "--keep-first-float",
                 "-o", str(out)]) == 0
    assert "int8 vs float" in capsys.readouterr().out
    graph = onnx.load(str(out)).graph
    weights_ = {i.name for i in graph.initializer}
    first = next(n for n in graph.node if n.op_type in ("Gemm", "MatMul"))
    assert first.input[1] in weights_  # fp32 weights read directly, no DequantizeLinear in front


def test_bench_on_torch_int8_prints_both_sides(capsys):
    import json

    assert main(["bench", "lenet5_digits", "--runtime", "torch-int8", "-n", "1", "--warmup", "0",
                 "--batch-sizes", "1,2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["batch"] for r in rows] == [1, 2] and {"fp32", "int8", "baseline", "speedup"} <= set(rows[0])


def test_bench_on_torch_int8_names_every_fp32_side_in_text(capsys):
    assert main(["bench", "lenet5_digits", "--runtime", "torch-int8", "-n", "1", "--warmup", "0",
                 "--batch-sizes", "1"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("  batch   1: "))
    sides = ("fp32 BN folded", "fp32 BN folded channels-last", "fp32 BN folded TorchScript", "fp32 eager", "int8",
             "int8 TorchScript")
    beside = [part.rsplit(" ", 2)[0] for part in line.split("; ")[1:]]  # "NAME 1.23 ms" -> NAME
    judged = re.findall(r"(?:: |, )([a-zA-Z0-9 -]+?) [\d.]+ ms \(p90", line)
    assert len(judged) == 2 and sorted(judged + beside) == sorted(sides)  # every side named once


def test_bench_on_torch_int8_text_figures_are_the_rows(monkeypatch, capsys):
    from edgefit.accel import torch_int8

    def side(ms):
        return {"median_s": ms / 1e3, "p90_s": 1.5 * ms / 1e3}

    def fake(model, shape, **kw):
        row = {"batch": 1, "fp32_eager": side(21.9), "fp32": side(19.5), "fp32_channels_last": side(15.5),
               "fp32_torchscript": side(12.8), "int8": side(7.8), "int8_torchscript": side(4.8)}
        return [torch_int8.best_of_each_precision(row)]

    monkeypatch.setattr(torch_int8, "bench_torch_int8", fake)
    assert main(["bench", "lenet5_digits", "--runtime", "torch-int8", "-n", "1", "--warmup", "0",
                 "--batch-sizes", "1"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  batch   1: "))
    # speed-up = fastest BN-folded fp32 / fastest int8 = 12.8 / 4.8 = 2.67; p90 = 1.5 x median
    assert line == ("  batch   1: fp32 BN folded TorchScript 12.80 ms (p90 19.20), int8 TorchScript 4.80 ms"
                    " (p90 7.20) -> 2.67x; fp32 BN folded 19.50 ms; fp32 BN folded channels-last 15.50 ms;"
                    " fp32 eager 21.90 ms; int8 7.80 ms")


@pytest.mark.parametrize("source, runtime, message", [
    ("import torch\nfrom torch import nn\n\nclass M(nn.Module):\n    def __init__(self):\n"
     "        super().__init__()\n        self.fc = nn.Linear(4, 3)\n\n    def forward(self, x):\n"
     "        return sum(self.fc(x[i : i + 1]) for i in range(x.shape[0]))\n\ndef build():\n    return M()\n",
     "torch-int8", "torch.fx cannot trace the model"),
    ("from torch import nn\n\ndef build():\n    return nn.Linear(4, 3)\n", "tflite",
     "--runtime must be torch, onnxruntime or torch-int8, got 'tflite'"),
])
def test_bench_runtime_bad_input_is_one_line(tmp_path, capsys, source, runtime, message):
    mod = tmp_path / "loop_model.py"
    mod.write_text(source)
    assert main(["bench", f"{mod}:build", "-i", "1,4", "--runtime", runtime, "-n", "1", "--warmup", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def lenet5_weights(tmp_path_factory):
    return _trained(tmp_path_factory, "lenet5_digits", 1)


def test_lognet_5_bit_conv_4_bit_fc_as_the_lectures(tmp_path, lenet5_weights, capsys):
    out = tmp_path / "log.efz"
    assert main(["quantize", "lenet5_digits", "--weights", str(lenet5_weights), "--method", "lognet",
                 "--bits", "conv=5,fc=4", "--act-bits", "4", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["precision", str(out), "--device", "a100"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [" ".join(ln.split()[:5]) for ln in lines[1:5]] == [
        "features.0 lognet 5 4 32,000", "features.3 lognet 5 4 400,000",
        "classifier.0 lognet 4 4 100,000", "classifier.2 lognet 4 4 5,000"]
    assert [ln.split()[-3] for ln in lines[1:5]] == ["int8", "int8", "int4", "int4"]  # the A100 rate each runs at
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5-bit codes, 1 group(s) x 32 levels" in text and "4-bit codes, 1 group(s) x 16 levels" in text


@pytest.mark.parametrize("bits, message", [
    ("conv=6", "lognet supports 3..5-bit weights, got 6 for bits['features.0']"),
    ("conv=5,fc9=4", "bits names layer 'fc9', which is not in the model."),
    ("conv:5", "--bits 'conv:5': give one value or layer=value pairs separated by commas, e.g. conv=5,fc=4"),
])
def test_bad_per_layer_bits_are_one_line(tmp_path, lenet5_weights, capsys, bits, message):
    assert main(["quantize", "lenet5_digits", "--weights", str(lenet5_weights), "--method", "lognet", "--bits", bits,
                 "-o", str(tmp_path / "b.efz")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_on_onnxruntime_text_figures_are_the_rows(monkeypatch, capsys):
    from edgefit.accel import onnx

    def fake(model, shape, **kw):  # the rows bench_onnxruntime returns: fp32, int8 and fp32 / int8
        return [{"batch": 8, "fp32": {"median_s": 0.0758, "p90_s": 0.08}, "int8": {"median_s": 0.0337, "p90_s": 0.04},
                 "speedup": 0.0758 / 0.0337}]

    monkeypatch.setattr(onnx, "bench_onnxruntime", fake)
    assert main(["bench", "lenet5_digits", "--runtime", "onnxruntime", "-n", "1", "--warmup", "0",
                 "--batch-sizes", "8"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["lenet5_digits on ONNX Runtime (CPU provider, 1 thread(s)); int8 = QDQ, per-channel int8 weights",
                        "  batch   8: fp32 75.80 ms (p90 80.00), int8 33.70 ms (p90 40.00) -> 2.25x"]  # 75.8 / 33.7

def test_demo_sweep_labels_per_layer_widths_as_a_span():
    from edgefit.cli.quantize_cmd import _bits_label
    from edgefit.compress.quantize import BWNConfig, LogConfig

    assert _bits_label(LogConfig(bits={"features.0": 5, "classifier.0": 4, "classifier.2": 4})) == "4-5"
    assert _bits_label(LogConfig(bits={"features.0": 5})) == "5"
    assert _bits_label(LogConfig(bits=3)) == "3"
    assert _bits_label(BWNConfig()) == "1"
