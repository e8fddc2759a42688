"""Neuron pruning: remove whole neurons so that Linear layers really shrink.

Removing neuron ``j`` of a Linear layer ``L`` drops row ``j`` of ``L.weight`` and
``L.bias`` and column ``j`` of the next Linear layer's weight (reference/004,
"Neuron Pruning": removing rows and columns of the weight matrices). The layers
are replaced by new, smaller ``nn.Linear`` modules.

Convention: the pruned model computes exactly what the original computes when
the removed neurons' outputs (after the activation) are forced to zero; kept
neurons' outputs are bit-identical. A neuron whose outgoing weights are all
zero ("dead", typical after heavy weight pruning) changes nothing when removed.

Only chains inside an ``nn.Sequential`` are handled: a Linear followed, through
elementwise modules only (ReLU, Tanh, Dropout...), by another Linear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from edgefit.compress._layers import check_each, check_fraction
from edgefit.errors import ConfigError, close_names

_CRITERIA = ("dead", "l2_out", "l2_in")
_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Hardswish,
    nn.Hardtanh, nn.ELU, nn.Dropout, nn.Identity,
)


@dataclass(frozen=True)
class NeuronConfig:
    """Neuron pruning options.

    Attributes:
        amount: fraction of each layer's neurons to remove, one value or
            ``{layer: value}``; ignored by ``criterion="dead"``.
        criterion: ``"dead"`` removes neurons whose outgoing weights are all zero
            (exact, no accuracy change); ``"l2_out"`` / ``"l2_in"`` rank neurons by
            the L2 norm of their outgoing column / incoming row and remove the smallest.
        layers: layers whose neurons may go (default: every Linear followed by a Linear).
    """

    amount: float | Mapping[str, float] = 0.0
    criterion: str = "dead"
    layers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_each(self.amount, check_fraction, "amount")
        if self.criterion not in _CRITERIA:
            raise ConfigError(f"criterion must be one of {_CRITERIA}, got {self.criterion!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))


def linear_chains(model: nn.Module) -> dict[str, tuple[nn.Sequential, int, int]]:
    """``{layer_name: (parent Sequential, index, index of the next Linear)}``."""
    out = {}
    for pname, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        kids = list(parent)
        for i, m in enumerate(kids):
            if not isinstance(m, nn.Linear):
                continue
            for j in range(i + 1, len(kids)):
                if isinstance(kids[j], nn.Linear):
                    if kids[j].in_features == m.out_features:
                        out[f"{pname}.{i}" if pname else str(i)] = (parent, i, j)
                    break
                if not isinstance(kids[j], _ELEMENTWISE):
                    break
    return out


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                    device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin


def prune_neurons_(model: nn.Module, config: NeuronConfig) -> dict[str, torch.Tensor]:
    """Remove neurons in place; return ``{layer: indices of the kept neurons}``.

    At least one neuron of every layer is kept.

    >>> from edgefit.zoo import create
    >>> m = create("lenet_300_100_digits")
    >>> kept = prune_neurons_(m, NeuronConfig(amount=0.5, criterion="l2_out"))
    >>> m.classifier[0].out_features, m.classifier[2].in_features
    (150, 150)
    """
    chains = linear_chains(model)
    names = config.layers if config.layers is not None else (
        tuple(config.amount) if isinstance(config.amount, Mapping) else tuple(chains)
    )
    for n in names:
        if n not in chains:
            raise ConfigError(
                f"cannot neuron-prune {n!r}: not a Linear followed by a Linear in an nn.Sequential."
                f"{close_names(n, chains)} Candidates: {', '.join(chains) or 'none'}"
            )
    kept_all: dict[str, torch.Tensor] = {}
    for n in names:
        parent, i, j = chains[n]
        cur, nxt = parent[i], parent[j]
        w_out = nxt.weight.detach()
        if config.criterion == "dead":
            keep = (w_out != 0).any(dim=0)
        else:
            amount = config.amount[n] if isinstance(config.amount, Mapping) else config.amount
            score = (w_out.norm(dim=0) if config.criterion == "l2_out"
                     else cur.weight.detach().norm(dim=1))
            k = int(round(amount * cur.out_features))
            keep = torch.ones(cur.out_features, dtype=torch.bool)
            if k:
                keep[torch.argsort(score, stable=True)[:k]] = False
        if not keep.any():
            keep[int(torch.argmax(w_out.abs().sum(dim=0)))] = True
        idx = torch.nonzero(keep).flatten()
        parent[i] = _linear(cur.weight.detach()[idx], None if cur.bias is None else cur.bias.detach()[idx])
        parent[j] = _linear(nxt.weight.detach()[:, idx], None if nxt.bias is None else nxt.bias.detach())
        kept_all[n] = idx
    return kept_all
