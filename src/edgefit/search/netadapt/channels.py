"""Channel blocks of a traceable convnet and how to shrink them, for real.

A *block* is one group of coupled channels: the output channels of a
``Conv2d`` together with everything that must shrink with them (its BatchNorm,
the depthwise conv after it, the next layers' input channels, every tensor
added to it through a residual or skip connection). Groups come from a
dependency graph traced on an example input (torch-pruning's ``DependencyGraph``);
the layer whose output is the model's output is never a block.

A block is named by its first conv in execution order, which names it the same
way in every shrunken copy, so a network is described by ``{block: channels}``.
Channels are kept by importance: the L1 norm of every weight the group touches
(torch-pruning's ``GroupMagnitudeImportance``, p=1, summed, not normalized;
biases left out), the lowest removed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgefit.errors import ConfigError

_CONV_OUT = "prune_out_channels"


def _graph(model: nn.Module, example: torch.Tensor):
    import torch_pruning as tp

    was_training = model.training
    model.eval()
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=example)
    except Exception as exc:  # torch-pruning raises plain errors on untraceable models
        raise ConfigError(f"cannot trace the model's channel groups: {type(exc).__name__}: {exc}") from None
    finally:
        model.train(was_training)


def _output_layers(model: nn.Module, example: torch.Tensor) -> set[nn.Module]:
    """The last conv/linear layer run: its outputs are the model's outputs."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for h in hooks:
            h.remove()
    return {order[-1]} if order else set()


def find_blocks(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    """``{block name: output channels}`` of every shrinkable channel group, in execution order.

    Raises:
        ConfigError: the model has no shrinkable block (e.g. no conv, or only the output layer).
    """
    graph = _graph(model, example)
    names = {m: n for n, m in model.named_modules()}
    last = _output_layers(model, example)
    order = {m: i for i, m in enumerate(m for m in model.modules() if isinstance(m, nn.Conv2d))}
    blocks: dict[str, int] = {}
    seen: set[frozenset] = set()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        group = _group(graph, conv, [0])
        members = frozenset(
            dep.target.module for dep, _ in group if dep.handler.__name__ == _CONV_OUT
        )
        if members in seen or members & last or conv.out_channels < 2:
            continue
        seen.add(members)
        first = min((m for m in members if isinstance(m, nn.Conv2d)), key=order.__getitem__)
        blocks[names[first]] = first.out_channels
    if not blocks:
        raise ConfigError("the model has no prunable block (no conv whose output channels can shrink)")
    return blocks


def _group(graph, conv: nn.Conv2d, idxs: list[int]):
    import torch_pruning as tp

    return graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=idxs)


def channel_importance(model: nn.Module, example: torch.Tensor, block: str) -> torch.Tensor:
    """Per-channel importance of ``block``: the L1 norm of every weight its group touches."""
    graph = _graph(model, example)
    conv = model.get_submodule(block)
    return _importance(_group(graph, conv, list(range(conv.out_channels))))


def _importance(group) -> torch.Tensor:
    import torch_pruning as tp

    return tp.importance.GroupMagnitudeImportance(p=1, group_reduction="sum", normalizer=None)(group).detach()


def shrink(model: nn.Module, example: torch.Tensor, widths: dict[str, int]) -> nn.Module:
    """A copy of ``model`` whose blocks keep ``widths[block]`` channels, the most important ones.

    Blocks not in ``widths`` or already that narrow are left alone. The copy has
    really smaller layers; its kept weights are the original's.

    Raises:
        ConfigError: a width is below 1 or above the block's channels, or an unknown block.
    """
    model = copy.deepcopy(model)
    for block, width in widths.items():
        try:
            conv = model.get_submodule(block)
        except AttributeError:
            raise ConfigError(f"the model has no block {block!r}") from None
        if not 1 <= width <= conv.out_channels:
            raise ConfigError(f"block {block}: {width} channels is outside 1..{conv.out_channels}")
        if width == conv.out_channels:
            continue
        graph = _graph(model, example)
        scores = _importance(_group(graph, conv, list(range(conv.out_channels))))
        drop = torch.argsort(scores, stable=True)[: conv.out_channels - width]
        _group(graph, conv, sorted(int(i) for i in drop)).prune()
    return model


def widths_of(model: nn.Module, blocks) -> dict[str, int]:
    """``{block: output channels}`` of ``model`` now."""
    return {b: model.get_submodule(b).out_channels for b in blocks}
