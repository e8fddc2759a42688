"""int8 inference on PyTorch's own quantized CPU kernels (``torch.ao.quantization``).

A second real integer runtime beside ONNX Runtime (:mod:`.onnx`):
:func:`convert_torch_int8` traces a float model with ``torch.fx``, inserts
observers, runs the calibration inputs through it and converts it with FX graph
mode quantization (``prepare_fx`` / ``convert_fx``) into a ``GraphModule`` whose
convolutions and linears are ``torch.ao.nn.quantized`` modules: int8 weights
prepacked for the backend's kernels (``x86``: FBGEMM or oneDNN, chosen by torch
per op; ``fbgemm``, ``onednn``, ``qnnpack`` on request), uint8 activations, the
conv + batch-norm + ReLU fused first. Weights are symmetric and per output
channel on the restricted grid ``[-127, 127]`` (``scale = max|w| / 127``), the
grid of ``LinearQuantConfig(bits=8, symmetric=True, per_channel=True)``, so an
already quantized model keeps its integers; activations are affine uint8 with
min/max (or histogram) calibration.

Nothing is pickled: an int8 model is rebuilt from the float weights (a
``.safetensors`` or ``.efz`` file) and the calibration inputs each time it is
needed (a few seconds for MobileNetV2).

torch 2.13 still ships FX graph mode quantization, and warns that quantized
tensor creation (``torch.quantize_per_tensor``, the ``quint8``/``qint8`` dtypes)
and ``reduce_range`` are deprecated; those warnings are silenced inside
:func:`convert_torch_int8` and the timing of :func:`bench_torch_int8` only.

>>> cfg = TorchInt8Config(observer="histogram")
>>> cfg.backend, cfg.per_channel
('x86', True)
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgefit.accel._side_by_side import time_batches, timing_calibration
from edgefit.accel.onnx import _first_line, _strip_act_quantizers
from edgefit.errors import ConfigError

BACKENDS = ("x86", "fbgemm", "onednn", "qnnpack")
OBSERVERS = ("minmax", "histogram")


@dataclass(frozen=True)
class TorchInt8Config:
    """How :func:`convert_torch_int8` quantizes.

    Attributes:
        backend: torch's quantized engine (``torch.backends.quantized.engine``):
            ``x86`` (FBGEMM / oneDNN, torch's default on x86), ``fbgemm``, ``onednn``
            or ``qnnpack``.
        per_channel: one weight scale per output channel (else one per tensor).
        observer: activation range from the calibration inputs' ``minmax`` or a
            ``histogram`` (torch's L2-optimal clipping).
        reduce_range: 7-bit activations, for CPUs without VNNI, where FBGEMM's
            AVX2 ``u8 x s8`` pair sums can saturate at 16 bits.
        fold_relu6: fold each ReLU6 that follows a convolution into the
            convolution's uint8 output range (:func:`fold_relu6_`), as ONNX Runtime
            folds Clip; else torch runs it as a separate quantized op.
        batch: calibration inputs per forward pass.
    """

    backend: str = "x86"
    per_channel: bool = True
    observer: str = "minmax"
    reduce_range: bool = False
    fold_relu6: bool = True
    batch: int = 32

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.observer not in OBSERVERS:
            raise ConfigError(f"observer must be minmax or histogram, got {self.observer!r}")
        if self.batch < 1:
            raise ConfigError(f"batch must be >= 1, got {self.batch}")


@contextlib.contextmanager
def _quiet_ao():
    """Silence torch.ao's deprecation warnings (quantized dtypes, reduce_range), here only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _qconfig_mapping(config: TorchInt8Config):
    from torch.ao.quantization import (
        HistogramObserver,
        MinMaxObserver,
        PerChannelMinMaxObserver,
        QConfig,
        get_default_qconfig_mapping,
    )

    act_obs = MinMaxObserver if config.observer == "minmax" else HistogramObserver
    act = act_obs.with_args(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=config.reduce_range)
    if config.per_channel:
        weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                                    quant_min=-127, quant_max=127)
    else:
        weight = MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric,
                                          quant_min=-127, quant_max=127)
    # torch's mapping for the backend (fixed ranges for sigmoid, tanh, ...), with our global qconfig
    return get_default_qconfig_mapping(config.backend).set_global(QConfig(activation=act, weight=weight))


def _calibration_tensor(calibration) -> torch.Tensor:
    if calibration is None or len(calibration) == 0:
        raise ConfigError("torch int8 needs calibration inputs (a few hundred samples)")
    if isinstance(calibration, torch.Tensor):
        return calibration.detach().float()
    return torch.from_numpy(np.ascontiguousarray(np.asarray(calibration, dtype=np.float32)))


def set_engine(backend: str) -> None:
    """Make ``backend`` torch's quantized engine.

    Raises:
        ConfigError: this torch build lacks it.
    """
    engines = torch.backends.quantized.supported_engines
    if backend not in engines:
        raise ConfigError(f"this torch has no {backend!r} quantized engine (it has {', '.join(engines)})")
    torch.backends.quantized.engine = backend


