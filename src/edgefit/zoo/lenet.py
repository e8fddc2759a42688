"""LeNet family: LeNet-5 and the LeNet-300-100 MLP, plus 8x8-digits variants.

LeCun et al., "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 1998.
The digits variants are the LeNets of Han et al., "Deep Compression", ICLR 2016, sized
for scikit-learn's 8x8 digits.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.zoo.registry import on_device, register_model

_PAPER = "LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998"
_PAPER_DC = "Han et al., Deep Compression, ICLR 2016 (LeNet of LeCun et al. 1998)"


class LeNet5(nn.Module):
    """Conv-pool-conv-pool-fc-fc-fc with ``features.N`` / ``classifier.N`` layout."""

    def __init__(
        self,
        *,
        conv_channels: tuple[int, int],
        fc: tuple[int, ...],
        flat: int,
        padding: int,
        act: str,
        pool: str,
        num_classes: int,
    ) -> None:
        super().__init__()
        act_cls = {"relu": nn.ReLU, "tanh": nn.Tanh}[act]
        pool_cls = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
        c1, c2 = conv_channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=padding),
            act_cls(),
            pool_cls(2, 2),
            nn.Conv2d(c1, c2, 5, padding=padding),
            act_cls(),
            pool_cls(2, 2),
        )
        layers: list[nn.Module] = []
        width = flat
        for hidden in fc:
            layers += [nn.Linear(width, hidden), act_cls()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class MLP(nn.Module):
    """Fully connected ReLU network; flattens any input to ``(batch, -1)`` first."""

    def __init__(self, sizes: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(sizes[-1], num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "lenet5",
    input_shape=(1, 1, 32, 32),
    family="lenet",
    paper=_PAPER,
    description="LeNet-5 (dense C3): conv6 5x5, pool, conv16 5x5, pool, fc 120-84-10",
)
def lenet5(*, num_classes: int = 10, act: str = "relu", device=None) -> nn.Module:
    """LeNet-5 at 1x32x32: 61,706 parameters (61,470 without bias), 416,520 MACs.

    The classic dense form: every C3 map sees all six S2 maps. The summary table of
    reference/003 prints 60k weights / 341k MACs because it follows the 1998 paper,
    whose C3 uses a sparse connection table (1,516 parameters instead of 2,416) and
    whose output is an RBF layer; that count is not a dense ``nn.Conv2d``.

    Args:
        num_classes: outputs.
        act: ``"relu"`` or ``"tanh"`` (the paper's squashing function).
        device: build on this device (``"meta"`` allocates nothing).
    """
    with on_device(device):
        return LeNet5(
            conv_channels=(6, 16), fc=(120, 84), flat=16 * 5 * 5, padding=0,
            act=act, pool="max", num_classes=num_classes,
        )


@register_model(
    "lenet5_digits",
    input_shape=(1, 1, 8, 8),
    family="lenet",
    paper=_PAPER_DC,
    description="Caffe LeNet-5 of Deep Compression (conv20, conv50, fc500) padded for 8x8 digits",
)
def lenet5_digits(*, num_classes: int = 10, device=None) -> nn.Module:
    """Caffe LeNet-5 of Deep Compression adapted to 1x8x8 digits: 131,080 parameters.

    conv 20 5x5 -> maxpool 2 -> conv 50 5x5 -> maxpool 2 -> fc 500 -> fc 10. Both convs
    use ``padding=2`` so the 8x8 image survives: 8 -> 8 -> 4 -> 4 -> 2, and the first
    fc sees 50*2*2 = 200 features (the MNIST original sees 50*4*4 = 800 at 28x28).

    Args:
        num_classes: outputs.
        device: build on this device.
    """
    with on_device(device):
        return LeNet5(
            conv_channels=(20, 50), fc=(500,), flat=50 * 2 * 2, padding=2,
            act="relu", pool="max", num_classes=num_classes,
        )


@register_model(
    "lenet_300_100",
    input_shape=(1, 784),
    family="lenet",
    paper=_PAPER,
    description="LeNet-300-100 MLP on flattened 28x28 MNIST",
)
def lenet_300_100(*, num_classes: int = 10, device=None) -> nn.Module:
    """LeNet-300-100: 784-300-100-10, 266,610 parameters; accepts (N, 784) or (N, 1, 28, 28).

    Args:
        num_classes: outputs.
        device: build on this device.
    """
    with on_device(device):
        return MLP((784, 300, 100), num_classes)


@register_model(
    "lenet_300_100_digits",
    input_shape=(1, 1, 8, 8),
    family="lenet",
    paper=_PAPER_DC,
    description="LeNet-300-100 sized for 8x8 digits: 64-300-100-10",
)
def lenet_300_100_digits(*, num_classes: int = 10, device=None) -> nn.Module:
    """LeNet-300-100 for 8x8 digits: 64-300-100-10, 50,610 parameters; input flattened.

    Args:
        num_classes: outputs.
        device: build on this device.
    """
    with on_device(device):
        return MLP((64, 300, 100), num_classes)
