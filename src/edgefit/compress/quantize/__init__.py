"""Quantization: k-means weight sharing with centroid fine-tuning, and linear
(uniform) n-bit quantization. One verb, dispatched on the config type:

>>> from edgefit.compress.quantize import quantize_, KMeansConfig, LinearQuantConfig
>>> # quantize_(model, KMeansConfig(bits=5)); quantize_(model, LinearQuantConfig(bits=8))
"""

from __future__ import annotations

from torch import nn

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
from edgefit.errors import ConfigError


def quantize_(model: nn.Module, config: KMeansConfig | LinearQuantConfig) -> dict:
    """Quantize ``model``'s Linear/Conv weights in place; returns per-layer states."""
    if isinstance(config, KMeansConfig):
        return kmeans_quantize_(model, config)
    if isinstance(config, LinearQuantConfig):
        return linear_quantize_(model, config)
    raise ConfigError(f"quantize_ takes a KMeansConfig or LinearQuantConfig, got {type(config).__name__}")


__all__ = [
    "KMEANS_BITS",
    "LINEAR_BITS",
    "KMeansConfig",
    "KMeansState",
    "LinearQuantConfig",
    "QuantizedTensor",
    "finetune_centroids_",
    "kmeans_1d",
    "kmeans_quantize_",
    "kmeans_states",
    "linear_quantize",
    "linear_quantize_",
    "quantize_",
    "sqnr_db",
]
