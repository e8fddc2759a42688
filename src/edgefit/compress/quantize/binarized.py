"""Binary weights and activations: BNN (Courbariaux et al., 2016) and XNOR-Net
(Rastegari et al., ECCV 2016); reference/003 "Binary Nets", reference/004
"XNOR-Net".

* BNN: weights ``sign(w)``, activations ``sign(x)`` (+1 where ``x > 0``), so a
  multiply-accumulate is an XNOR and a popcount.
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

from dataclasses import dataclass

from edgefit.compress.quantize._family import FamilyConfig
from edgefit.compress.quantize.activation import SignAct, XnorAct
from edgefit.compress.quantize.binary import ScaledSignWeight, SignWeight
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


class _BNNWeight(SignWeight):
    family = "bnn"


class _XnorWeight(ScaledSignWeight):
    family = "xnor"


register_quantizer(Family("bnn", BNNConfig, weight=lambda c, m, a, **_: _BNNWeight(), act=lambda c, m, s: SignAct(clip=False),
                          image_input_float=True))
register_quantizer(Family("xnor", XNORConfig, weight=lambda c, m, a, **_: _XnorWeight(), act=lambda c, m, s: XnorAct(),
                          image_input_float=True))
