"""Linear (uniform) n-bit quantization, symmetric or asymmetric, per tensor or
per output channel.

The 8-bit recipe of reference/004 ("8-bit uniform quantization"): divide the
range between the min and max weight into 256 equal steps, round each weight to
the nearest point, store 8-bit integers. Conventions:

* asymmetric: ``scale = (max - min) / (2**bits - 1)`` over ``[min(w, 0), max(w, 0)]``
  (zero is always in range, so zero is exact), ``zero_point = round(-min / scale)``,
  ``q = clamp(round(w / scale) + zero_point, 0, 2**bits - 1)``,
  ``w_hat = (q - zero_point) * scale``;
* symmetric: ``scale = max|w| / (2**(bits-1) - 1)``, ``q`` in
  ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` (the restricted range), ``w_hat = q * scale``;
* per channel: one scale (and zero point) per slice along axis 0 (output channels).

Pruned weights stay zero (they are masked back after rounding).

Activations (``act_bits``): asymmetric uniform, range from calibration data
(``minmax``, ``percentile`` or ``mse``, see :mod:`.activation`); then the bias
is stored as int32 at ``scale_w * scale_x`` (per channel with per-channel
weights), as an integer kernel adds it. ``fold_bn`` first folds every
BatchNorm that directly follows a conv into the conv's weight and bias.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from edgefit.compress._layers import WEIGHT_LAYERS, check_each, check_int_range
from edgefit.compress.quantize._family import (
    FamilyConfig,
    QuantState,
    WeightQuantizer,
    bits_for,
    ste,
)
from edgefit.compress.quantize.activation import CALIBRATION_METHODS, UniformAct
from edgefit.compress.quantize.bn_fold import fold_batchnorm_
from edgefit.compress.quantize.registry import Family, quantize_, register_quantizer
from edgefit.errors import ConfigError

LINEAR_BITS = (2, 16)


@dataclass(frozen=True)
class LinearQuantConfig(FamilyConfig):
    """Uniform quantization options.

    Attributes:
        bits: 2..16, one value or ``{layer: bits}``.
        symmetric: symmetric (zero point 0) or asymmetric (min/max) range.
        per_channel: one scale per output channel instead of per tensor.
        act_bits: activation bits (2..16), None for float activations.
        calibration: activation range method: ``minmax``, ``percentile`` or ``mse``.
        fold_bn: fold BatchNorm layers into the convs before quantizing.
        keep_first_last: leave the first and last weight layers in float.
        layers: layers to quantize (default: all Linear/Conv, or the keys of a mapping).
    """

    bits: int | Mapping[str, int] = 8
    symmetric: bool = False
    per_channel: bool = False
    act_bits: int | None = None
    calibration: str = "minmax"
    fold_bn: bool = False
    keep_first_last: bool = False
    layers: tuple[str, ...] | None = None

    family = "linear"
    layer_types = WEIGHT_LAYERS

    def __post_init__(self) -> None:
        check_each(self.bits, check_int_range(*LINEAR_BITS), "bits")
        for k in ("symmetric", "per_channel", "fold_bn", "keep_first_last"):
            if not isinstance(getattr(self, k), bool):
                raise ConfigError(f"{k} must be True or False, got {getattr(self, k)!r}")
        if self.act_bits is not None:
            check_int_range(*LINEAR_BITS)(self.act_bits, "act_bits")
        if self.calibration not in CALIBRATION_METHODS:
            raise ConfigError(f"calibration must be one of {CALIBRATION_METHODS}, got {self.calibration!r}")
        if self.layers is None and isinstance(self.bits, Mapping):
            object.__setattr__(self, "layers", tuple(self.bits))
        elif self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))


@dataclass
class QuantizedTensor:
    """Integers and the affine map back: ``w_hat = (q - zero_point) * scale``.

    ``scale`` and ``zero_point`` are scalars (per tensor) or shaped to broadcast
    along axis 0 (per channel).
    """

    q: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    bits: int
    symmetric: bool

    def dequantize(self) -> torch.Tensor:
        return ((self.q - self.zero_point).to(torch.float64) * self.scale).to(torch.float32)


def linear_quantize(
    w: torch.Tensor, bits: int = 8, *, symmetric: bool = False, per_channel: bool = False
) -> QuantizedTensor:
    """Quantize ``w`` to ``bits``-bit integers.

    >>> qt = linear_quantize(torch.tensor([-1.0, 0.0, 1.0, 2.0]), bits=2)
    >>> qt.q.tolist(), float(qt.scale), int(qt.zero_point)
    ([0, 1, 2, 3], 1.0, 1)
    """
    check_int_range(*LINEAR_BITS)(bits, "bits")
    x = w.detach().to(torch.float64)
    if per_channel and x.ndim >= 1:
        flat = x.reshape(x.shape[0], -1)
        lo, hi = flat.min(dim=1).values, flat.max(dim=1).values
        view = (-1,) + (1,) * (x.ndim - 1)
    else:
        lo, hi = x.min(), x.max()
        view = ()
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = torch.maximum(hi, -lo) / qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale)).reshape(view)
        q = torch.clamp(torch.round(x / scale), -qmax, qmax)
        zp = torch.zeros_like(scale)
    else:
        qmax = 2**bits - 1
        scale = (hi - lo) / qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale)).reshape(view)
        zp = torch.clamp(torch.round(-lo.reshape(view) / scale), 0, qmax)
        q = torch.clamp(torch.round(x / scale) + zp, 0, qmax)
    return QuantizedTensor(q.to(torch.int64), scale, zp.to(torch.int64), bits, symmetric)


class LinearWeight(WeightQuantizer):
    """``bits``-bit uniform weights; with an activation quantizer, an int32 bias too."""

    family = "linear"

    def __init__(self, bits: int, config: LinearQuantConfig, act: UniformAct | None, module: nn.Module) -> None:
        super().__init__()
        self.bits, self.symmetric, self.per_channel = bits, config.symmetric, config.per_channel
        self.act, self.module = act, [module]  # a list: not a submodule

    def quantized(self, w: torch.Tensor) -> QuantizedTensor:
        return linear_quantize(w, self.bits, symmetric=self.symmetric, per_channel=self.per_channel)

    def forward(self, w):
        keep = w.detach() != 0
        return ste(w, torch.where(keep, self.quantized(w).dequantize(), torch.zeros(())).to(w.dtype))

    def state(self, w):
        qt = self.quantized(w)
        qmin = -(2 ** (self.bits - 1) - 1) if self.symmetric else 0
        scale, zp = qt.scale.reshape(-1), qt.zero_point.reshape(-1)
        st = QuantState(self.family, self.bits, qt.q - qmin, scale=scale, zero_point=zp - qmin)
        m = self.module[0]
        m.edgefit_linear = qt
        if self.act is not None and getattr(m, "bias", None) is not None:
            st.bias_scale = scale * self.act.scale
            st.bias_codes = torch.clamp(torch.round(m.bias.detach().to(torch.float64) / st.bias_scale),
                                        -(2**31), 2**31 - 1).to(torch.int64)
        return st


def _linear_weight(config: LinearQuantConfig, m: nn.Module, act, name: str) -> LinearWeight:
    return LinearWeight(bits_for(config, name), config, act, m)


def _prepare(model: nn.Module, config: LinearQuantConfig) -> None:
    if config.fold_bn:
        fold_batchnorm_(model)


register_quantizer(Family("linear", LinearQuantConfig, weight=_linear_weight,
                          act=lambda c, m, s: UniformAct.calibrated(s, c.act_bits, c.calibration),
                          act_needs_data=True, prepare=_prepare))


def linear_quantize_(model: nn.Module, config: LinearQuantConfig, *, calibration=None) -> dict[str, QuantizedTensor]:
    """Replace each selected layer's weight by its dequantized value, in place.

    Returns ``{layer: QuantizedTensor}``; the stored state is on ``module.edgefit_quant``.
    """
    states = quantize_(model, config, calibration=calibration)
    mods = dict(model.named_modules())
    return {n: mods[n].edgefit_linear for n in states}


def sqnr_db(original: torch.Tensor, quantized: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum w^2 / sum (w - w_hat)^2)`` in dB."""
    x = original.detach().to(torch.float64)
    noise = float(((x - quantized.detach().to(torch.float64)) ** 2).sum())
    signal = float((x**2).sum())
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)