def convert_torch_int8(model: nn.Module, calibration, config: TorchInt8Config | None = None) -> nn.Module:
    """A copy of ``model`` on torch's int8 kernels, calibrated on ``calibration`` inputs.

    The float model is left as it is (activation quantizers of a simulated model
    are left out of the copy: the int8 model quantizes its activations for real).
    Sets ``torch.backends.quantized.engine`` to ``config.backend``, which the
    returned model needs when it runs (``x86`` is torch's default).

    Args:
        model: a float model that ``torch.fx`` can trace (no data-dependent control flow).
        calibration: inputs (array or tensor, ``(N, ...)``) for the activation ranges.
        config: a :class:`TorchInt8Config` (default: x86, per-channel, min/max).

    Raises:
        ConfigError: no calibration inputs, an engine this torch lacks, a model
            ``torch.fx`` cannot trace, or calibration inputs the model cannot take.
    """
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    config = config or TorchInt8Config()
    x = _calibration_tensor(calibration)
    set_engine(config.backend)
    m = _strip_act_quantizers(model)
    with _quiet_ao():
        try:
            prepared = prepare_fx(m, _qconfig_mapping(config), example_inputs=(x[:1],))
        except Exception as exc:
            raise ConfigError(f"torch int8: torch.fx cannot trace the model ({_first_line(exc)}); FX graph mode"
                              " needs a forward without data- or shape-dependent Python control flow") from exc
        try:
            with torch.no_grad():
                for i in range(0, len(x), config.batch):
                    prepared(x[i : i + config.batch])
        except Exception as exc:
            raise ConfigError(f"torch int8: calibration inputs {tuple(x.shape[1:])} do not run through"
                              f" the model ({_first_line(exc)})") from exc
        converted = convert_fx(prepared).eval()
    if config.fold_relu6:
        fold_relu6_(converted)
    return converted


def fold_relu6_(model: nn.Module) -> list[str]:
    """Fold ReLU6 into the quantized convolution before it, in place; returns the convolutions' names.

    A uint8 output with zero point 0 and scale ``hi / 255``, ``hi = min(6, top of
    the convolution's calibrated range)``, is ReLU6 itself: codes clamp at 0 and
    at 255, i.e. at 0 and ``hi``. So the ``Conv2d -> ReLU6`` pair becomes a
    quantized ``ConvReLU2d`` with that output range, computing
    ``quantize(relu6(conv(x)))`` in one kernel (ONNX Runtime folds Clip into
    QLinearConv the same way), on a finer grid than the convolution's own range,
    whose negative half ReLU6 discards. Only a convolution whose one user is the
    ReLU6 is folded.
    """
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.quantized as nnq

    mods = dict(model.named_modules())
    folded = []
    for node in list(model.graph.nodes):
        src = node.args[0] if node.args else None
        if (node.op != "call_module" or not isinstance(mods.get(node.target), (nn.ReLU6, nnq.ReLU6))
                or getattr(src, "op", None) != "call_module" or len(src.users) != 1
                or type(mods.get(src.target)) is not nnq.Conv2d):
            continue
        conv = mods[src.target]
        hi = min(6.0, (255 - conv.zero_point) * conv.scale)
        if hi <= 0:
            continue  # the convolution's calibrated range is all negative: ReLU6 gives 0, leave it as it is
        fused = nniq.ConvReLU2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                conv.dilation, conv.groups, True, conv.padding_mode)
        fused.set_weight_bias(conv.weight(), conv.bias())
        fused.scale, fused.zero_point = hi / 255, 0
        parent, _, leaf = src.target.rpartition(".")
        setattr(model.get_submodule(parent), leaf, fused)
        node.replace_all_uses_with(src)
        model.graph.erase_node(node)
        folded.append(src.target)
    model.graph.lint()
    model.delete_all_unused_submodules()
    model.recompile()
    return folded


def fold_bn_fp32(model: nn.Module) -> nn.Module:
    """An fp32 copy of ``model`` with each conv/linear -> BatchNorm pair folded, as the int8 conversion does.

    The fair fp32 baseline for the int8 model: ONNX Runtime folds batch norms into
    its fp32 graph too (``ORT_ENABLE_ALL``), and the int8 conversion fuses them,
    so a speed-up over the unfolded model would count the folding as int8's gain.
    """
    from edgefit.compress.quantize.bn_fold import fold_batchnorm_

    m = _strip_act_quantizers(model)
    fold_batchnorm_(m)
    return m


