"""Building blocks shared by every family of the zoo.

Each block is a plain ``nn.Module`` whose submodule names follow torchvision where a
torchvision counterpart exists, so parameter counts and state-dict keys line up.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgefit.errors import ModelSpecError

_ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
}


def make_activation(name: str | None) -> nn.Module | None:
    """An activation module from its name, or ``None`` for ``None``."""
    if name is None:
        return None
    if name not in _ACTIVATIONS:
        raise ModelSpecError(f"unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` (MobileNetV2 / TF convention).

    Never goes below 90 % of ``value``.
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvBNAct(nn.Sequential):
    """Conv2d, optional BatchNorm2d, optional activation (torchvision ``Conv2dNormActivation``).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size.
        stride: stride.
        padding: padding; ``None`` means ``(kernel_size - 1) // 2`` ("same" at stride 1).
        groups: convolution groups (``in_channels`` for depthwise).
        bn: add a BatchNorm2d.
        act: activation name (``"relu"``, ``"relu6"``...) or ``None``.
        bias: conv bias; ``None`` means "only when there is no BN".
        bn_eps: BatchNorm epsilon.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        *,
        bn: bool = True,
        act: str | None = "relu",
        bias: bool | None = None,
        bn_eps: float = 1e-5,
    ) -> None:
        padding = (kernel_size - 1) // 2 if padding is None else padding
        bias = (not bn) if bias is None else bias
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
        ]
        if bn:
            layers.append(nn.BatchNorm2d(out_channels, eps=bn_eps))
        activation = make_activation(act)
        if activation is not None:
            layers.append(activation)
        super().__init__(*layers)
        self.out_channels = out_channels


class Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze, then parallel 1x1 and 3x3 expands, concatenated.

    Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters
    and <0.5MB model size", arXiv 1602.07360, 2016.
    """

    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [
                self.expand1x1_activation(self.expand1x1(x)),
                self.expand3x3_activation(self.expand3x3(x)),
            ],
            1,
        )


class Bottleneck(nn.Module):
    """ResNet-v1.5 bottleneck (1x1, 3x3 with the stride, 1x1 x4) with an optional projection.

    ``groups`` and ``base_width`` turn it into the ResNeXt block (He et al. 2016; Xie et
    al., "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017).

    Args:
        in_channels: input channels.
        planes: bottleneck base channels; the block outputs ``planes * 4``.
        stride: stride of the block (on the 3x3 conv, or on the first 1x1 with
            ``stride_in_1x1``: the original ResNet v1, as the lectures count it).
        groups: groups of the 3x3 conv (cardinality).
        base_width: width per group; 64 for ResNet.
        stride_in_1x1: put the stride on the first 1x1 conv (ResNet v1).
    """

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, width, 1, s1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, s3, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class DepthwiseSeparable(nn.Sequential):
    """MobileNet v1 block: 3x3 depthwise conv-BN-ReLU, then 1x1 pointwise conv-BN-ReLU.

    Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
    Vision Applications", arXiv 1704.04861, 2017.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels),
            ConvBNAct(in_channels, out_channels, 1),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand, 3x3 (or ``kernel_size``) depthwise, linear 1x1 project.

    Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
    The residual is added when the stride is 1 and the channel count is unchanged.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, expand_ratio: int, kernel_size: int = 3
    ) -> None:
        super().__init__()
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, act="relu6"))
        layers += [
            ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden, act="relu6"),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class ChannelShuffle(nn.Module):
    """Interleave channels across ``groups`` (ShuffleNet): reshape, transpose, flatten."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet v1 unit: 1x1 group conv, shuffle, 3x3 depthwise, 1x1 group conv.

    Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
    Mobile Devices", CVPR 2018. At stride 2 the shortcut is a 3x3 average pool and the
    two paths are concatenated, so the residual path outputs ``out - in`` channels.
    The bottleneck is a quarter of the unit's output channels, rounded up to a multiple
    of ``groups``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: 1 (add) or 2 (concatenate).
        groups: groups of the 1x1 convolutions.
        first_group: whether the first 1x1 conv is grouped (not on the 24-channel stem).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, groups: int, first_group: bool = True
    ) -> None:
        super().__init__()
        self.stride = stride
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        mid = -(-(out_channels // 4) // groups) * groups  # a grouped conv needs mid % groups == 0
        g1 = groups if first_group else 1
        self.gconv1 = ConvBNAct(in_channels, mid, 1, groups=g1)
        self.shuffle = ChannelShuffle(groups)
        self.dwconv = ConvBNAct(mid, mid, 3, stride, groups=mid, act=None)
        self.gconv2 = ConvBNAct(mid, branch_out, 1, groups=groups, act=None)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.gconv2(self.dwconv(self.shuffle(self.gconv1(x))))
        if self.stride == 2:
            return self.relu(torch.cat([self.shortcut(x), out], 1))
        return self.relu(x + out)


class ShuffleV2Unit(nn.Module):
    """ShuffleNet v2 unit (torchvision ``InvertedResidual`` of ``shufflenetv2.py``).

    Ma et al., "ShuffleNet V2", ECCV 2018. At stride 1 the input is split in halves, one
    half goes through 1x1 conv, 3x3 depthwise, 1x1 conv; at stride 2 both branches see
    the whole input and each outputs half the channels. The halves are concatenated and
    shuffled with 2 groups.

    Args:
        in_channels: input channels.
        out_channels: output channels (even).
        stride: 1 (split) or 2 (two branches, half the resolution).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = out_channels // 2
        self.branch1 = nn.Sequential()
        if stride > 1:
            self.branch1 = nn.Sequential(
                *ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, act=None),
                *ConvBNAct(in_channels, half, 1),
            )
        self.branch2 = nn.Sequential(
            *ConvBNAct(in_channels if stride > 1 else half, half, 1),
            *ConvBNAct(half, half, 3, stride, groups=half, act=None),
            *ConvBNAct(half, half, 1),
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return self.shuffle(out)


class Inception(nn.Module):
    """GoogLeNet (Inception v1) module: 1x1, 1x1->3x3, 1x1->5x5 and pool->1x1 branches.

    Szegedy et al., "Going Deeper with Convolutions", CVPR 2015. Convs are conv-BN-ReLU
    as in torchvision (BN eps 1e-3). ``kernel5`` is the kernel of the third branch: 5 as
    in the paper, 3 for torchvision's layout (a bug it keeps for its weights).
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        kernel5: int = 5,
    ) -> None:
        super().__init__()

        def conv(i: int, o: int, k: int) -> ConvBNAct:
            return ConvBNAct(i, o, k, bn_eps=1e-3)

        self.branch1 = conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3))
        self.branch3 = nn.Sequential(conv(in_channels, ch5x5red, 1), conv(ch5x5red, ch5x5, kernel5))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), conv(in_channels, pool_proj, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class DenseLayer(nn.Module):
    """DenseNet-BC layer: BN-ReLU-1x1 conv (bn_size * growth), BN-ReLU-3x3 conv (growth).

    Huang et al., "Densely Connected Convolutional Networks", CVPR 2017. Takes the
    concatenation of all previous feature maps and returns ``growth_rate`` new channels.
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(out)))


