"""FastDepth: a MobileNet encoder and a light NNConv5 decoder for monocular depth.

Wofk, Ma, Yang, Karaman, Sze, "FastDepth: Fast Monocular Depth Estimation on
Embedded Systems", ICRA 2019 (reference/003, "Simplify Network by NetAdapt":
3.93M weights, 0.74G MACs before pruning; 1.34M / 0.37G after NetAdapt).

Layout of the authors' ``MobileNetSkipAdd`` (github.com/dwofk/fast-depth,
``models.py``): the 14 layers of MobileNet v1 without its classifier (224x224
in, 7x7x1024 out), then five decoder stages, each a 5x5 depthwise conv-BN-ReLU
and a 1x1 pointwise conv-BN-ReLU followed by 2x nearest-neighbour upsampling
(NNConv5), with *additive* skip connections from encoder layers 1, 3 and 5
into decoder stages 4, 3 and 2, and a final 1x1 pointwise to one depth channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgefit.zoo.blocks import ConvBNAct
from edgefit.zoo.mobilenet import _V1_LAYERS, _image_shape, v1_features
from edgefit.zoo.registry import check_positive, on_device, register_model

_DECODER = (1024, 512, 256, 128, 64, 32)
# decoder stage (1-based) -> encoder layer whose output is added after its upsampling
_SKIPS = {2: 5, 3: 3, 4: 1}


class FastDepth(nn.Module):
    """MobileNet v1 encoder + NNConv5 depthwise-separable decoder with additive skips.

    Args:
        kernel_size: the decoder's depthwise kernel (5 in the paper).
        alpha: width multiplier of the encoder and decoder channels.
    """

    def __init__(self, *, kernel_size: int = 5, alpha: float = 1.0) -> None:
        super().__init__()
        encoder, _ = v1_features(_V1_LAYERS, alpha=alpha)
        self.encoder = nn.Sequential(*encoder)
        widths = [int(w * alpha) for w in _DECODER]
        self.decoder = nn.ModuleList(
            nn.Sequential(
                ConvBNAct(cin, cin, kernel_size, groups=cin),
                ConvBNAct(cin, cout, 1),
            )
            for cin, cout in zip(widths[:-1], widths[1:], strict=False)
        )
        self.head = ConvBNAct(widths[-1], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = {}
        for i, layer in enumerate(self.encoder):
            x = layer(x)
            if i in _SKIPS.values():
                skips[i] = x
        for stage, layer in enumerate(self.decoder, start=1):
            x = F.interpolate(layer(x), scale_factor=2, mode="nearest")
            if stage in _SKIPS:
                x = x + skips[_SKIPS[stage]]
        return self.head(x)


@register_model(
    "fastdepth",
    input_shape=(1, 3, 224, 224),
    family="fastdepth",
    paper="Wofk et al., FastDepth: Fast Monocular Depth Estimation on Embedded Systems, ICRA 2019",
    description="MobileNet encoder + NNConv5 decoder, additive skips: 3.93M weights / 0.74G MACs at 224",
    input_shape_fn=_image_shape,
)
def fastdepth(
    *, kernel_size: int = 5, alpha: float = 1.0, resolution: int = 224, device=None
) -> nn.Module:
    """FastDepth (MobileNet-NNConv5, depthwise decoder, additive skips); output 1 x H x W depth.

    Args:
        kernel_size: decoder depthwise kernel size (5 in the paper).
        alpha: width multiplier of every layer.
        resolution: input height and width (a multiple of 32; changes only the example input).
        device: build on this device.
    """
    check_positive("alpha", alpha)
    check_positive("resolution", resolution)
    check_positive("kernel_size", kernel_size)
    with on_device(device):
        return FastDepth(kernel_size=kernel_size, alpha=alpha)
