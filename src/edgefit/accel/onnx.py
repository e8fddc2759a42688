"""ONNX export and int8 inference with ONNX Runtime.

* :func:`export_onnx` writes any edgefit model (dense, pruned, k-means or
  other quantized weights, which export as their decoded float values) to
  ONNX with torch's TorchScript exporter (``dynamo=False``); activation
  quantizers of a simulated model are left out (they are what the int8
  runtime does for real).
* :func:`export_int8` goes on to ONNX Runtime's static quantization in QDQ form
  (``QuantizeLinear``/``DequantizeLinear`` around each conv and matmul, int8
  per-channel weights, uint8 activations calibrated with min/max on the given
  inputs, int32 biases), which ONNX Runtime's CPU provider runs on integer
  kernels. Weights already on a symmetric per-channel 8-bit grid
  (``LinearQuantConfig(bits=8, symmetric=True, per_channel=True)``) map to the
  same integers.
* :class:`OrtModel` runs a file: ``OrtModel(path)(x)``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgefit._io import atomic_write_with
from edgefit.accel._side_by_side import time_batches, timing_calibration
from edgefit.errors import ConfigError


def _strip_act_quantizers(model: nn.Module) -> nn.Module:
    from edgefit.compress.quantize import remove_act_quantizer

    m = copy.deepcopy(model).eval()
    for mod in m.modules():
        remove_act_quantizer(mod)
        for attr in ("edgefit_quant", "edgefit_kmeans", "edgefit_linear", "edgefit_precision"):
            mod.__dict__.pop(attr, None)
    return m


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's warnings and the graph dump its C++ side writes to stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...], *, opset: int = 17,
                dynamic_batch: bool = True) -> Path:
    """Write ``model`` as ONNX (float weights as they are), atomically.

    Raises:
        ConfigError: the model uses an op ONNX (at ``opset``) cannot express.
    """
    m = _strip_act_quantizers(model)
    x = torch.zeros(input_shape)
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None

    def write(tmp: str) -> None:
        try:
            with _quiet():
                torch.onnx.export(m, (x,), tmp, input_names=["input"], output_names=["output"], opset_version=opset,
                                  dynamic_axes=axes, dynamo=False)
        except Exception as exc:
            raise ConfigError(f"ONNX export failed (opset {opset}): {_first_line(exc)}") from exc

    return atomic_write_with(path, write)


class _Reader:
    """ONNX Runtime's calibration data reader over a batch of inputs."""

    def __init__(self, x: np.ndarray, batch: int = 32) -> None:
        self.batches = iter([{"input": x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.batches, None)


def export_int8(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...], calibration,
                *, per_channel: bool = True, keep_first_float: bool = False) -> Path:
    """Export ``model`` and quantize it to int8 QDQ ONNX, calibrated on ``calibration`` inputs.

    With ``keep_first_float`` the first weight layer (Conv, Gemm or MatMul) stays
    fp32, as the lectures' low-precision methods keep it: on a 3-channel image the
    int8 convolution has little to gain (27 MACs per output) and ONNX Runtime's
    fp32 kernel for it is the faster one on AVX-512 CPUs.

    Raises:
        ConfigError: no calibration data, or the export fails.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibration is None or len(calibration) == 0:
        raise ConfigError("int8 export needs calibration inputs (a few hundred samples)")
    x = np.ascontiguousarray(np.asarray(calibration, dtype=np.float32))
    with tempfile.TemporaryDirectory(prefix="edgefit-onnx-") as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", input_shape)
        pre = Path(tmp) / "pre.onnx"
        with _quiet():
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)

        exclude = [_first_weight_node(pre)] if keep_first_float else None

        def write(out: str) -> None:
            with _quiet():
                quantize_static(str(pre), out, _Reader(x), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude)

        return atomic_write_with(path, write)


def _first_weight_node(path: Path) -> str:
    """The name of the first Conv, Gemm or MatMul node of an ONNX file, in graph (topological) order."""
    import onnx

    nodes = [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    if not nodes:
        raise ConfigError("keep_first_float: the model has no Conv, Gemm or MatMul layer")
    return nodes[0]


class OrtModel:
    """An ONNX file on ONNX Runtime's CPU provider: ``OrtModel(path)(x) -> np.ndarray``."""

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ConfigError(f"ONNX Runtime cannot load {Path(path).name}: {_first_line(exc)}") from exc
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x) -> np.ndarray:
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return self.session.run(None, {self.input: np.ascontiguousarray(a, dtype=np.float32)})[0]

    def accuracy(self, data, split: str = "test") -> float:
        """Top-1 accuracy on a dataset's split."""
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        return float((self(x).argmax(1) == y).mean())


