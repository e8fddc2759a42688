"""Fine-grained magnitude pruning (Han et al., "Learning both Weights and
Connections for Efficient Neural Networks", NeurIPS 2015).

Two ways to say how much to prune each layer:

* ``sparsity``: the fraction of the layer's weights set to zero, exactly
  (``round(sparsity * n)`` weights, ties broken by position);
* ``quality``: Han 2015's threshold ``quality * std(layer weights)``; every weight
  whose magnitude is below it is pruned.

``scope="global"`` ranks all selected layers' weights together against one
sparsity. Biases are never pruned. Weights already at zero count as pruned, so
pruning again to a higher sparsity only removes more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from edgefit.compress._layers import check_each, check_fraction, per_layer, select_layers
from edgefit.errors import ConfigError

_SCOPES = ("layer", "global")


def _check_quality(v, what: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
        raise ConfigError(f"{what} must be a number >= 0, got {v!r}")


@dataclass(frozen=True)
class MagnitudeConfig:
    """Magnitude pruning options.

    Attributes:
        sparsity: fraction in [0, 1) to prune, one value or ``{layer: value}``.
        quality: Han 2015 quality parameter (threshold = quality x weight std),
            one value or ``{layer: value}``; give this or ``sparsity``.
        scope: ``"layer"`` (each layer to its own target) or ``"global"``
            (one ranking over all selected layers; needs a single ``sparsity``).
        layers: layer names to prune (default: every Linear / Conv layer, or
            the keys of a mapping).

    >>> MagnitudeConfig(sparsity={"classifier.0": 0.9, "classifier.2": 0.9})
    ... # doctest: +ELLIPSIS
    MagnitudeConfig(sparsity=...)
    """

    sparsity: float | Mapping[str, float] | None = None
    quality: float | Mapping[str, float] | None = None
    scope: str = "layer"
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if (self.sparsity is None) == (self.quality is None):
            raise ConfigError("give exactly one of sparsity or quality")
        if self.sparsity is not None:
            check_each(self.sparsity, check_fraction, "sparsity")
        if self.quality is not None:
            check_each(self.quality, _check_quality, "quality")
        if self.scope not in _SCOPES:
            raise ConfigError(f"scope must be one of {_SCOPES}, got {self.scope!r}")
        if self.scope == "global" and (self.sparsity is None or isinstance(self.sparsity, Mapping)):
            raise ConfigError("scope='global' needs one sparsity value for all layers")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep-mask pruning exactly ``round(sparsity * numel)`` smallest-magnitude weights."""
    n = weight.numel()
    k = int(round(sparsity * n))
    mask = torch.ones(n, dtype=torch.bool)
    if k > 0:
        order = torch.argsort(weight.detach().abs().flatten(), stable=True)
        mask[order[:k]] = False
    return mask.view_as(weight)


def _apply(module: nn.Module, mask: torch.Tensor) -> None:
    with torch.no_grad():
        w = module.weight
        w.copy_(torch.where(mask, w, torch.zeros((), dtype=w.dtype)))


def prune_(model: nn.Module, config: MagnitudeConfig) -> dict[str, torch.Tensor]:
    """Prune ``model`` in place; return ``{param_name: keep_mask}`` per pruned layer.

    The masks are what :func:`edgefit.data.train` takes to hold pruned weights at
    zero while retraining.

    >>> from edgefit.zoo import create
    >>> m = create("lenet_300_100_digits")
    >>> masks = prune_(m, MagnitudeConfig(sparsity=0.9))
    >>> round(1 - float(masks["classifier.0.weight"].float().mean()), 3)
    0.9
    """
    names = config.layers
    if names is None:
        for v in (config.sparsity, config.quality):
            if isinstance(v, Mapping):
                names = tuple(v)
    layers = select_layers(model, names)
    masks: dict[str, torch.Tensor] = {}
    if config.scope == "global":
        mags = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
        k = int(round(config.sparsity * mags.numel()))
        keep = torch.ones(mags.numel(), dtype=torch.bool)
        if k:
            keep[torch.argsort(mags, stable=True)[:k]] = False
        start = 0
        for name, m in layers.items():
            n = m.weight.numel()
            masks[f"{name}.weight"] = keep[start : start + n].view_as(m.weight).clone()
            start += n
    elif config.sparsity is not None:
        for name, s in per_layer(config.sparsity, layers, "sparsity").items():
            masks[f"{name}.weight"] = magnitude_mask(layers[name].weight, float(s))
    else:
        for name, q in per_layer(config.quality, layers, "quality").items():
            w = layers[name].weight.detach()
            nz = w[w != 0]
            std = float(nz.std()) if nz.numel() > 1 else 0.0
            masks[f"{name}.weight"] = (w.abs() >= q * std) & (w != 0)
    mods = dict(model.named_modules())
    for pname, mask in masks.items():
        _apply(mods[pname.rsplit(".", 1)[0]], mask)
    return masks


def masks_from_zeros(model: nn.Module, layers=None) -> dict[str, torch.Tensor]:
    """Keep-masks read off a (pruned) model: a weight is kept when it is nonzero."""
    return {f"{n}.weight": (m.weight.detach() != 0) for n, m in select_layers(model, layers).items()}


def sparsity(model: nn.Module, layers=None) -> dict[str, float]:
    """Fraction of zero weights per Linear / Conv layer."""
    return {
        n: float((m.weight.detach() == 0).float().mean()) for n, m in select_layers(model, layers).items()
    }
