"""DenseNet-121 (DenseNet-BC, growth 32).

Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgefit.zoo.blocks import DenseBlock, Transition
from edgefit.zoo.registry import on_device, register_model


class DenseNet(nn.Module):
    """DenseNet-BC with torchvision's ``features.denseblockN`` layout."""

    def __init__(
        self, *, growth_rate: int = 32, block_config=(6, 12, 24, 16), num_init_features: int = 64,
        bn_size: int = 4, num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, num_init_features, 7, 2, 3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        c = num_init_features
        for i, n in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c, growth_rate, bn_size))
            c += n * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.features(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


@register_model(
    "densenet121",
    input_shape=(1, 3, 224, 224),
    family="densenet",
    paper="Huang et al., Densely Connected Convolutional Networks, CVPR 2017",
    description="DenseNet-121 (k=32, blocks 6-12-24-16): 7,978,856 parameters",
)
def densenet121(*, num_classes: int = 1000, device=None) -> nn.Module:
    """DenseNet-121 at 3x224x224: 7,978,856 parameters, ~2.87G MACs.

    Args:
        num_classes: outputs.
        device: build on this device.
    """
    with on_device(device):
        return DenseNet(num_classes=num_classes)
