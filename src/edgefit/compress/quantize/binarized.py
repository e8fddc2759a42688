"""Binary weights and activations: BNN (Courbariaux et al., 2016) and XNOR-Net
(Rastegari et al., ECCV 2016); reference/003 "Binary Nets", reference/004
"XNOR-Net".

* BNN: weights ``sign(w)``, activations ``sign(x)`` (+1 where ``x > 0``), so a
  multiply-accumulate is an XNOR and a popcount. The paper follows every binary
  layer with batch normalization; these networks have none, so each layer's
  integer output is scaled by the constant ``1 / sqrt(fan_in)`` instead (stored
  as the level table ``[-c, c]``; at inference it folds into the next layer's
  threshold). Without it a +-1 layer's pre-activations lie far outside [-1, 1],
  the clipped straight-through estimator passes almost no gradient, and training
  collapses (digits LeNet-5 and small convnet: 38 and 74 pp lost; with it, 4-6).
* XNOR-Net: weights ``alpha sign(w)`` (alpha per filter, as BWN) and
  activations ``beta_i sign(x)``, where ``beta_i`` is the mean of ``|x|``
  across channels at position ``i``, averaged over each output's receptive
  field (the paper's ``K``); the layer computes
  ``(sign(x) (*) sign(W)) K alpha + bias``.

The first layer's input is the image, not an activation: it is not binarized
(BNN feeds it as fixed point; XNOR-Net keeps the first layer in float).
Grouped convolutions are kept in float (reported in ``skipped``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from edgefit.compress.quantize._family import FamilyConfig, QuantState, sign_pm1, ste_clipped
from edgefit.compress.quantize.activation import SignAct, XnorAct
from edgefit.compress.quantize.binary import ScaledSignWeight, SignWeight, binary_codes
from edgefit.compress.quantize.registry import Family, register_quantizer


@dataclass(frozen=True)
class BNNConfig(FamilyConfig):
    """Binarized Neural Net: weights and activations in {-1, +1}."""

    family = "bnn"


@dataclass(frozen=True)
class XNORConfig(FamilyConfig):
    """XNOR-Net: weights {-alpha, alpha} per filter, activations {-beta_i, beta_i} per position.

    The lectures' XNOR-Net keeps the first and last layers in float: pass
    ``keep_first_last=True``.
    """

    family = "xnor"


def bnn_scale(w: torch.Tensor) -> float:
    """``1 / sqrt(fan_in)``: the constant each BNN layer's +-1 output is scaled by.

    >>> bnn_scale(torch.zeros(10, 4, 3, 3))
    0.16666666666666666
    """
    return 1.0 / math.sqrt(w[0].numel()) if w.numel() else 1.0


class _BNNWeight(SignWeight):
    """+-1 weights; the layer's integer XNOR-popcount output is scaled by ``1 / sqrt(fan_in)``."""

    family = "bnn"

    def forward(self, w):
        return bnn_scale(w) * ste_clipped(w, sign_pm1(w))

    def state(self, w):
        c = bnn_scale(w)
        return QuantState(self.family, 1, binary_codes(w), levels=torch.tensor([[-c, c]]))


class _XnorWeight(ScaledSignWeight):
    family = "xnor"


register_quantizer(Family("bnn", BNNConfig, weight=lambda c, m, a, **_: _BNNWeight(), act=lambda c, m, s: SignAct(),
                          image_input_float=True))
register_quantizer(Family("xnor", XNORConfig, weight=lambda c, m, a, **_: _XnorWeight(), act=lambda c, m, s: XnorAct(),
                          image_input_float=True))
