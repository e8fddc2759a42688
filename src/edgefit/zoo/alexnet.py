"""AlexNet: the grouped two-GPU variant of the lecture tables, and the single tower.

Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.zoo.registry import on_device, register_model

# (conv1..conv5 output channels, groups of conv2/conv4/conv5)
_TOWERS = {True: ((96, 256, 384, 384, 256), 2), False: ((64, 192, 384, 256, 256), 1)}


class AlexNet(nn.Module):
    """AlexNet without LRN: the paper's groups=2 on conv2, conv4 and conv5, or one tower.

    The single tower is the layout most code uses (torchvision ``alexnet``, from "One
    weird trick for parallelizing CNNs", Krizhevsky 2014), with its 6x6 adaptive pool.
    """

    def __init__(
        self, *, num_classes: int = 1000, dropout: float = 0.5, bias: bool = True, grouped: bool = True
    ) -> None:
        super().__init__()
        (c1, c2, c3, c4, c5), g = _TOWERS[grouped]
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 11, stride=4, padding=2, bias=bias),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(c1, c2, 5, padding=2, groups=g, bias=bias),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(c2, c3, 3, padding=1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1, groups=g, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1, groups=g, bias=bias),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.avgpool = None if grouped else nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096, bias=bias),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096, bias=bias),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))


@register_model(
    "alexnet",
    input_shape=(1, 3, 224, 224),
    family="alexnet",
    paper="Krizhevsky et al., ImageNet Classification with Deep CNNs, NeurIPS 2012",
    description="grouped two-GPU AlexNet: 60,954,656 weights, 724,406,816 MACs (no bias)",
)
def alexnet(
    *, num_classes: int = 1000, dropout: float = 0.5, bias: bool = True, grouped: bool = True,
    device=None,
) -> nn.Module:
    """Grouped AlexNet at 3x224x224 (55 -> 27 -> 13 -> 6 spatially).

    Weights without bias: 34,848 + 307,200 + 884,736 + 663,552 + 442,368 +
    37,748,736 + 16,777,216 + 4,096,000 = 60,954,656; 724,406,816 MACs; 10,568 biases.
    ``grouped=False`` is the single tower of torchvision (64, 192, 384, 256, 256
    channels): 61,100,840 parameters with bias, 714,188,480 MACs.

    Args:
        num_classes: outputs.
        dropout: dropout before fc6 and fc7.
        bias: add biases (the slides' counts ignore them).
        grouped: the two-GPU model of the paper and the slides; False for one tower.
        device: build on this device.
    """
    with on_device(device):
        return AlexNet(num_classes=num_classes, dropout=dropout, bias=bias, grouped=grouped)
