"""The layer format of the lecturers' energy-estimation tool (reference/003).

One line per CONV / FC layer, 25 comma-separated integers::

    Layer_Index, Conf_IfMap (6), Conf_Filt (6), Conf_OfMap (6), Stride (2), Pad (4)

where each configuration is ``height, width, number_of_channels,
number_of_maps_or_filt, number_of_zero_entries, bitwidth_in_bits``, the stride is
``stride_y, stride_x`` and the padding ``pad_top, pad_bottom, pad_left,
pad_right``. A grouped convolution is written with the ifmap's full channel
count and the filter's channels per group, so ``groups`` comes back as their
ratio; an FC layer is a filter as large as its input.

>>> line = to_line(1, ConvLayer("conv1", n=4, c=3, h=227, w=227, m=96, r=11, s=11, stride=(4, 4)))
>>> line
'1,227,227,3,4,0,16,11,11,3,96,0,16,55,55,96,4,0,16,4,4,0,0,0,0'
>>> from_line(line).e
55
"""

from __future__ import annotations

import os
from pathlib import Path

from edgefit._io import atomic_write
from edgefit.accel.layers import ConvLayer
from edgefit.errors import DataError, EdgefitError

FIELDS = 25


def to_line(index: int, layer: ConvLayer, zeros: tuple[int, int, int] = (0, 0, 0)) -> str:
    """One line for ``layer``; ``zeros`` = zero entries of (ifmap, filters, ofmap)."""
    b = layer.bits
    ifmap = (layer.h, layer.w, layer.c * layer.groups, layer.n, zeros[0], b)
    filt = (layer.r, layer.s, layer.c, layer.m, zeros[1], b)
    ofmap = (layer.e, layer.f, layer.m, layer.n, zeros[2], b)
    return ",".join(str(v) for v in (index, *ifmap, *filt, *ofmap, *layer.stride, *layer.pad))


def from_line(line: str, name: str | None = None) -> ConvLayer:
    """A `ConvLayer` from one line.

    Raises:
        DataError: not 25 integers, or inconsistent shapes.
    """
    parts = [p.strip() for p in line.strip().split(",")]
    if len(parts) != FIELDS:
        raise DataError(f"energy-tool line {line.strip()!r}: expected {FIELDS} comma-separated fields, got {len(parts)}")
    try:
        v = [int(p) for p in parts]
    except ValueError:
        raise DataError(f"energy-tool line {line.strip()!r}: every field must be an integer") from None
    index, (h, w, c_in, n, _zi, bits), (r, s, c, m, _zf, _bf), (e, f, m_out, _n2, _zo, _bo) = v[0], v[1:7], v[7:13], v[13:19]
    if c < 1 or c_in % c or m != m_out:
        raise DataError(f"energy-tool line {index}: ifmap channels {c_in}, filter channels {c} and filters {m}/{m_out} disagree")
    try:
        layer = ConvLayer(name or f"layer{index}", n=n, c=c, h=h, w=w, m=m, r=r, s=s, stride=(v[19], v[20]),
                          pad=tuple(v[21:25]), groups=c_in // c, kind="fc" if (e, f) == (1, 1) and (r, s) == (h, w) else "conv",
                          bits=bits)
    except EdgefitError as exc:
        raise DataError(f"energy-tool line {index}: {exc}") from None
    if (layer.e, layer.f) != (e, f):
        raise DataError(f"energy-tool line {index}: the ofmap is {e}x{f} but the shapes give {layer.e}x{layer.f}")
    return layer


def write_energy_tool(layers, path: str | os.PathLike, zeros=None) -> Path:
    """Write layers (and optional per-layer zero counts) as the tool's text file, atomically."""
    zeros = zeros or [(0, 0, 0)] * len(layers)
    text = "\n".join(to_line(i, layer, z) for i, (layer, z) in enumerate(zip(layers, zeros, strict=True), 1))
    return atomic_write(path, text + "\n")


def read_energy_tool(path: str | os.PathLike) -> list[ConvLayer]:
    """Layers from the tool's text file (blank lines skipped; indices must count from 1)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{path}: no such energy-tool file")
    lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
    layers = [from_line(ln) for ln in lines]
    for i, ln in enumerate(lines, 1):
        if int(ln.split(",")[0]) != i:
            raise DataError(f"{path}: line {i} has layer index {ln.split(',')[0].strip()}; indices must be 1, 2, 3, ...")
    return layers
