"""AlexNet, the grouped two-GPU variant of the lecture tables.

Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NeurIPS 2012.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.zoo.registry import on_device, register_model


class AlexNet(nn.Module):
    """AlexNet with the paper's groups=2 on conv2, conv4 and conv5 (no LRN)."""

    def __init__(self, *, num_classes: int = 1000, dropout: float = 0.5, bias: bool = True) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4, padding=2, bias=bias),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2, bias=bias),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1, groups=2, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1, groups=2, bias=bias),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
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
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model(
    "alexnet",
    input_shape=(1, 3, 224, 224),
    family="alexnet",
    paper="Krizhevsky et al., ImageNet Classification with Deep CNNs, NeurIPS 2012",
    description="grouped two-GPU AlexNet: 60,954,656 weights, 724,406,816 MACs (no bias)",
)
def alexnet(
    *, num_classes: int = 1000, dropout: float = 0.5, bias: bool = True, device=None
) -> nn.Module:
    """Grouped AlexNet at 3x224x224 (55 -> 27 -> 13 -> 6 spatially).

    Weights without bias: 34,848 + 307,200 + 884,736 + 663,552 + 442,368 +
    37,748,736 + 16,777,216 + 4,096,000 = 60,954,656; 724,406,816 MACs; 10,568 biases.

    Args:
        num_classes: outputs.
        dropout: dropout before fc6 and fc7.
        bias: add biases (the slides' counts ignore them).
        device: build on this device.
    """
    with on_device(device):
        return AlexNet(num_classes=num_classes, dropout=dropout, bias=bias)
