"""Ternary weights: TWN (Li et al., 2016) and TTQ (Zhu et al., ICLR 2017);
reference/003 "Ternary Nets".

* TWN: threshold ``delta = 0.7 mean |W|`` per layer; ``alpha`` = mean ``|w|``
  of the weights above it; ``w_t = +alpha (w > delta), -alpha (w < -delta), 0``.
* TTQ: threshold ``delta = t max |W|`` (``t = 0.05``), and two *learned*
  scales per layer, ``W_p`` for the positive and ``W_n`` for the negative
  weights (initialised to the mean magnitude of each side); ``W_p`` gets the
  sum of its weights' gradients, ``W_n`` minus the sum of its own, and the
  latent weights get the gradient scaled by ``W_p``, 1 or ``W_n`` (paper Eq. 7-8).

Stored as 2-bit codes (0: negative, 1: zero, 2: positive) plus the level table.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgefit.compress.quantize._family import FamilyConfig, QuantState, WeightQuantizer, ste
from edgefit.compress.quantize.registry import Family, register_quantizer
from edgefit.errors import ConfigError


def _check_threshold(v, what: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1.5:
        raise ConfigError(f"{what} must be a number in (0, 1.5), got {v!r}")


@dataclass(frozen=True)
class TWNConfig(FamilyConfig):
    """Ternary Weight Net: weights in {-alpha, 0, alpha}; ``threshold`` x mean |W| is delta."""

    threshold: float = 0.7
    family = "twn"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_threshold(self.threshold, "threshold")


@dataclass(frozen=True)
class TTQConfig(FamilyConfig):
    """Trained Ternary Quantization: weights in {-W_n, 0, W_p}; delta = ``threshold`` x max |W|."""

    threshold: float = 0.05
    family = "ttq"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_threshold(self.threshold, "threshold")


def ternary_codes(w: torch.Tensor, delta) -> torch.Tensor:
    """0 below ``-delta``, 2 above ``delta``, 1 between."""
    return (w > delta).to(torch.int64) - (w < -delta).to(torch.int64) + 1


def twn(w: torch.Tensor, threshold: float = 0.7) -> tuple[torch.Tensor, torch.Tensor]:
    """TWN's (delta, alpha) for one layer.

    >>> d, a = twn(torch.tensor([1.0, -0.5, 0.1, -0.2]))
    >>> round(float(d), 4), round(float(a), 4)
    (0.315, 0.75)
    """
    delta = threshold * w.abs().mean()
    big = w.abs() > delta
    alpha = w.abs()[big].mean() if bool(big.any()) else torch.zeros((), dtype=w.dtype)
    return delta, alpha


class TWNWeight(WeightQuantizer):
    family = "twn"

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, w):
        delta, alpha = twn(w.detach(), self.threshold)
        return ste(w, alpha * (ternary_codes(w.detach(), delta) - 1).to(w.dtype))

    def state(self, w):
        delta, alpha = twn(w, self.threshold)
        a = alpha.to(torch.float32)
        return QuantState(self.family, 2, ternary_codes(w, delta), levels=torch.stack([-a, a * 0, a]).reshape(1, 3))


class TTQWeight(WeightQuantizer):
    family = "ttq"

    def __init__(self, threshold: float, w: torch.Tensor) -> None:
        super().__init__()
        self.threshold = threshold
        w = w.detach()
        delta = threshold * w.abs().max()
        pos, neg = w > delta, w < -delta
        self.wp = nn.Parameter(w[pos].mean().reshape(()) if bool(pos.any()) else w.abs().max().reshape(()))
        self.wn = nn.Parameter((-w[neg]).mean().reshape(()) if bool(neg.any()) else w.abs().max().reshape(()))

    def forward(self, w):
        delta = self.threshold * w.detach().abs().max()
        pos, neg = (w > delta).to(w.dtype), (w < -delta).to(w.dtype)
        grad_scale = self.wp.detach() * pos + self.wn.detach() * neg + (1 - pos - neg)
        scaled = w * grad_scale
        return scaled - scaled.detach() + self.wp * pos - self.wn * neg

    def state(self, w):
        delta = self.threshold * w.abs().max()
        p, n = self.wp.detach().to(torch.float32), self.wn.detach().to(torch.float32)
        return QuantState(self.family, 2, ternary_codes(w, delta), levels=torch.stack([-n, p * 0, p]).reshape(1, 3))


register_quantizer(Family("twn", TWNConfig, weight=lambda c, m, a, **_: TWNWeight(c.threshold)))
register_quantizer(Family("ttq", TTQConfig, weight=lambda c, m, a, **_: TTQWeight(c.threshold, m.weight)))
