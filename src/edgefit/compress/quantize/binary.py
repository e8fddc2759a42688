"""Binary weights: BinaryConnect (Courbariaux et al., NeurIPS 2015) and Binary
Weight Nets (Rastegari et al., ECCV 2016); reference/003 "Binary Nets",
"Scale the Weights and Activations".

* BinaryConnect: ``w_b = +1 if w >= 0 else -1``; the latent float weights are
  trained through a straight-through estimator (gradient passed where
  ``|w| <= 1``) and clipped to ``[-1, 1]`` after each step.
* BWN: ``w_b = alpha sign(w)`` with one ``alpha = mean |W|`` per output filter
  (the l1-norm of the filter over its size).

Stored as 1 bit per weight plus the per-filter level table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgefit.compress.quantize._family import (
    FamilyConfig,
    QuantState,
    WeightQuantizer,
    filter_view,
    per_filter,
    sign_pm1,
    ste_clipped,
)
from edgefit.compress.quantize.registry import Family, register_quantizer


@dataclass(frozen=True)
class BinaryConnectConfig(FamilyConfig):
    """BinaryConnect: weights in {-1, +1}, float activations."""

    family = "binaryconnect"


@dataclass(frozen=True)
class BWNConfig(FamilyConfig):
    """Binary Weight Net: weights in {-alpha, +alpha} per filter, float activations.

    The lectures' BWN keeps the first and last layers in float: pass
    ``keep_first_last=True``.
    """

    family = "bwn"


def binary_codes(w: torch.Tensor) -> torch.Tensor:
    """1 where ``w >= 0`` (+1), 0 where negative (-1)."""
    return (w >= 0).to(torch.int64)


class SignWeight(WeightQuantizer):
    """BinaryConnect/BNN weights: ``sign(w)`` with a clipped straight-through gradient."""

    family = "binaryconnect"

    def forward(self, w):
        return ste_clipped(w, sign_pm1(w))

    def state(self, w):
        return QuantState(self.family, 1, binary_codes(w), levels=torch.tensor([[-1.0, 1.0]]))

    def clip_(self, w):
        with torch.no_grad():
            w.clamp_(-1.0, 1.0)


def bwn_alpha(w: torch.Tensor) -> torch.Tensor:
    """One scale per output filter: ``alpha = mean |W_filter|``.

    >>> bwn_alpha(torch.tensor([[0.5, -1.5], [0.2, 0.2]])).tolist()
    [1.0, 0.20000000298023224]
    """
    return per_filter(w).abs().mean(dim=1)


class ScaledSignWeight(WeightQuantizer):
    """BWN/XNOR-Net weights: ``alpha sign(w)``, one alpha per filter."""

    family = "bwn"

    def forward(self, w):
        return filter_view(bwn_alpha(w), w) * ste_clipped(w, sign_pm1(w))

    def state(self, w):
        a = bwn_alpha(w).to(torch.float32)
        return QuantState(self.family, 1, binary_codes(w), levels=torch.stack([-a, a], dim=1))


register_quantizer(Family("binaryconnect", BinaryConnectConfig, weight=lambda c, m, a, **_: SignWeight()))
register_quantizer(Family("bwn", BWNConfig, weight=lambda c, m, a, **_: ScaledSignWeight()))
