"""Dynamic fixed point (Gysel et al., Ristretto, 2016); reference/003 "Dynamic
Fixed Point": each layer's weights and activations get their own fractional
length ``fl = bits - (ceil(log2 max|x|) + 1)``, so ``x_hat = q 2**-fl`` with
``q`` a signed ``bits``-bit integer. The lectures' summary: 8-bit weights and
10-bit activations lose 0.4 %, 8/8 with fine-tuning 0.6 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgefit.compress.quantize._family import FamilyConfig, QuantState, WeightQuantizer, ste
from edgefit.compress.quantize.activation import FixedAct, fixed_point, fractional_length
from edgefit.compress.quantize.registry import Family, register_quantizer


@dataclass(frozen=True)
class FixedPointConfig(FamilyConfig):
    """Dynamic fixed point: ``bits`` per weight (2..16), ``act_bits`` per activation (None: float)."""

    bits: int = 8
    act_bits: int | None = None
    family = "fixed"
    weight_bits = (2, 16)
    act_bits_range = (2, 16)


def weight_fl(w: torch.Tensor, bits: int) -> int:
    return fractional_length(float(w.detach().abs().max()) if w.numel() else 0.0, bits)


class FixedWeight(WeightQuantizer):
    family = "fixed"

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, w):
        return ste(w, fixed_point(w.detach(), self.bits, weight_fl(w, self.bits)))

    def state(self, w):
        fl = weight_fl(w, self.bits)
        half = 2 ** (self.bits - 1)
        q = torch.clamp(torch.round(w.to(torch.float64) * 2.0**fl), -half, half - 1).to(torch.int64)
        return QuantState(self.family, self.bits, q + half, scale=torch.tensor([2.0**-fl], dtype=torch.float64),
                          zero_point=torch.tensor([half]))


register_quantizer(Family("fixed", FixedPointConfig, weight=lambda c, m, a, **_: FixedWeight(c.bits),
                          act=lambda c, m, s: FixedAct.calibrated(s, c.act_bits), act_needs_data=True))
