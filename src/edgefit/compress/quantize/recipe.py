"""Build a family config from a method name and plain options, and run the
whole job (quantize, optionally train with quantization in the loop, measure)
that ``edgefit quantize`` does.

>>> make_config("bwn", keep_first_last=True)
BWNConfig(keep_first_last=True, layers=None)
>>> make_config("bwn", bits=3)
Traceback (most recent call last):
...
edgefit.errors.ConfigError: bwn supports 1-bit weights, got 3
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import nn

from edgefit.compress.quantize.registry import family_of, method
from edgefit.errors import ConfigError


def make_config(name: str, *, bits: int | Mapping[str, int] | None = None, act_bits: int | None = None, **options):
    """The config of method ``name``; ``bits`` (one width or ``{layer: bits}``, for the
    families that take one) and ``act_bits`` checked against what the family supports."""
    fam = method(name)
    names = {f.name for f in dataclasses.fields(fam.config_type)}
    kw = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(kw) - names)
    if unknown:
        raise ConfigError(f"{name} takes no option {', '.join(unknown)}")
    lo, hi = fam.config_type.weight_bits if hasattr(fam.config_type, "weight_bits") else (1, 16)
    if bits is not None:
        if "bits" in names:
            kw["bits"] = bits
        elif bits != lo:
            raise ConfigError(f"{name} supports {lo}-bit weights, got {bits}")
    if act_bits is not None:
        if "act_bits" in names:
            kw["act_bits"] = act_bits
        else:
            fixed = 1 if name in ("bnn", "xnor") else 32
            if act_bits != fixed:
                raise ConfigError(f"{name} supports {fixed}-bit activations, got {act_bits}")
    return fam.config_type(**kw)


@dataclass
class QuantizeResult:
    """What :func:`quantize_model` did.

    Attributes:
        method: the family name.
        accuracy: ``{"float": ..., "quantized": ...}`` test accuracy (``"trained"`` after QAT).
        states: per-layer states.
        skipped: ``{layer: reason}`` for layers kept in float.
    """

    method: str
    accuracy: dict[str, float] = field(default_factory=dict)
    states: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def quantize_model(model: nn.Module, data, config, *, train_config=None, on_epoch=None) -> QuantizeResult:
    """Quantize ``model`` in place (with quantization-aware training when ``train_config.epochs > 0``).

    Activation ranges are calibrated on 512 training images of ``data`` (k-means
    included); k-means fine-tunes its centroids instead of training with the straight-through estimator.
    """
    from edgefit.compress.quantize import finetune_centroids_, quantize_, quantize_aware_train_
    from edgefit.compress.quantize.kmeans import KMeansConfig
    from edgefit.data.train import evaluate

    name = family_of(config).name
    res = QuantizeResult(name, {"float": evaluate(model, data)})
    epochs = train_config.epochs if train_config is not None else 0
    if isinstance(config, KMeansConfig):
        res.states = quantize_(model, config, calibration=data)
        if epochs:
            res.states = finetune_centroids_(model, data, train_config, on_epoch=on_epoch)
    elif epochs:
        res.states = quantize_aware_train_(model, data, config, train_config, on_epoch=on_epoch)
    else:
        res.states = quantize_(model, config, calibration=data)
    res.skipped = dict(getattr(res.states, "skipped", {}))
    res.accuracy["quantized"] = evaluate(model, data)
    return res
