"""Patch-based execution: receptive fields and tiles by hand, equal outputs, exact extra MACs, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from edgefit.memory import PatchConfig, PatchError, plan_memory
from edgefit.memory.patch import Field, find_splits, make_tiles, spatial_graph, window_size
from edgefit.metrics import profile
from edgefit.trace import trace
from edgefit.zoo import create


def chain() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6),
        nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    )


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=2, dilation=2, groups=c), nn.BatchNorm2d(c), nn.ReLU6())

    def forward(self, x):
        return x + self.body(x)


class Branches(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.a = nn.Conv2d(c, 2, 1)
        self.b = nn.Conv2d(c, 2, 5, padding=2)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


class Mixed(nn.Module):
    """Children called from a plain forward: conv, residual, branches, ceil-mode pool, avg pool."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.res = Residual(8)
        self.branch = Branches(8)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.avg = nn.AvgPool2d(2)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = self.avg(self.pool(self.branch(self.res(self.stem(x)))))
        return self.head(x.mean((2, 3)))


def test_receptive_field_by_hand():
    g = spatial_graph(trace(chain(), input_shape=(1, 3, 16, 16)))
    split = find_splits(chain(), trace(chain(), input_shape=(1, 3, 16, 16)), g)[-1]
    assert split.label == "4"  # the pool; the flatten reshapes the map
    # conv 3x3 p1: q-1..q+1; conv 3x3 s2 p1: 2q-2..2q+2; pool 2 s2: 4q-2..4q+4
    assert g.fields[split.value] == (Field(4, -2, 4), Field(4, -2, 4))
    assert g.sizes[split.value] == (4, 4)
    tiles = make_tiles(g, split, 2)
    # rows 0..1 read input 0..(1*4+4) = 0..8; rows 2..3 start at 2*4-2 = 6, aligned down to 4, crop 2 - 4/4
    assert [(t.out_rows, t.in_rows, t.crop[0]) for t in tiles[::2]] == [((0, 2), (0, 9), 0), ((2, 4), (4, 16), 1)]


def test_window_size_matches_torch():
    assert window_size(10, 3, 2, 0, True) == nn.MaxPool2d(3, 2, ceil_mode=True)(torch.zeros(1, 1, 10, 10)).shape[-1]
    assert window_size(9, 3, 2, 1, False) == 5


F64, F32 = (torch.float64, 1e-12), (torch.float32, 1e-5)


def _mobilenet():
    return create("mobilenet_v2", width_mult=0.35)


@pytest.mark.parametrize("build,shape,patches,dtype,tol", [
    (chain, (2, 3, 16, 16), 2, *F64),
    (chain, (2, 3, 16, 16), 3, *F32),
    (Mixed, (1, 3, 37, 29), 2, *F64),
    (Mixed, (1, 3, 37, 29), 3, *F32),
    pytest.param(_mobilenet, (1, 3, 64, 64), 3, *F64, marks=pytest.mark.slow),
    (_mobilenet, (1, 3, 64, 64), 2, *F32),
])
def test_patched_forward_equals_the_model(build, shape, patches, dtype, tol):
    torch.manual_seed(0)
    model = build().eval().to(dtype)
    for m in model.modules():  # non-trivial batch norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(shape, dtype=dtype)
    p = plan_memory(model, x, techniques=[PatchConfig(patches=patches, max_extra_macs=10.0)])
    patched = p.patch.apply(model)
    with torch.no_grad():
        want, got = model(x), patched(x)
    assert want.shape == got.shape
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    assert patched is not model and all(a is b for a, b in zip(patched.parameters(), model.parameters(), strict=True))


def test_extra_macs_are_what_the_patched_model_runs():
    model = create("mobilenet_v2", width_mult=0.35)
    p = plan_memory(model, input_shape=(1, 3, 96, 96), techniques=[PatchConfig(patches=3, split="features.3", max_extra_macs=1.0)])
    patched = p.patch.apply(model)
    extra = profile(patched, input_shape=(1, 3, 96, 96)).totals.macs - profile(model, input_shape=(1, 3, 96, 96)).totals.macs
    assert extra == p.patch.extra_macs > 0
    assert p.steps[-1].extra_macs == p.patch.extra_macs


