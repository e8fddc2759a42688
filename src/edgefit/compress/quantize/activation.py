"""Activation quantizers (forward pre-hooks on a layer) and their calibration.

* ``uniform``: asymmetric ``bits``-bit, ``x_hat = (clamp(round(x / s) + z, 0, 2**b - 1) - z) * s``;
  the range comes from calibration: ``minmax``, ``percentile`` (the 0.01 and
  99.99 percentiles) or ``mse`` (the clipped range, among 100 candidates, with
  the least mean squared error on the calibration sample).
* ``fixed``: dynamic fixed point, ``x_hat = clamp(round(x 2**fl), -2**(b-1), 2**(b-1) - 1) 2**-fl``
  with ``fl = b - (ceil(log2 max|x|) + 1)`` from calibration.
* ``sign``: BNN, +1 where ``x > 0``, else -1 (a ReLU's zeros become -1).
* ``xnor``: XNOR-Net, ``sign(x)`` in, the layer's output (before bias) times
  ``K`` = mean over channels of ``|x|``, averaged over each output's receptive
  field (the per-position ``beta``).
* ``log``: LogNet, ``x_hat = sign(x) 2**e``, ``e = round(log2 |x|)`` clipped to the
  ``2**b - 1`` (unsigned) or ``2**(b-1) - 1`` (signed) exponents below ``fsr =
  round(log2 max|x|)``; below the smallest exponent the value is 0.

Every quantizer passes gradients straight through (sign: only where ``|x| <= 1``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgefit.compress.quantize._family import (
    ActQuantizer,
    ActStats,
    register_act,
    sign_pm1,
    ste,
    ste_clipped,
    xnor_scale_map,
)
from edgefit.errors import ConfigError

CALIBRATION_METHODS = ("minmax", "percentile", "mse")


def _fake_uniform(x: torch.Tensor, scale: float, zp: int, bits: int) -> torch.Tensor:
    q = torch.clamp(torch.round(x / scale) + zp, 0, 2**bits - 1)
    return (q - zp) * scale


def uniform_range(stats: ActStats, bits: int, method: str) -> tuple[float, float]:
    """The (lo, hi) range a calibration method picks; zero always inside."""
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"calibration must be one of {CALIBRATION_METHODS}, got {method!r}")
    lo, hi = min(stats.lo, 0.0), max(stats.hi, 0.0)
    v = stats.values()
    if method == "percentile" and v.numel():
        q = torch.quantile(v.double(), torch.tensor([1e-4, 1 - 1e-4], dtype=torch.float64))
        lo, hi = min(float(q[0]), 0.0), max(float(q[1]), 0.0)
    elif method == "mse" and v.numel():
        best = None
        for frac in torch.linspace(0.01, 1.0, 100).tolist():
            s, z = uniform_params(lo * frac, hi * frac, bits)
            err = float(((_fake_uniform(v, s, z, bits) - v) ** 2).mean())
            if best is None or err < best[0]:
                best = (err, lo * frac, hi * frac)
        lo, hi = best[1], best[2]
    return lo, hi


def uniform_params(lo: float, hi: float, bits: int) -> tuple[float, int]:
    """Asymmetric scale and zero point over ``[min(lo, 0), max(hi, 0)]``.

    >>> uniform_params(-1.0, 2.0, 2)
    (1.0, 1)
    """
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (2**bits - 1) or 1.0
    zp = int(min(max(round(-lo / scale), 0), 2**bits - 1))
    return float(scale), zp


@register_act
class UniformAct(ActQuantizer):
    kind = "uniform"

    def __init__(self, bits: int, scale: float, zero_point: int) -> None:
        self.bits, self.scale, self.zero_point = int(bits), float(scale), int(zero_point)

    @classmethod
    def calibrated(cls, stats: ActStats, bits: int, method: str) -> UniformAct:
        return cls(bits, *uniform_params(*uniform_range(stats, bits, method), bits))

    def quantize(self, x):
        return ste(x, _fake_uniform(x, self.scale, self.zero_point, self.bits))

    def spec(self):
        return {"kind": self.kind, "bits": self.bits, "scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_spec(cls, s):
        return cls(s["bits"], s["scale"], s["zero_point"])


def fractional_length(max_abs: float, bits: int) -> int:
    """Dynamic fixed point: ``fl = bits - (ceil(log2 max|x|) + 1)`` (one sign bit).

    >>> fractional_length(0.7, 4), fractional_length(5.0, 8)
    (3, 4)
    """
    if max_abs <= 0 or not math.isfinite(max_abs):
        return bits - 1
    return bits - (math.ceil(math.log2(max_abs)) + 1)


def fixed_point(x: torch.Tensor, bits: int, fl: int) -> torch.Tensor:
    """``clamp(round(x 2**fl), -2**(bits-1), 2**(bits-1) - 1) 2**-fl`` (exact powers of two)."""
    q = torch.clamp(torch.round(x * 2.0**fl), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return q * 2.0**-fl


@register_act
class FixedAct(ActQuantizer):
    kind = "fixed"

    def __init__(self, bits: int, fl: int) -> None:
        self.bits, self.fl = int(bits), int(fl)

    @classmethod
    def calibrated(cls, stats: ActStats, bits: int) -> FixedAct:
        return cls(bits, fractional_length(max(abs(stats.lo), abs(stats.hi)), bits))

    def quantize(self, x):
        return ste(x, fixed_point(x, self.bits, self.fl))

    def spec(self):
        return {"kind": self.kind, "bits": self.bits, "fl": self.fl}

    @classmethod
    def from_spec(cls, s):
        return cls(s["bits"], s["fl"])


@register_act
class SignAct(ActQuantizer):
    """Binary activations; ``clip``: the gradient passes only where ``|x| <= 1`` (hardtanh STE)."""

    kind = "sign"
    bits = 1

    def __init__(self, clip: bool = True) -> None:
        self.clip = bool(clip)

    def quantize(self, x):
        y = sign_pm1(x, strict=True)
        return ste_clipped(x, y) if self.clip else ste(x, y)

    def spec(self):
        return {"kind": self.kind, "clip": self.clip}

    @classmethod
    def from_spec(cls, s):
        return cls(s.get("clip", True))


@register_act
class XnorAct(SignAct):
    """Binary input plus the per-position scale ``K`` applied to the layer's output."""

    kind = "xnor"

    def __call__(self, module, args):
        x = args[0]
        module._edgefit_k = xnor_scale_map(x, module)
        return (self.quantize(x), *args[1:])

    @staticmethod
    def scale_output(module, args, out):
        k = module.__dict__.pop("_edgefit_k", None)
        if k is None:
            return out
        if module.bias is None:
            return out * k
        b = module.bias.reshape((-1,) + (1,) * (out.ndim - 2)) if out.ndim > 2 else module.bias
        return (out - b) * k + b

    def install(self, module: nn.Module) -> None:
        super().install(module)
        module._edgefit_out_handle = module.register_forward_hook(self.scale_output)


