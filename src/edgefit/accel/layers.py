"""CONV and FC layers in the accelerator papers' notation, from a `Profile`.

A layer is N images of C x H x W, M filters of C x R x S, an output of
M x E x F, strides U (rows and columns) and padding, as in reference/003 ("CNN
shapes": N C H W R S M E F). A fully connected layer is a convolution whose
filter covers the whole input (R = H, S = W, E = F = 1), the way the Eyeriss
analysis treats AlexNet's FC layers; a Linear fed by a flattened C x H x W map
keeps that spatial shape. Grouped convolutions keep ``c`` per group, as the
Eyeriss papers list AlexNet's CONV2 (C = 48, M = 256).

>>> layer = ConvLayer("conv", n=1, c=1, h=3, w=3, m=1, r=2, s=2)
>>> (layer.e, layer.f, layer.macs)
(2, 2, 16)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgefit.errors import ConfigError, EdgefitError


class UnsupportedLayerError(EdgefitError, ValueError):
    """A layer the accelerator model does not cover (it is reported, never counted as zero)."""


@dataclass(frozen=True)
class ConvLayer:
    """One CONV or FC layer.

    Attributes:
        name: module path.
        n: batch size.
        c: input channels per group.
        h: input height (unpadded).
        w: input width (unpadded).
        m: filters (all groups).
        r: filter height.
        s: filter width.
        stride: (rows, columns).
        pad: (top, bottom, left, right).
        groups: filter groups.
        kind: ``"conv"`` or ``"fc"``.
        bits: bits per value.
    """

    name: str
    n: int
    c: int
    h: int
    w: int
    m: int
    r: int
    s: int
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    kind: str = "conv"
    bits: int = 16

    def __post_init__(self) -> None:
        for key in ("n", "c", "h", "w", "m", "r", "s", "groups", "bits"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"layer {self.name!r}: {key} must be an integer >= 1, got {value!r}")
        if any(u < 1 for u in self.stride) or any(p < 0 for p in self.pad):
            raise ConfigError(f"layer {self.name!r}: strides must be >= 1 and padding >= 0")
        if self.m % self.groups:
            raise ConfigError(f"layer {self.name!r}: {self.m} filters do not split into {self.groups} groups")
        if self.e < 1 or self.f < 1:
            raise ConfigError(f"layer {self.name!r}: a {self.r}x{self.s} filter does not fit a padded {self.hp}x{self.wp} input")

    @property
    def hp(self) -> int:
        return self.h + self.pad[0] + self.pad[1]

    @property
    def wp(self) -> int:
        return self.w + self.pad[2] + self.pad[3]

    @property
    def e(self) -> int:
        return (self.hp - self.r) // self.stride[0] + 1

    @property
    def f(self) -> int:
        return (self.wp - self.s) // self.stride[1] + 1

    @property
    def macs(self) -> int:
        """N x M x C x E x F x R x S (C per group); bias adds are not MACs."""
        return self.n * self.m * self.c * self.e * self.f * self.r * self.s

    @property
    def ifmap_elements(self) -> int:
        return self.n * self.c * self.groups * self.h * self.w

    @property
    def weight_elements(self) -> int:
        return self.m * self.c * self.r * self.s

    @property
    def ofmap_elements(self) -> int:
        return self.n * self.m * self.e * self.f

    def with_batch(self, n: int) -> ConvLayer:
        return replace(self, n=n)


def _previous_map(profile, index: int, features: int) -> tuple[int, int, int] | None:
    """The C x H x W map a Linear's ``features`` inputs were flattened from, if any."""
    for row in reversed(profile.layers[:index]):
        shape = row.output_shape
        if shape is not None and len(shape) == 4:
            c, h, w = shape[1:]
            return (c, h, w) if c * h * w == features else None
    return None


def _conv_row(row) -> ConvLayer:
    a = row.attributes
    (n, cin, h, w), = row.input_shapes[:1]
    if a.get("transposed") or tuple(a.get("dilation", (1, 1))) != (1, 1):
        raise UnsupportedLayerError(f"layer {row.name!r} ({row.kind}): transposed or dilated convolutions are not covered by the accelerator model")
    r, s = a["kernel_size"]
    ph, pw = a["padding"]
    groups = int(a.get("groups", 1))
    return ConvLayer(row.name, n=n, c=cin // groups, h=h, w=w, m=row.output_shape[1], r=r, s=s,
                     stride=tuple(a["stride"]), pad=(ph, ph, pw, pw), groups=groups)


def _fc_row(profile, index: int, row) -> ConvLayer:
    shape = row.input_shapes[0]
    n, features = shape[0], shape[-1]
    if len(shape) != 2:
        n = 1
        for d in shape[:-1]:
            n *= d
    c, h, w = _previous_map(profile, index, features) or (features, 1, 1)
    return ConvLayer(row.name, n=n, c=c, h=h, w=w, m=row.output_shape[-1], r=h, s=w, kind="fc")


def layers_from_profile(profile, *, batch: int | None = None) -> tuple[list[ConvLayer], list[tuple[str, str, int]]]:
    """CONV / FC layers of a profile, and the MAC-bearing rows the model does not cover.

    Args:
        profile: an `edgefit.metrics.Profile`.
        batch: batch size N for every layer (default: the profile's).

    Returns:
        ``(layers, uncovered)``; ``uncovered`` lists ``(name, kind, macs)`` of rows
        with MACs that are neither Conv2d nor Linear (attention, matmul, 1-D or
        3-D convolutions): they are reported, never counted as zero energy.
    """
    layers, uncovered = [], []
    for i, row in enumerate(profile.layers):
        if row.macs == 0:
            continue
        if row.kind == "Conv2d" and row.ops == ("convolution",):
            layer = _conv_row(row)
        elif row.kind == "Linear":
            layer = _fc_row(profile, i, row)
        else:
            uncovered.append((row.name, row.kind, row.macs))
            continue
        layers.append(layer.with_batch(batch) if batch else layer)
    return layers, uncovered
