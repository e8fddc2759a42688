"""ShuffleNet v1 (1x1 group convolutions and channel shuffle).

Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network
for Mobile Devices", CVPR 2018.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.errors import ModelSpecError
from edgefit.zoo.blocks import ConvBNAct, ShuffleUnit, make_divisible
from edgefit.zoo.registry import check_positive, on_device, register_model

# stage output channels at 1x per group count (Table 1 of the paper)
_STAGE_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
_REPEATS = (4, 8, 4)


def _image_shape(resolution: int = 224, **_: object) -> tuple[int, int, int, int]:
    return (1, 3, resolution, resolution)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1: 3x3 conv (24, stride 2), maxpool, stages 2-4, global pool, fc."""

    def __init__(self, *, groups: int = 3, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(3, 24, 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c = 24
        for i, (base, repeats) in enumerate(zip(_STAGE_CHANNELS[groups], _REPEATS, strict=True)):
            out = base if width_mult == 1.0 else make_divisible(base * width_mult, 4 * groups)
            units = []
            for j in range(repeats):
                units.append(
                    ShuffleUnit(c, out, 2 if j == 0 else 1, groups, first_group=not (i == 0 and j == 0))
                )
                c = out
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    "shufflenet_v1",
    input_shape=(1, 3, 224, 224),
    family="shufflenet",
    paper="Zhang et al., ShuffleNet, CVPR 2018",
    description="ShuffleNet v1 1x, g=3: 1,865,728 parameters, ~138M MACs (paper: 140 MFLOPs)",
    input_shape_fn=_image_shape,
)
def shufflenet_v1(
    *, groups: int = 3, width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000,
    device=None,
) -> nn.Module:
    """ShuffleNet v1 (1x, g=3 by default) at 3x224x224.

    The paper's "MFLOPs" are multiply-adds: 1x g=3 is listed at 137-140M.

    Args:
        groups: groups of the 1x1 convs: 1, 2, 3, 4 or 8.
        width_mult: channel scale ("0.5x", "1.5x"...); channels rounded to 4 * groups.
        resolution: input height and width (changes only the example input).
        num_classes: outputs.
        device: build on this device.
    """
    if groups not in _STAGE_CHANNELS:
        raise ModelSpecError(f"option groups={groups!r} must be one of {tuple(_STAGE_CHANNELS)}")
    check_positive("width_mult", width_mult)
    check_positive("resolution", resolution)
    with on_device(device):
        return ShuffleNetV1(groups=groups, width_mult=width_mult, num_classes=num_classes)
