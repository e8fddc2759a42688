"""Batch-norm folding: a BatchNorm that directly follows a conv (or linear)
layer is folded into it, ``W' = W gamma / sqrt(var + eps)`` per output channel,
``b' = (b - mean) gamma / sqrt(var + eps) + beta``, and replaced by Identity.
Edges are found by ``torch.fx`` symbolic tracing, so only real conv -> BN data
flow is folded.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.errors import ConfigError

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def fold_pair_(layer: nn.Module, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (eval statistics) into ``layer``'s weight and bias, in place."""
    with torch.no_grad():
        inv = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps) if bn.affine else \
            1 / torch.sqrt(bn.running_var.double() + bn.eps)
        shift = bn.bias.double() if bn.affine else torch.zeros_like(inv)
        w = layer.weight.double() * inv.reshape((-1,) + (1,) * (layer.weight.ndim - 1))
        b = layer.bias.double() if layer.bias is not None else torch.zeros_like(inv)
        layer.weight.copy_(w.to(layer.weight.dtype))
        new_bias = ((b - bn.running_mean.double()) * inv + shift).to(layer.weight.dtype)
        if layer.bias is None:
            layer.bias = nn.Parameter(new_bias)
        else:
            layer.bias.copy_(new_bias)


def fold_batchnorm_(model: nn.Module) -> list[tuple[str, str]]:
    """Fold every conv/linear -> BatchNorm pair in place; returns the ``(layer, bn)`` names.

    Raises:
        ConfigError: the model cannot be traced symbolically to find the pairs.
    """
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:
        raise ConfigError(f"batch-norm folding needs a symbolically traceable model: {type(exc).__name__}: {exc}") from exc
    mods = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), _BN):
            continue
        src = node.args[0]
        if (getattr(src, "op", None) == "call_module" and isinstance(mods.get(src.target), _FOLDABLE)
                and len(src.users) == 1 and mods[node.target].track_running_stats):
            pairs.append((src.target, node.target))
    for layer, bn in pairs:
        fold_pair_(mods[layer], mods[bn])
        parent, _, leaf = bn.rpartition(".")
        setattr(mods[parent] if parent else model, leaf, nn.Identity())
    return pairs