@dataclass(frozen=True)
class ExportCheck:
    """An ONNX file written and run on ONNX Runtime beside PyTorch on the same inputs.

    Attributes:
        path, file_bytes: the file and its size.
        inputs: how many inputs were compared; calibration: True when they are the
            calibration data (int8), False for seeded random ones.
        max_abs_diff: the largest |ONNX Runtime - PyTorch| over every output element.
        max_abs_output: the largest |PyTorch output| (the scale of that difference).
    """

    path: Path
    file_bytes: int
    inputs: int
    calibration: bool
    max_abs_diff: float
    max_abs_output: float

    @property
    def relative_diff(self) -> float:
        """``max_abs_diff`` over ``max_abs_output``."""
        return self.max_abs_diff / (self.max_abs_output or 1.0)


def export_checked(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...], *,
                   calibration=None, keep_first_float: bool = False) -> ExportCheck:
    """Export ``model`` (float, or int8 QDQ with ``calibration`` inputs) and compare with PyTorch.

    Float exports are checked on 2 seeded random inputs, int8 ones on the first 8
    calibration inputs (the int8 model against the float one). ``keep_first_float``
    is :func:`export_int8`'s.

    Raises:
        ConfigError: the calibration samples do not have the model's input shape.
    """
    if calibration is None:
        x = np.random.default_rng(0).standard_normal((2, *input_shape[1:])).astype(np.float32)
        export_onnx(model, path, input_shape)
    else:
        if tuple(calibration.shape[1:]) != tuple(input_shape[1:]):
            raise ConfigError(f"calibration samples are {tuple(calibration.shape[1:])}, "
                              f"the model takes {tuple(input_shape[1:])}")
        x = np.ascontiguousarray(calibration[:8], dtype=np.float32)
        export_int8(model, path, input_shape, calibration, keep_first_float=keep_first_float)
    x = torch.from_numpy(x)
    with torch.no_grad():
        ref = _strip_act_quantizers(model)(x).numpy()
    diff = float(np.abs(OrtModel(path)(x) - ref).max())
    return ExportCheck(Path(path), Path(path).stat().st_size, len(x), calibration is not None, diff,
                       float(np.abs(ref).max()))


def bench_onnxruntime(model: nn.Module, input_shape: tuple[int, ...], *, batches=(1, 8), runs: int = 10,
                      warmup: int = 2, int8: bool = True, calibration=None, threads: int = 1,
                      on_step=None) -> list[dict]:
    """Latency of ``model`` on ONNX Runtime, fp32 and (with ``int8``) int8 QDQ, per batch size.

    Rounds alternate between the two files so that a busy host slows both alike.
    ``calibration`` defaults to 16 standard-normal inputs (fine for timing; pass
    real inputs for accuracy). Returns one dict per batch size with median and
    p90 seconds for each runtime and the speed-up.
    """
    shape = tuple(input_shape)
    cal = timing_calibration(shape) if calibration is None else np.asarray(calibration, np.float32)
    with tempfile.TemporaryDirectory(prefix="edgefit-ort-") as tmp:
        files = {"fp32": export_onnx(model, Path(tmp) / "fp32.onnx", shape)}
        if int8:
            files["int8"] = export_int8(model, Path(tmp) / "int8.onnx", shape, cal)
        sessions = {k: OrtModel(p, threads=threads) for k, p in files.items()}
        return time_batches(lambda x: {k: (lambda s=s: s(x)) for k, s in sessions.items()}, shape, batches,
                            runs=runs, warmup=warmup, on_step=on_step)
