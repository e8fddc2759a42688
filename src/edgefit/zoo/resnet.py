"""ResNet-50 and ResNeXt-50 (32x4d), torchvision layout (ResNet v1.5: stride on the 3x3).

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
Xie et al., "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.zoo.blocks import Bottleneck
from edgefit.zoo.registry import on_device, register_model


class ResNet(nn.Module):
    """Bottleneck ResNet: stem, four stages, global average pool, fc."""

    def __init__(
        self, layers: tuple[int, int, int, int], *, groups: int = 1, width_per_group: int = 64,
        num_classes: int = 1000, stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(blocks):
                stage.append(
                    Bottleneck(in_ch, planes, stride if j == 0 else 1, groups, width_per_group, stride_in_1x1)
                )
                in_ch = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    "resnet50",
    input_shape=(1, 3, 224, 224),
    family="resnet",
    paper="He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    description="ResNet-50 v1.5: 25,557,032 parameters, ~4.09G MACs",
)
def resnet50(*, num_classes: int = 1000, stride_in_1x1: bool = False, device=None) -> nn.Module:
    """ResNet-50 (3, 4, 6, 3 bottlenecks) at 3x224x224: 25,557,032 parameters.

    The default is torchvision's v1.5 layout (stride on the 3x3): ~4.09G MACs.
    ``stride_in_1x1=True`` gives the original v1 that the lectures count:
    3.86G MACs in the convs + 2M in the fc = 3.9G.

    Args:
        num_classes: outputs.
        stride_in_1x1: stride on the first 1x1 of each downsampling block (v1).
        device: build on this device.
    """
    with on_device(device):
        return ResNet((3, 4, 6, 3), num_classes=num_classes, stride_in_1x1=stride_in_1x1)


@register_model(
    "resnext50_32x4d",
    input_shape=(1, 3, 224, 224),
    family="resnet",
    paper="Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017",
    description="ResNeXt-50 32x4d: 25,028,904 parameters, ~4.23G MACs",
)
def resnext50_32x4d(*, num_classes: int = 1000, device=None) -> nn.Module:
    """ResNeXt-50 with cardinality 32 and width 4 per group: 25,028,904 parameters.

    Args:
        num_classes: outputs.
        device: build on this device.
    """
    with on_device(device):
        return ResNet((3, 4, 6, 3), groups=32, width_per_group=4, num_classes=num_classes)
