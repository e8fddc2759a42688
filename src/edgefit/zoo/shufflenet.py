"""ShuffleNet v1 (1x1 group convolutions and channel shuffle) and ShuffleNet v2.

Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network
for Mobile Devices", CVPR 2018. Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical
Guidelines for Efficient CNN Architecture Design", ECCV 2018.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.errors import ModelSpecError
from edgefit.zoo.blocks import ConvBNAct, ShuffleUnit, ShuffleV2Unit
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
# stem channels per width in the authors' code (megvii-model/ShuffleNet-Series): the
# stem is not scaled at 1.5x; 0.5x uses 12 (16 at g=8), 2x uses 48; other widths keep 24.
_STEM_CHANNELS = {0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}


def _round_to(value: float, divisor: int) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(round(value / divisor)) * divisor)


def _v1_channels(groups: int, width_mult: float) -> tuple[int, tuple[int, ...]]:
    """(stem, stage outputs) of ShuffleNet v1 ``width_mult``x: every filter count times s.

    Stage outputs are the 1x channels times ``width_mult`` (exact for the paper's 0.5x,
    1.5x, 2x), rounded to a multiple of ``groups`` only where they are not.
    """
    if width_mult in _STEM_CHANNELS:
        stem = 16 if (groups == 8 and width_mult == 0.5) else _STEM_CHANNELS[width_mult]
    else:
        stem = 24  # divisible by every group count, so ``out - stem`` splits into groups
    return stem, tuple(_round_to(base * width_mult, groups) for base in _STAGE_CHANNELS[groups])


def _image_shape(resolution: int = 224, **_: object) -> tuple[int, int, int, int]:
    return (1, 3, resolution, resolution)


class ShuffleNetV1(nn.Module):
    """ShuffleNet v1: 3x3 conv (24, stride 2), maxpool, stages 2-4, global pool, fc."""

    def __init__(self, *, groups: int = 3, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        c, stages = _v1_channels(groups, width_mult)
        self.conv1 = ConvBNAct(3, c, 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, (out, repeats) in enumerate(zip(stages, _REPEATS, strict=True)):
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
    description="ShuffleNet v1 1x, g=3: 1,865,728 parameters, 137,460,672 MACs (paper: 140 MFLOPs)",
    input_shape_fn=_image_shape,
)
def shufflenet_v1(
    *, groups: int = 3, width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000,
    device=None,
) -> nn.Module:
    """ShuffleNet v1 (1x, g=3 by default) at 3x224x224.

    The paper's "MFLOPs" are multiply-adds: 1x g=3 is listed at 137-140M. "s x" scales
    every filter count by s as in the authors' code: 0.5x g=4 is 37.5M MACs (paper 38),
    1.5x g=3 292.4M (292), 2x g=3 524.0M (524). The bottleneck is a quarter of the
    unit's outputs, rounded up to a multiple of ``groups`` (0.5x g=4: 34 -> 36).

    Args:
        groups: groups of the 1x1 convs: 1, 2, 3, 4 or 8.
        width_mult: channel scale s of "s x" (0.5, 1.5, 2...).
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


# ShuffleNet v2 stage output channels (stages 2-4, conv5) per width (Table 5 of the paper)
_V2_CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}


class ShuffleNetV2(nn.Module):
    """ShuffleNet v2: 3x3 conv (24, stride 2), maxpool, stages 2-4, 1x1 conv5, pool, fc.

    Submodule names follow torchvision's ``shufflenet_v2_x*`` so state dicts line up.
    """

    def __init__(self, *, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        *stages, last = _V2_CHANNELS[width_mult]
        self.conv1 = ConvBNAct(3, 24, 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c = 24
        for i, (out, repeats) in enumerate(zip(stages, _REPEATS, strict=True)):
            units = [ShuffleV2Unit(c if j == 0 else out, out, 2 if j == 0 else 1) for j in range(repeats)]
            setattr(self, f"stage{i + 2}", nn.Sequential(*units))
            c = out
        self.conv5 = ConvBNAct(c, last, 1)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean([2, 3]))


@register_model(
    "shufflenet_v2",
    input_shape=(1, 3, 224, 224),
    family="shufflenet",
    paper="Ma et al., ShuffleNet V2, ECCV 2018",
    description="ShuffleNet v2 1x: 2,278,604 parameters, 144,907,992 MACs (paper: 146 MFLOPs)",
    input_shape_fn=_image_shape,
)
def shufflenet_v2(
    *, width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000, device=None
) -> nn.Module:
    """ShuffleNet v2 (1x by default) at 3x224x224, torchvision's layout.

    The paper's "FLOPs" are multiply-adds: 0.5x 41M, 1x 146M, 1.5x 299M, 2x 591M;
    parameters as torchvision's ``shufflenet_v2_x0_5`` ... ``x2_0`` (1,366,792,
    2,278,604, 3,503,624, 7,393,996).

    Args:
        width_mult: 0.5, 1.0, 1.5 or 2.0 (the paper's widths).
        resolution: input height and width (changes only the example input).
        num_classes: outputs.
        device: build on this device.
    """
    if width_mult not in _V2_CHANNELS:
        raise ModelSpecError(f"option width_mult={width_mult!r} must be one of {tuple(_V2_CHANNELS)}")
    check_positive("resolution", resolution)
    with on_device(device):
        return ShuffleNetV2(width_mult=float(width_mult), num_classes=num_classes)