def log_quantize(x: torch.Tensor, bits: int, fsr: int, signed: bool) -> torch.Tensor:
    """LogNet: ``sign(x) 2**clip(round(log2|x|))``, 0 below the smallest exponent.

    >>> log_quantize(torch.tensor([0.3, -1.2, 0.01, 0.0]), 3, 0, True).tolist()
    [0.25, -1.0, 0.0, 0.0]
    """
    n = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    emin = fsr - n + 1
    mag = x.abs()
    e = torch.round(torch.log2(torch.where(mag > 0, mag, torch.ones((), dtype=x.dtype))))
    e = torch.clamp(e, max=fsr)
    val = torch.where((mag > 0) & (e >= emin), 2.0**e, torch.zeros((), dtype=x.dtype))
    if signed:
        return torch.sign(x) * val
    return torch.where(x > 0, val, torch.zeros((), dtype=x.dtype))


@register_act
class LogAct(ActQuantizer):
    kind = "log"

    def __init__(self, bits: int, fsr: int, signed: bool) -> None:
        self.bits, self.fsr, self.signed = int(bits), int(fsr), bool(signed)

    @classmethod
    def calibrated(cls, stats: ActStats, bits: int) -> LogAct:
        top = max(abs(stats.lo), abs(stats.hi))
        fsr = round(math.log2(top)) if top > 0 else 0
        return cls(bits, fsr, stats.lo < 0)

    def quantize(self, x):
        return ste(x, log_quantize(x, self.bits, self.fsr, self.signed))

    def spec(self):
        return {"kind": self.kind, "bits": self.bits, "fsr": self.fsr, "signed": self.signed}

    @classmethod
    def from_spec(cls, s):
        return cls(s["bits"], s["fsr"], s["signed"])
