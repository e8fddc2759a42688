"""Network builders of the search spaces: an architecture (a dict of choices) -> a plain ``nn.Module``.

Two builders ship: ``mbv2`` (MobileNetV2 inverted-residual stages whose kernel,
expansion and depth are searched per stage, plus a width multiplier and the input
resolution, as in ProxylessNAS and Once-for-All) and ``cell`` (a NASNet-style cell
of nodes, each applying one of the lectures' layer operations to an earlier node:
"search space = layer operations + connections between layers", reference/003).

Every model is made of ordinary torch layers, so `edgefit.profile` counts it exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from edgefit.errors import ConfigError, RegistryError, close_names
from edgefit.zoo.blocks import ConvBNAct, InvertedResidual, make_divisible

BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_builder(name: str):
    """Register ``fn(arch, **options) -> nn.Module`` as a space builder (raises on a duplicate)."""

    def wrap(fn):
        if name in BUILDERS:
            raise RegistryError(f"space builder {name!r} is already registered")
        BUILDERS[name] = fn
        return fn

    return wrap


def get_builder(name: str) -> Callable[..., nn.Module]:
    if name not in BUILDERS:
        raise RegistryError(f"unknown space builder {name!r}; known: {sorted(BUILDERS)}.{close_names(name, BUILDERS)}")
    return BUILDERS[name]


# ------------------------------------------------------------------ MobileNetV2 space


class Resize(nn.Module):
    """Bilinear resize of the input to ``size`` x ``size`` (the searched input resolution)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class ClassifierHead(nn.Sequential):
    """Global average pooling, flatten, linear."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def _need(arch: Mapping, key: str):
    if key not in arch:
        raise ConfigError(f"architecture lacks the choice {key!r}")
    return arch[key]


@register_builder("mbv2")
def build_mbv2(
    arch: Mapping,
    *,
    stages: list[dict],
    in_channels: int = 3,
    num_classes: int = 1000,
    input_size: int = 224,
    stem_channels: int = 32,
    stem_stride: int = 2,
    last_channels: int = 1280,
) -> nn.Module:
    """A MobileNetV2-style network from per-stage choices.

    ``arch`` holds ``width`` (multiplier), ``resolution`` and, per stage ``i``
    (1-based), ``stage{i}.kernel``, ``stage{i}.expand``, ``stage{i}.depth``. Each stage
    dict gives its base ``channels`` and ``stride``. A resolution different from
    ``input_size`` adds a bilinear resize in front.
    """
    width = float(_need(arch, "width"))
    resolution = int(_need(arch, "resolution"))
    layers: list[nn.Module] = []
    if resolution != input_size:
        layers.append(Resize(resolution))
    stem = make_divisible(stem_channels * width)
    layers.append(ConvBNAct(in_channels, stem, 3, stem_stride, act="relu6"))
    cin = stem
    for i, stage in enumerate(stages, start=1):
        cout = make_divisible(stage["channels"] * width)
        kernel, expand = int(_need(arch, f"stage{i}.kernel")), int(_need(arch, f"stage{i}.expand"))
        for d in range(int(_need(arch, f"stage{i}.depth"))):
            layers.append(InvertedResidual(cin, cout, stage["stride"] if d == 0 else 1, expand, kernel))
            cin = cout
    last = make_divisible(last_channels * max(1.0, width))
    layers.append(ConvBNAct(cin, last, 1, act="relu6"))
    return nn.Sequential(nn.Sequential(*layers), ClassifierHead(last, num_classes))


# ------------------------------------------------------------------ cell space


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _sep(c: int, k: int) -> nn.Module:
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c),
    )


def _factorized(c: int, k: int) -> nn.Module:
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c, c, (1, k), padding=(0, k // 2), bias=False),
        nn.Conv2d(c, c, (k, 1), padding=(k // 2, 0), bias=False),
        nn.BatchNorm2d(c),
    )


def _conv(c: int, k: int, dilation: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.ReLU(),
        nn.Conv2d(c, c, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(c),
    )


# The lectures' common layer operations (reference/003, "Shrink the search space").
# Every op keeps the channel count and the spatial size.
OPERATIONS: dict[str, Callable[[int], nn.Module]] = {
    "identity": lambda c: Identity(),
    "conv1x3_3x1": lambda c: _factorized(c, 3),
    "conv1x7_7x1": lambda c: _factorized(c, 7),
    "dil_conv3x3": lambda c: _conv(c, 3, dilation=2),
    "conv1x1": lambda c: _conv(c, 1),
    "conv3x3": lambda c: _conv(c, 3),
    "sep_conv3x3": lambda c: _sep(c, 3),
    "sep_conv5x5": lambda c: _sep(c, 5),
    "avg_pool3x3": lambda c: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    "max_pool3x3": lambda c: nn.MaxPool2d(3, 1, 1),
    "max_pool5x5": lambda c: nn.MaxPool2d(5, 1, 2),
    "max_pool7x7": lambda c: nn.MaxPool2d(7, 1, 3),
}


def make_operation(name: str, channels: int) -> nn.Module:
    """One of the lectures' layer operations at ``channels`` channels (shape preserving)."""
    if name not in OPERATIONS:
        raise ConfigError(f"unknown cell operation {name!r}; known: {list(OPERATIONS)}.{close_names(name, OPERATIONS)}")
    return OPERATIONS[name](channels)


class Cell(nn.Module):
    """A cell of ``nodes`` nodes: node i applies ``ops[i]`` to node ``inputs[i]`` (0 is the cell input).

    The cell output is the sum of the nodes no other node reads (the "loose ends"
    of NASNet), so every node contributes.
    """

    def __init__(self, channels: int, ops: list[str], inputs: list[int]) -> None:
        super().__init__()
        for i, src in enumerate(inputs, start=1):
            if not 0 <= src < i:
                raise ConfigError(f"node {i} reads node {src}: a node reads the cell input (0) or an earlier node")
        self.inputs = list(inputs)
        self.ops = nn.ModuleList(make_operation(op, channels) for op in ops)
        read = set(inputs)
        self.outputs = [i for i in range(1, len(ops) + 1) if i not in read]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for op, src in zip(self.ops, self.inputs, strict=True):
            states.append(op(states[src]))
        out = states[self.outputs[0]]
        for i in self.outputs[1:]:
            out = out + states[i]
        return out


def cell_genotype(arch: Mapping, nodes: int) -> tuple[list[str], list[int]]:
    """(ops, inputs) of a cell architecture: ``node{i}.op`` and ``node{i}.input`` (0 when absent)."""
    ops = [str(_need(arch, f"node{i}.op")) for i in range(1, nodes + 1)]
    inputs = [int(arch.get(f"node{i}.input", 0)) for i in range(1, nodes + 1)]
    return ops, inputs


@register_builder("cell")
def build_cell(
    arch: Mapping,
    *,
    nodes: int,
    in_channels: int = 3,
    num_classes: int = 10,
    channels: int = 16,
    cells: int = 2,
    input_size: int = 32,
) -> nn.Module:
    """A stem conv, ``cells`` copies of the searched cell with a 2x2 max-pool reduction
    between them, and a classifier head. ``input_size`` is documentation only."""
    ops, inputs = cell_genotype(arch, nodes)
    layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3)]
    for c in range(cells):
        if c:
            layers.append(nn.MaxPool2d(2))
        layers.append(Cell(channels, ops, inputs))
    return nn.Sequential(nn.Sequential(*layers), ClassifierHead(channels, num_classes))
