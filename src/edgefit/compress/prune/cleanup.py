"""Remove connections that cannot matter after fine-grained pruning.

In a chain ``Linear A -> ReLU -> Linear B`` (see :func:`linear_chains`):

* a neuron of A whose outgoing column in B is all zero is *dead*: its incoming
  row and bias are zeroed (its output is never used);
* a neuron of A whose incoming row is all zero outputs the constant
  ``relu(bias)``; that constant is folded into B's bias
  (``B.bias += B.weight[:, j] * relu(A.bias[j])``) and the column is zeroed.

The function computed is unchanged (up to float rounding of the folded bias),
and the zeroed weights cost nothing in the sparse encoding. Repeats until
nothing changes.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.compress.prune.neuron import linear_chains

_FOLDABLE = (nn.ReLU, nn.Identity, nn.Dropout)


def remove_dead_connections_(model: nn.Module) -> int:
    """Zero dead rows and fold constant neurons, in place; returns the weights zeroed."""
    zeroed = 0
    changed = True
    while changed:
        changed = False
        for _name, (parent, i, j) in linear_chains(model).items():
            a, b = parent[i], parent[j]
            between = list(parent)[i + 1 : j]
            with torch.no_grad():
                dead = (b.weight == 0).all(dim=0)
                rows = (a.weight[dead] != 0).sum()
                if rows:
                    a.weight[dead] = 0
                    zeroed += int(rows)
                    changed = True
                if a.bias is not None:
                    a.bias[dead] = 0
                if all(isinstance(m, _FOLDABLE) for m in between) and b.bias is not None:
                    const = (a.weight == 0).all(dim=1) & ~dead
                    cols = (b.weight[:, const] != 0).sum()
                    if cols:
                        act = a.bias[const] if a.bias is not None else torch.zeros(int(const.sum()))
                        if any(isinstance(m, nn.ReLU) for m in between):
                            act = torch.relu(act)
                        b.bias += b.weight[:, const] @ act
                        b.weight[:, const] = 0
                        if a.bias is not None:
                            a.bias[const] = 0
                        zeroed += int(cols)
                        changed = True
    return zeroed
