"""VGG-16 (configuration D).

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.zoo.registry import on_device, register_model

_CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """VGG with torchvision's ``features.N`` / ``classifier.N`` layout (no adaptive pool)."""

    def __init__(self, cfg, *, num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(c, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register_model(
    "vgg16",
    input_shape=(1, 3, 224, 224),
    family="vgg",
    paper="Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015",
    description="VGG-16 (config D): 138,357,544 parameters, 15.47G MACs",
)
def vgg16(
    *, num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5, device=None
) -> nn.Module:
    """VGG-16 at 3x224x224: 138,357,544 parameters, 15,470,264,320 MACs (bias excluded).

    Args:
        num_classes: outputs.
        batch_norm: add BatchNorm after each conv (torchvision ``vgg16_bn``).
        dropout: classifier dropout.
        device: build on this device.
    """
    with on_device(device):
        return VGG(_CFG_D, num_classes=num_classes, batch_norm=batch_norm, dropout=dropout)
