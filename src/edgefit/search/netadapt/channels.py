"""Channel blocks of a traceable network and how to shrink them, for real.

A *block* is one channel group of `edgefit.compress.prune.groups`: the output
channels of a conv (or Linear) with everything that must shrink with them (its
BatchNorm, the depthwise conv after it, the next layers' input channels, every
tensor added to it through a residual or skip connection). Groups that reach the
model's input or output, or ops edgefit does not model, are frozen and never
blocks.

A block is named by the first layer that produces its channels, which names it
the same way in every shrunken copy, so a network is described by
``{block: channels}``. Channels are kept by importance: the L1 norm of the
filters that produce each channel, summed over the group's producers
(`edgefit.compress.prune.channel.channel_importance` with ``"l1"``), the lowest
removed; `edgefit.compress.prune.channel.prune_groups_`
does the shrinking.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgefit.errors import ConfigError


def _groups(model: nn.Module, example: torch.Tensor):
    from edgefit.compress.prune.groups import channel_groups

    return channel_groups(model, example)


def find_blocks(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """``{block name: channels}`` of every shrinkable channel group, in execution order.

    Raises:
        ConfigError: the model has no shrinkable block (e.g. no conv, or only the output layer).
    """
    blocks = {name: g.width for name, g in _groups(model, example).items() if g.width > 1}
    if not blocks:
        raise ConfigError("the model has no prunable block (no layer whose output channels can shrink)")
    return blocks


def channel_importance(model: nn.Module, example: torch.Tensor, block: str) -> torch.Tensor:
    """Per-channel importance of ``block``: the L1 norm of the filters producing each channel."""
    from edgefit.compress.prune.channel import channel_importance as group_importance

    return group_importance(model, _groups(model, example), "l1")[block].detach()


def shrink(model: nn.Module, example: torch.Tensor, widths: dict[str, int]) -> nn.Module:
    """A copy of ``model`` whose blocks keep ``widths[block]`` channels, the most important ones.

    Blocks not in ``widths`` or already that narrow are left alone. The copy has
    really smaller layers; its kept weights are the original's.

    Raises:
        ConfigError: a width is below 1 or above the block's channels, or an unknown block.
    """
    from edgefit.compress.prune.channel import channel_importance as group_importance
    from edgefit.compress.prune.channel import prune_groups_

    model = copy.deepcopy(model)
    groups = _groups(model, example)
    keep = {}
    for block, width in widths.items():
        if block not in groups.groups:
            raise ConfigError(f"the model has no block {block!r}")
        if not 1 <= width <= groups[block].width:
            raise ConfigError(f"block {block}: {width} channels is outside 1..{groups[block].width}")
        if width < groups[block].width:
            keep[block] = width
    if keep:
        scores = group_importance(model, groups, "l1")
        idx = {b: torch.sort(torch.argsort(scores[b], descending=True, stable=True)[:w]).values
               for b, w in keep.items()}
        prune_groups_(model, idx, groups=groups)
    return model


def widths_of(model: nn.Module, blocks, example: torch.Tensor) -> dict[str, int]:
    """``{block: channels}`` of ``model`` now."""
    groups = _groups(model, example)
    return {b: groups[b].width for b in blocks}
