"""SqueezeNet 1.0.

Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and
<0.5MB model size", arXiv 1602.07360, 2016.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.zoo.blocks import Fire
from edgefit.zoo.registry import on_device, register_model


class SqueezeNet(nn.Module):
    """SqueezeNet 1.0 with torchvision's ``features.N`` / ``classifier.N`` layout."""

    def __init__(self, *, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 7, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(96, 16, 64, 64),
            Fire(128, 16, 64, 64),
            Fire(128, 32, 128, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 32, 128, 128),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(512, 64, 256, 256),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv2d(512, num_classes, 1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


@register_model(
    "squeezenet1_0",
    input_shape=(1, 3, 224, 224),
    family="squeezenet",
    paper="Iandola et al., SqueezeNet, arXiv 1602.07360, 2016",
    description="SqueezeNet 1.0: 1,248,424 parameters, ~0.82G MACs",
)
def squeezenet1_0(*, num_classes: int = 1000, dropout: float = 0.5, device=None) -> nn.Module:
    """SqueezeNet 1.0 at 3x224x224: 1,248,424 parameters.

    Args:
        num_classes: outputs.
        dropout: dropout before the final conv.
        device: build on this device.
    """
    with on_device(device):
        return SqueezeNet(num_classes=num_classes, dropout=dropout)
