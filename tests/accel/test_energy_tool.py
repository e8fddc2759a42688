"""The energy-estimation tool's 25-field layer format, both ways."""

import pytest

from edgefit.accel.energy_tool import (
    FIELDS,
    from_line,
    read_energy_tool,
    to_line,
    write_energy_tool,
)
from edgefit.accel.layers import ConvLayer, layers_from_profile
from edgefit.errors import DataError
from edgefit.metrics import profile
from edgefit.zoo import create


def test_alexnet_round_trip(tmp_path):
    layers, uncovered = layers_from_profile(profile(create("alexnet", device="meta"), input_shape=(1, 3, 224, 224)), batch=4)
    assert uncovered == [] and len(layers) == 8
    path = write_energy_tool(layers, tmp_path / "alexnet.txt")
    lines = path.read_text().splitlines()
    assert all(len(line.split(",")) == FIELDS for line in lines)
    # CONV2 is grouped: ifmap 96 channels, filters of 48 channels (as the Eyeriss papers list it)
    assert lines[1] == "2,27,27,96,4,0,16,5,5,48,256,0,16,27,27,256,4,0,16,1,1,2,2,2,2"
    # FC6 is a 6x6x256 filter over the 6x6x256 input
    assert lines[5] == "6,6,6,256,4,0,16,6,6,256,4096,0,16,1,1,4096,4,0,16,1,1,0,0,0,0"
    back = read_energy_tool(path)
    for a, b in zip(layers, back, strict=True):
        assert (a.n, a.c, a.h, a.w, a.m, a.r, a.s, a.stride, a.pad, a.groups, a.kind, a.macs) == (
            b.n, b.c, b.h, b.w, b.m, b.r, b.s, b.stride, b.pad, b.groups, b.kind, b.macs)
    assert sum(b.macs for b in back) == 4 * 724_406_816


def test_zero_counts_are_written():
    line = to_line(1, ConvLayer("c", n=1, c=1, h=4, w=4, m=1, r=3, s=3), zeros=(5, 2, 1))
    assert line == "1,4,4,1,1,5,16,3,3,1,1,2,16,2,2,1,1,1,16,1,1,0,0,0,0"


@pytest.mark.parametrize("line, message", [
    ("1,2,3", "expected 25"),
    ("1,4,4,1,1,0,16,3,3,1,1,0,16,2,2,1,1,0,16,1,1,0,0,0,x", "integer"),
    ("1,4,4,1,1,0,16,3,3,1,1,0,16,3,3,1,1,0,16,1,1,0,0,0,0", "ofmap is 3x3"),
    ("1,4,4,3,1,0,16,3,3,2,1,0,16,2,2,1,1,0,16,1,1,0,0,0,0", "disagree"),
])
def test_bad_lines(line, message):
    with pytest.raises(DataError, match=message):
        from_line(line)


def test_bad_index_and_missing_file(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("2,4,4,1,1,0,16,3,3,1,1,0,16,2,2,1,1,0,16,1,1,0,0,0,0\n")
    with pytest.raises(DataError, match="indices must be 1, 2, 3"):
        read_energy_tool(p)
    with pytest.raises(DataError, match="no such"):
        read_energy_tool(tmp_path / "missing.txt")
