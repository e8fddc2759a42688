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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from edgefit.compress._layers import check_each, check_int_range, per_layer, select_layers
from edgefit.errors import ConfigError

LINEAR_BITS = (2, 16)


@dataclass(frozen=True)
class LinearQuantConfig:
    """Uniform quantization options.

    Attributes:
        bits: 2..16, one value or ``{layer: bits}``.
        symmetric: symmetric (zero point 0) or asymmetric (min/max) range.
        per_channel: one scale per output channel instead of per tensor.
        layers: layers to quantize (default: all Linear/Conv, or the keys of a mapping).
    """

    bits: int | Mapping[str, int] = 8
    symmetric: bool = False
    per_channel: bool = False
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_each(self.bits, check_int_range(*LINEAR_BITS), "bits")
        for k in ("symmetric", "per_channel"):
            if not isinstance(getattr(self, k), bool):
                raise ConfigError(f"{k} must be True or False, got {getattr(self, k)!r}")
        if self.layers is not None:
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


def linear_quantize_(model: nn.Module, config: LinearQuantConfig) -> dict[str, QuantizedTensor]:
    """Replace each selected layer's weight by its dequantized value, in place."""
    names = config.layers or (tuple(config.bits) if isinstance(config.bits, Mapping) else None)
    layers = select_layers(model, names)
    out = {}
    for name, bits in per_layer(config.bits, layers, "bits").items():
        m = layers[name]
        qt = linear_quantize(m.weight, int(bits), symmetric=config.symmetric, per_channel=config.per_channel)
        with torch.no_grad():
            keep = m.weight != 0
            m.weight.copy_(torch.where(keep, qt.dequantize(), torch.zeros(())).to(m.weight.dtype))
        m.edgefit_linear = qt
        out[name] = qt
    return out


def sqnr_db(original: torch.Tensor, quantized: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum w^2 / sum (w - w_hat)^2)`` in dB."""
    x = original.detach().to(torch.float64)
    noise = float(((x - quantized.detach().to(torch.float64)) ** 2).sum())
    signal = float((x**2).sum())
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)