def test_mobilenet_v2_planned_peak():
    # peak live 497,760 B (486 KB) at int8; in place 290,304 B; 5x5 patches up to features.2: 94,976 B
    p = plan_memory(create("mobilenet_v2", width_mult=0.35), input_shape=(1, 3, 144, 144), bits=8)
    assert [(s.name, s.arena_bytes) for s in p.steps] == [
        ("estimate", None), ("arena", 497760), ("in-place", 290304), ("patches", 94976)]
    assert (p.patch.split.label, p.patch.patches, p.patch.extra_macs) == ("features.2", 5, 4391168)
    assert p.patch.overhead < 0.2 and p.peak_live_bytes / p.arena_bytes > 4


class SqueezeExcite(nn.Module):
    """A conv with a squeeze-and-excitation gate: a global op in the first block."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 4, 1), nn.Sigmoid())

    def forward(self, x):
        x = self.conv(x)
        return x * self.gate(x)


def test_global_op_early_is_one_clear_error():
    model = nn.Sequential(SqueezeExcite(), nn.Conv2d(4, 4, 3))
    with pytest.raises(PatchError, match=r"^cannot patch the first stage of Sequential: mean in 0.gate.0 is not a local op$"):
        plan_memory(model, input_shape=(1, 3, 16, 16), techniques=[PatchConfig(patches=2)])
    auto = plan_memory(model, input_shape=(1, 3, 16, 16), techniques=[PatchConfig()])
    assert auto.patch is None and auto.notes == ("patches: cannot patch the first stage of Sequential: "
                                                 "mean in 0.gate.0 is not a local op",)


class ComputesFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x * 2)


def test_model_that_computes_before_its_children():
    with pytest.raises(PatchError, match=r"its first op \(mul in the root module\) runs outside its child modules"):
        plan_memory(ComputesFirst(), input_shape=(1, 3, 8, 8), techniques=[PatchConfig(patches=2)])


def test_impossible_settings():
    model = create("mobilenet_v2", width_mult=0.35)
    with pytest.raises(PatchError, match="too many: the stage output after features.1 is 32x32"):
        plan_memory(model, input_shape=(1, 3, 64, 64), techniques=[PatchConfig(patches=40, split="features.1")])
    with pytest.raises(PatchError, match="it can end after features.0.0, features.0.1"):
        plan_memory(model, input_shape=(1, 3, 64, 64), techniques=[PatchConfig(split="classifier")])
    with pytest.raises(PatchError, match=r"no patch setting within \+20% MACs brings the peak under 1,000 bytes"):
        plan_memory(model, input_shape=(1, 3, 64, 64), techniques=[PatchConfig(target_bytes=1000)])


def test_config_validation():
    from edgefit.errors import ConfigError
    from edgefit.memory import InPlaceConfig

    for bad in (dict(patches=1), dict(patches="many"), dict(max_extra_macs=-0.1), dict(split=0), dict(target_bytes=0)):
        with pytest.raises(ConfigError):
            PatchConfig(**bad)
    with pytest.raises(ConfigError):
        InPlaceConfig(elementwise=False, depthwise=False)


def test_patched_plan_of_a_tiny_chain_by_hand():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 2, 3, padding=1),
        nn.Flatten(), nn.Linear(32, 10),
    )
    p = plan_memory(net, input_shape=(1, 1, 8, 8), bits=8, techniques=[PatchConfig(patches=2, split="2",
                                                                                 max_extra_macs=1.0)])
    # pool output q reads input 2q-1 .. 2q+2: tile rows [0,2) read [0,5), rows [2,4) read [2,8) (crop 1)
    assert [(t.out_rows, t.in_rows, t.crop) for t in p.patch.tiles[::3]] == [((0, 2), (0, 5), (0, 0)),
                                                                            ((2, 4), (2, 8), (1, 1))]
    # unpatched peak at the relu: conv out 256 + relu out 256
    assert p.peak_live_bytes == 512
    # patched, at the relu of the largest (6x6) tile: input 64 + assembled output 4x4x4 = 64
    # + conv out 4x6x6 = 144 + relu out 144
    assert p.arena_bytes == p.lower_bound_bytes == 416
    # conv1: 36 MACs per output position; tiles 5x5 + 5x6 + 6x5 + 6x6 = 121 positions against 64
    assert p.patch.extra_macs == 36 * (121 - 64) == 2052
    assert p.macs == 2304 + 1152 + 320
