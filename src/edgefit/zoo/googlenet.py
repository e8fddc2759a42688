"""GoogLeNet (Inception v1), without the auxiliary classifiers.

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.zoo.blocks import ConvBNAct, Inception
from edgefit.zoo.registry import on_device, register_model

# in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (Table 1 of the paper)
_INCEPTIONS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """GoogLeNet with torchvision's module names (``conv1``, ``inception3a``...)."""

    def __init__(self, *, num_classes: int = 1000, kernel5: int = 5, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(3, 64, 7, 2, 3, bn_eps=1e-3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = ConvBNAct(64, 64, 1, bn_eps=1e-3)
        self.conv3 = ConvBNAct(64, 192, 3, bn_eps=1e-3)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        for name in ("inception3a", "inception3b"):
            setattr(self, name, Inception(*_INCEPTIONS[name], kernel5=kernel5))
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            setattr(self, name, Inception(*_INCEPTIONS[name], kernel5=kernel5))
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        for name in ("inception5a", "inception5b"):
            setattr(self, name, Inception(*_INCEPTIONS[name], kernel5=kernel5))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.inception3b(self.inception3a(x))
        x = self.maxpool3(x)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            x = getattr(self, name)(x)
        x = self.maxpool4(x)
        x = self.inception5b(self.inception5a(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


@register_model(
    "googlenet",
    input_shape=(1, 3, 224, 224),
    family="googlenet",
    paper="Szegedy et al., Going Deeper with Convolutions, CVPR 2015",
    description="Inception v1 without aux heads, BN convs: 7,005,832 parameters",
)
def googlenet(
    *, num_classes: int = 1000, kernel5: int = 5, dropout: float = 0.2, device=None
) -> nn.Module:
    """GoogLeNet at 3x224x224, no auxiliary heads, conv-BN-ReLU as in torchvision.

    With the paper's 5x5 third branch: 7,005,832 parameters (slides: 7.0M).
    ``kernel5=3`` reproduces torchvision's layout, whose third branch is 3x3 (a
    kept bug): 6,624,904 parameters, 380,928 fewer = 16 * sum(5x5reduce * 5x5).

    Args:
        num_classes: outputs.
        kernel5: kernel of the third inception branch, 5 (paper) or 3 (torchvision).
        dropout: dropout before the classifier.
        device: build on this device.
    """
    if kernel5 not in (3, 5):
        from edgefit.errors import ModelSpecError

        raise ModelSpecError(f"option kernel5={kernel5!r} must be 3 or 5")
    with on_device(device):
        return GoogLeNet(num_classes=num_classes, kernel5=kernel5, dropout=dropout)
