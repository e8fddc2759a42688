"""MobileNet v1 (width and resolution multipliers) and MobileNetV2.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", arXiv 1704.04861, 2017.
Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefit.zoo.blocks import ConvBNAct, DepthwiseSeparable, InvertedResidual, make_divisible
from edgefit.zoo.registry import check_positive, on_device, register_model

# (output channels, stride) of the 13 depthwise-separable layers (Table 1 of v1)
_V1_LAYERS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
# expansion t, channels c, repeats n, first stride s (Table 2 of v2)
_V2_SETTINGS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _image_shape(resolution: int = 224, **_: object) -> tuple[int, int, int, int]:
    return (1, 3, resolution, resolution)


def v1_features(layers, *, alpha: float = 1.0, in_channels: int = 3, first_stride: int = 2) -> tuple[list[nn.Module], int]:
    """A 3x3 conv of ``32 * alpha`` channels, then one depthwise-separable layer per (channels, stride).

    Returns the layers and the output channels (shared by MobileNet v1, its digits
    variant and FastDepth's encoder).
    """
    c = int(32 * alpha)
    out: list[nn.Module] = [ConvBNAct(in_channels, c, 3, first_stride)]
    for channels, stride in layers:
        out.append(DepthwiseSeparable(c, int(channels * alpha), stride))
        c = int(channels * alpha)
    return out, c


class MobileNetV1(nn.Module):
    """MobileNet v1: a 3x3 stride-2 conv, 13 depthwise-separable layers, pool, fc."""

    def __init__(self, *, alpha: float = 1.0, num_classes: int = 1000, dropout: float = 0.0) -> None:
        super().__init__()
        layers, c = v1_features(_V1_LAYERS, alpha=alpha)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class MobileNetV2(nn.Module):
    """MobileNetV2 with torchvision's layout (``features.N``, ``classifier.1``)."""

    def __init__(self, *, width_mult: float = 1.0, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        c = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNAct(3, c, 3, 2, act="relu6")]
        for t, ch, n, s in _V2_SETTINGS:
            out = make_divisible(ch * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        layers.append(ConvBNAct(c, last, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@register_model(
    "mobilenet_v1",
    input_shape=(1, 3, 224, 224),
    family="mobilenet",
    paper="Howard et al., MobileNets, arXiv 1704.04861, 2017",
    description="MobileNet v1, alpha and resolution options: 1.0-224 4,231,976 params / 569M MACs",
    input_shape_fn=_image_shape,
)
def mobilenet_v1(
    *, alpha: float = 1.0, resolution: int = 224, num_classes: int = 1000, dropout: float = 0.0,
    device=None,
) -> nn.Module:
    """MobileNet v1 with width multiplier ``alpha`` and input ``resolution``.

    1.0 MobileNet-224: 4,231,976 parameters (BN included), 568.7M MACs (paper: 4.2M,
    569M). 0.50 MobileNet-160: 1,331,592 parameters, 76.5M MACs (paper: 1.32M, 76M);
    the paper's parameter counts leave out the BN scale and shift. ``resolution`` does
    not change the weights, only the example input (``rho = resolution / 224``).

    Args:
        alpha: width multiplier; every layer has ``int(channels * alpha)`` channels.
        resolution: input height and width.
        num_classes: outputs.
        dropout: dropout before the classifier.
        device: build on this device.
    """
    check_positive("alpha", alpha)
    check_positive("resolution", resolution)
    with on_device(device):
        return MobileNetV1(alpha=alpha, num_classes=num_classes, dropout=dropout)


@register_model(
    "mobilenet_v2",
    input_shape=(1, 3, 224, 224),
    family="mobilenet",
    paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018",
    description="MobileNetV2 1.0-224: 3,504,872 parameters, ~300M MACs",
    input_shape_fn=_image_shape,
)
def mobilenet_v2(
    *, width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000, dropout: float = 0.2,
    device=None,
) -> nn.Module:
    """MobileNetV2 (torchvision layout); 1.0-224: 3,504,872 parameters, ~300M MACs.

    Args:
        width_mult: width multiplier; channels are rounded to multiples of 8.
        resolution: input height and width (changes only the example input).
        num_classes: outputs.
        dropout: dropout before the classifier.
        device: build on this device.
    """
    check_positive("width_mult", width_mult)
    check_positive("resolution", resolution)
    with on_device(device):
        return MobileNetV2(width_mult=width_mult, num_classes=num_classes, dropout=dropout)


# (output channels, stride) of the digits MobileNet: the first five layers of Table 1's pattern
_DIGITS_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1))


class MobileNetDigits(nn.Module):
    """A small MobileNet v1 for 1-channel 32x32 images: conv, 5 depthwise-separable layers, pool, fc."""

    def __init__(self, *, alpha: float = 1.0, num_classes: int = 10) -> None:
        super().__init__()
        layers, c = v1_features(_DIGITS_LAYERS, alpha=alpha, in_channels=1, first_stride=1)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@register_model(
    "mobilenet_digits",
    input_shape=(1, 1, 32, 32),
    family="mobilenet",
    paper="Howard et al., MobileNets, arXiv 1704.04861, 2017 (first layers, 1-channel input)",
    description="MobileNet v1 pattern for digits upscaled to 32x32: 5 depthwise-separable layers",
)
def mobilenet_digits(*, alpha: float = 1.0, num_classes: int = 10, device=None) -> nn.Module:
    """A MobileNet v1-style network for the digits upscaled to 1x32x32 (NetAdapt's benchmark).

    A 3x3 conv (32 channels), five depthwise-separable layers (64, 128 s2, 128, 256 s2,
    256), global average pooling and a linear classifier.

    Args:
        alpha: width multiplier.
        num_classes: outputs.
        device: build on this device.
    """
    check_positive("alpha", alpha)
    with on_device(device):
        return MobileNetDigits(alpha=alpha, num_classes=num_classes)
