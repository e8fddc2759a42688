"""LogNet / power-of-two quantization (Lee et al., ICASSP 2017; Miyashita et
al., 2016); reference/003 "Log Domain Quantization": ``X * W`` becomes ``X << W``.

Weights: ``w_hat = sign(w) 2**e``, ``e = round(log2 |w|)`` clipped to the
``2**(bits-1) - 1`` exponents below ``fsr = round(log2 max |W|)``; smaller
magnitudes become 0. A code is one sign bit and ``bits - 1`` exponent bits
(exponent code 0 is zero). Activations (``act_bits``) the same, calibrated,
unsigned when every calibration input is >= 0 (after a ReLU).

``bits`` is one width or ``{layer: bits}``; the lectures' summary table gives
LogNet 5-bit conv and 4-bit fc weights with 4-bit activations (3.2 % loss):
``LogConfig(bits=expand_kinds({"conv": 5, "fc": 4}, model), act_bits=4)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from edgefit.compress.quantize._family import (
    FamilyConfig,
    QuantState,
    WeightQuantizer,
    bits_for,
    ste,
)
from edgefit.compress.quantize.activation import LogAct, log_quantize
from edgefit.compress.quantize.registry import Family, register_quantizer


@dataclass(frozen=True)
class LogConfig(FamilyConfig):
    """LogNet options.

    Attributes:
        bits: bits per weight code (3..5), one value or ``{layer: bits}`` (layers
            the mapping does not name stay float and are reported).
        act_bits: activation bits (3..5), None for float activations.
    """

    bits: int | Mapping[str, int] = 5
    act_bits: int | None = None
    family = "lognet"
    weight_bits = (3, 5)
    act_bits_range = (3, 5)
    per_layer_bits = True


def log_fsr(w: torch.Tensor) -> int:
    """``round(log2 max|w|)``: the largest exponent."""
    top = float(w.detach().abs().max()) if w.numel() else 0.0
    return round(math.log2(top)) if top > 0 else 0


def log_levels(bits: int, fsr: int) -> torch.Tensor:
    """The ``2**bits`` values a code stands for: ``[0, 2**emin .. 2**fsr, 0, -2**emin .. -2**fsr]``.

    >>> log_levels(3, 0).tolist()
    [0.0, 0.25, 0.5, 1.0, 0.0, -0.25, -0.5, -1.0]
    """
    n = 2 ** (bits - 1) - 1
    mags = [0.0] + [2.0 ** (fsr - n + k) for k in range(1, n + 1)]
    return torch.tensor(mags + [-m if m else 0.0 for m in mags], dtype=torch.float32)


class LogWeight(WeightQuantizer):
    family = "lognet"

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, w):
        return ste(w, log_quantize(w.detach(), self.bits, log_fsr(w), True))

    def state(self, w):
        fsr = log_fsr(w)
        q = log_quantize(w, self.bits, fsr, True)
        half = 2 ** (self.bits - 1)
        n = half - 1
        mag = torch.where(q != 0, torch.round(torch.log2(q.abs().clamp(min=1e-38))) - (fsr - n), torch.zeros(()))
        codes = mag.to(torch.int64) + torch.where(q < 0, half, 0)
        return QuantState(self.family, self.bits, codes, levels=log_levels(self.bits, fsr).reshape(1, -1))


register_quantizer(Family("lognet", LogConfig, weight=lambda c, m, a, name: LogWeight(bits_for(c, name)),
                          act=lambda c, m, s: LogAct.calibrated(s, c.act_bits), act_needs_data=True))
