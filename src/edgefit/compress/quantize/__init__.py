"""Quantization: every reduced-precision family of the lectures behind one verb.

``quantize_(model, config)`` dispatches on the config's type through a
registry (:mod:`.registry`); each family is one file:

==================  ======================  =====================================
config              ``--method``            weights / activations
==================  ======================  =====================================
LinearQuantConfig   linear                  n-bit uniform / n-bit (calibrated)
FixedPointConfig    fixed                   dynamic fixed point, per-layer fl
BinaryConnectConfig binaryconnect           {-1, +1} / float
BWNConfig           bwn                     {-a, +a} per filter / float
TWNConfig           twn                     {-a, 0, +a} / float
TTQConfig           ttq                     {-Wn, 0, +Wp} learned / float
BNNConfig           bnn                     {-1, +1} / {-1, +1}
XNORConfig          xnor                    {-a, +a} / {-b_i, +b_i}
LogConfig           lognet                  sign x 2^e / 2^e
KMeansConfig        kmeans                  shared codebook / float
==================  ======================  =====================================

>>> from edgefit.compress.quantize import quantize_, KMeansConfig, LinearQuantConfig, TTQConfig
>>> # quantize_(model, KMeansConfig(bits=5)); quantize_(model, LinearQuantConfig(bits=8))
>>> # quantize_aware_train_(model, load_digits(), TTQConfig(), TrainConfig(epochs=10))
"""

from __future__ import annotations

from edgefit.compress._layers import expand_kinds
from edgefit.compress.quantize._family import (
    FamilyConfig,
    QuantState,
    QuantStates,
    act_from_spec,
    quant_states,
    remove_act_quantizer,
)
from edgefit.compress.quantize.binarized import BNNConfig, XNORConfig
from edgefit.compress.quantize.binary import BinaryConnectConfig, BWNConfig
from edgefit.compress.quantize.bn_fold import fold_batchnorm_
from edgefit.compress.quantize.fixed_point import FixedPointConfig
from edgefit.compress.quantize.kmeans import (
    KMEANS_BITS,
    KMeansConfig,
    KMeansState,
    finetune_centroids_,
    kmeans_1d,
    kmeans_quantize_,
    kmeans_states,
)
from edgefit.compress.quantize.linear import (
    LINEAR_BITS,
    LinearQuantConfig,
    QuantizedTensor,
    linear_quantize,
    linear_quantize_,
    sqnr_db,
)
from edgefit.compress.quantize.log import LogConfig
from edgefit.compress.quantize.qat import quantize_aware_train_
from edgefit.compress.quantize.registry import (
    METHODS,
    QUANTIZERS,
    Family,
    method,
    quantize_,
    register_quantizer,
)
from edgefit.compress.quantize.ternary import TTQConfig, TWNConfig

register_quantizer(Family("kmeans", KMeansConfig, apply=kmeans_quantize_))

__all__ = [
    "KMEANS_BITS",
    "LINEAR_BITS",
    "METHODS",
    "QUANTIZERS",
    "BNNConfig",
    "BWNConfig",
    "BinaryConnectConfig",
    "Family",
    "FamilyConfig",
    "FixedPointConfig",
    "KMeansConfig",
    "KMeansState",
    "LinearQuantConfig",
    "LogConfig",
    "QuantState",
    "QuantStates",
    "QuantizedTensor",
    "TTQConfig",
    "TWNConfig",
    "XNORConfig",
    "act_from_spec",
    "expand_kinds",
    "finetune_centroids_",
    "fold_batchnorm_",
    "kmeans_1d",
    "kmeans_quantize_",
    "kmeans_states",
    "linear_quantize",
    "linear_quantize_",
    "method",
    "quant_states",
    "quantize_",
    "quantize_aware_train_",
    "register_quantizer",
    "remove_act_quantizer",
    "sqnr_db",
]