class DenseBlock(nn.ModuleDict):
    """``num_layers`` DenseLayers, each fed the concatenation of everything before it."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """DenseNet transition: BN-ReLU-1x1 conv, then 2x2 average pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


# --------------------------------------------------------------------------- transformers

ATTENTION_KINDS = ("mha", "sdpa", "matmul")


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale (Zhang & Sennrich, NeurIPS 2019)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class SwiGLU(nn.Module):
    """Gated MLP ``w2(silu(w1 x) * w3 x)`` (Shazeer, "GLU Variants Improve Transformer", 2020)."""

    def __init__(self, dim: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=bias)
        self.w2 = nn.Linear(hidden, dim, bias=bias)
        self.w3 = nn.Linear(dim, hidden, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def rotary_tables(
    head_dim: int, max_seq_len: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cos and sin tables, each ``(max_seq_len, head_dim // 2)``, for rotary embeddings.

    Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021.
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    angles = torch.outer(torch.arange(max_seq_len).float(), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of the last dim of ``x`` (``(..., seq, head_dim)``).

    Pair ``(x[2i], x[2i+1])`` at position ``t`` is rotated by angle ``t * inv_freq[i]``
    (the Meta LLaMA convention), written with real arithmetic so it traces on ``meta``.
    """
    seq = x.shape[-2]
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    c, s = cos[:seq], sin[:seq]
    out = torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)
    return out.flatten(-2).type_as(x)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention in three spellings with the same parameter count.

    * ``"mha"``: ``nn.MultiheadAttention`` (fused ``in_proj_weight``, ``out_proj``).
    * ``"sdpa"``: ``F.scaled_dot_product_attention``.
    * ``"matmul"``: explicit ``softmax(q @ k^T / sqrt(d)) @ v``, so a profiler sees
      each matmul.

    ``"sdpa"`` and ``"matmul"`` hold ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``
    Linears and support grouped-query attention (``n_kv_heads < n_heads``) and rotary
    embeddings; ``"mha"`` supports neither.

    Args:
        dim: model width.
        n_heads: query heads.
        n_kv_heads: key/value heads; ``None`` means ``n_heads``.
        attention: ``"mha"``, ``"sdpa"`` or ``"matmul"``.
        bias: projection biases.
        causal: mask future positions.
        dropout: attention dropout probability (training only).
    """

    def __init__(
        self,
        dim: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        *,
        attention: str = "sdpa",
        bias: bool = True,
        causal: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if attention not in ATTENTION_KINDS:
            raise ModelSpecError(f"option attention={attention!r} must be one of {ATTENTION_KINDS}")
        if dim % n_heads:
            raise ModelSpecError(f"dim {dim} is not divisible by n_heads {n_heads}")
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if n_heads % n_kv_heads:
            raise ModelSpecError(f"n_heads {n_heads} is not divisible by n_kv_heads {n_kv_heads}")
        if attention == "mha" and n_kv_heads != n_heads:
            raise ModelSpecError("attention='mha' does not support n_kv_heads != n_heads")
        self.attention = attention
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        self.head_dim = dim // n_heads
        self.causal = causal
        self.dropout = dropout
        if attention == "mha":
            self.attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, bias=bias, batch_first=True)
        else:
            kv_dim = n_kv_heads * self.head_dim
            self.q_proj = nn.Linear(dim, dim, bias=bias)
            self.k_proj = nn.Linear(dim, kv_dim, bias=bias)
            self.v_proj = nn.Linear(dim, kv_dim, bias=bias)
            self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Attend ``x`` (``(batch, seq, dim)``) to itself; ``rotary`` is ``(cos, sin)``."""
        b, t, _ = x.shape
        if self.attention == "mha":
            if rotary is not None:
                raise ModelSpecError("attention='mha' does not support rotary embeddings")
            mask = None
            if self.causal:
                mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            out, _ = self.attn(x, x, x, attn_mask=mask, need_weights=False)
            return out
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        p = self.dropout if self.training else 0.0
        if self.attention == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            if self.causal:
                mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
                scores = scores.masked_fill(mask, float("-inf"))
            weights = F.dropout(scores.softmax(dim=-1), p)
            out = weights @ v
        # n_heads * head_dim, not d: head pruning (edgefit.compress.prune.heads) lowers n_heads
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