def torchscript(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``model`` traced with TorchScript and optimized for inference (frozen), fp32 or int8 alike.

    ``torch.jit.optimize_for_inference(torch.jit.trace(model, example))``: one
    C++ graph with the weights inlined as constants and torch's inference passes
    applied (conv + batch-norm folding, oneDNN layouts for fp32 convolutions), so
    no Python runs per layer. At batch 1 that per-layer Python is most of an int8
    model's time in eager mode (each quantized op is a few microseconds of work).
    torch 2.13 warns that TorchScript is deprecated; the warnings are silenced here.

    Raises:
        ConfigError: the model does not trace (one line from torch).
    """
    try:
        with torch.no_grad(), _quiet_ao():
            return torch.jit.optimize_for_inference(torch.jit.trace(model.eval(), example))
    except Exception as e:  # noqa: BLE001  torch raises many kinds for an untraceable model
        raise ConfigError(f"TorchScript cannot trace the model: {_first_line(e)}") from e


def bench_torch_int8(model: nn.Module, input_shape: tuple[int, ...], *, batches=(1, 8), runs: int = 10,
                     warmup: int = 2, calibration=None, config: TorchInt8Config | None = None, threads: int = 1,
                     on_step=None) -> list[dict]:
    """Latency of ``model`` in torch fp32 and on torch's int8 kernels, per batch size.

    Callables timed in interleaved rounds, with ``threads`` intra-op threads
    (restored afterwards) under ``torch.inference_mode``:

    - ``fp32_eager``: the model as given (a copy, without a simulated model's
      activation quantizers, as every side);
    - ``fp32``: batch norms folded (:func:`fold_bn_fp32`), in Python;
    - ``fp32_channels_last``: the same with model and input in channels-last
      memory format, the layout oneDNN's convolutions run natively (4-D inputs);
    - ``fp32_torchscript``: the folded model through :func:`torchscript`;
    - ``int8``: :func:`convert_torch_int8`'s GraphModule, in Python;
    - ``int8_torchscript``: that model through :func:`torchscript`.

    A model TorchScript cannot trace is timed without the two TorchScript sides,
    and ``not_timed`` says why. ``calibration`` defaults to 16 standard-normal
    inputs (fine for timing; pass real inputs for accuracy). Returns one dict per
    batch size, as :func:`edgefit.accel.onnx.bench_onnxruntime` does: median and
    p90 seconds of each side, ``baseline`` (the fastest BN-folded fp32 side),
    ``int8_side`` (the faster int8 side) and ``speedup`` (baseline / int8 side):
    the best of each precision, on the same runtime.

    Raises:
        ConfigError: as :func:`convert_torch_int8`.
    """
    shape = tuple(input_shape)
    cal = timing_calibration(shape) if calibration is None else calibration
    int8 = convert_torch_int8(model, cal, config)
    models = {"fp32": fold_bn_fp32(model), "fp32_eager": _strip_act_quantizers(model), "int8": int8}
    last = torch.channels_last
    m_cl = fold_bn_fp32(model).to(memory_format=last) if len(shape) == 4 else None
    not_timed: dict = {}

    def fns_for(x: np.ndarray) -> dict:
        xt = torch.from_numpy(x)
        traced, why = _with_torchscript(models, xt)  # traced on this batch's shape
        not_timed.update(why)
        fns = {k: (lambda m=m: m(xt)) for k, m in traced.items()}
        if m_cl is not None:
            x_cl = xt.contiguous(memory_format=last)
            fns["fp32_channels_last"] = lambda: m_cl(x_cl)
        return fns

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode(), _quiet_ao():
            rows = time_batches(fns_for, shape, batches, runs=runs, warmup=warmup, on_step=on_step)
    finally:
        torch.set_num_threads(saved)
    return [{**best_of_each_precision(r), **({"not_timed": not_timed} if not_timed else {})} for r in rows]


def _with_torchscript(models: dict, example: torch.Tensor) -> tuple[dict, dict]:
    """``models`` plus TorchScript twins of its fp32 (BN folded) and int8 models, or why there are none."""
    try:
        return {**models, "fp32_torchscript": torchscript(models["fp32"], example),
                "int8_torchscript": torchscript(models["int8"], example)}, {}
    except ConfigError as e:
        return models, {"fp32_torchscript": str(e), "int8_torchscript": str(e)}


FP32_SIDES = ("fp32", "fp32_channels_last", "fp32_torchscript")
INT8_SIDES = ("int8", "int8_torchscript")


def best_of_each_precision(row: dict) -> dict:
    """``row`` with ``baseline`` (its fastest BN-folded fp32 side), ``int8_side`` (its
    fastest int8 side) and ``speedup`` = baseline / int8 side median seconds.

    >>> r = best_of_each_precision({"fp32": {"median_s": 0.03}, "fp32_channels_last": {"median_s": 0.024},
    ...                             "int8": {"median_s": 0.012}, "int8_torchscript": {"median_s": 0.01}})
    >>> r["baseline"], r["int8_side"], round(r["speedup"], 2)
    ('fp32_channels_last', 'int8_torchscript', 2.4)
    """
    def fastest(sides):
        return min((k for k in sides if k in row), key=lambda k: row[k]["median_s"])

    base, fast8 = fastest(FP32_SIDES), fastest(INT8_SIDES)
    return {**row, "baseline": base, "int8_side": fast8, "speedup": row[base]["median_s"] / row[fast8]["median_s"]}
