"""Plans on every zoo model: valid arenas, the lower bound, in-place rules, the imbalance picture."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn

from edgefit.memory import InPlaceConfig, PatchConfig, plan_memory, register_technique
from edgefit.memory.arena import overlapping_pairs
from edgefit.metrics import UncountedOpsWarning, profile
from edgefit.zoo import create, get_spec, list_models

CNNS = {"alexnet", "densenet121", "googlenet", "lenet5", "lenet5_digits", "mobilenet_v1", "mobilenet_v2",
        "resnet50", "resnext50_32x4d", "shufflenet_v1", "squeezenet1_0", "vgg16"}


def _zoo_plan(name, techniques):
    spec = get_spec(name)
    x = torch.empty(spec.input_shape, dtype=getattr(torch, spec.input_dtype), device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)
        return plan_memory(create(name, device="meta"), x, techniques=techniques), x


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_zoo_plan_is_valid(name):
    p, x = _zoo_plan(name, [InPlaceConfig(), PatchConfig()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)
        prof = profile(create(name, device="meta"), x)
    # before any technique the lower bound is the profile's peak live activations
    assert p.steps[1].lower_bound_bytes == prof.totals.peak_live_bytes == p.peak_live_bytes
    assert overlapping_pairs(p.arena) == []
    for step in p.steps[1:]:
        assert step.arena_bytes >= step.lower_bound_bytes
        assert step.lower_bound_bytes <= p.peak_live_bytes
    if name in CNNS:  # the greedy arena is within 5% of the bound, after every step
        assert all(s.arena_bytes <= 1.05 * s.lower_bound_bytes for s in p.steps[1:])
    if p.patch is not None:
        assert p.patch.overhead <= 0.2 and p.arena.lower_bound_bytes < p.steps[-2].lower_bound_bytes


def test_residual_input_is_not_overwritten():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1, groups=4)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            return x + self.bn(self.conv(x))

    p = plan_memory(Block(), input_shape=(1, 4, 8, 8), bits=8, techniques=[InPlaceConfig()])
    # the depthwise conv may not overwrite x (the add reads it later); the batch norm
    # overwrites the conv output, the add overwrites x or the batch norm output
    kinds = [(i.layer, i.kind) for i in p.inplace]
    assert kinds == [("bn", "elementwise"), ("", "elementwise")]
    # x 256 + conv 256 alive, plus the batch norm's two 4-element statistics
    assert p.arena_bytes == 520


def test_depthwise_in_place_with_scratch():
    net = nn.Sequential(nn.Conv2d(1, 8, 1), nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.Conv2d(8, 2, 1))
    p = plan_memory(net, input_shape=(1, 1, 8, 8), bits=8, techniques=[InPlaceConfig(elementwise=False)])
    (ip,) = p.inplace
    # input 8x8x8 = 512, output 8x4x4 = 128 written over it via a one-channel 4x4 scratch
    assert (ip.layer, ip.kind, ip.scratch_numel, ip.saved_bytes) == ("1", "depthwise", 16, 128 - 16)
    # peak: conv0 (in 64 + out 512) = 576 before; the depthwise now needs 512 + 16
    assert p.steps[1].arena_bytes == 640 and p.arena_bytes == 576


def test_imbalance_of_mobilenet_v2():
    p = plan_memory(create("mobilenet_v2", width_mult=0.35, device="meta"), input_shape=(1, 3, 144, 144), bits=8,
                    techniques=[])
    assert p.imbalance() == (
        "the first 3 of 21 blocks (to features.2) hold 0.1% of the weights but need more than half of the "
        "486 KB peak (at features.2); the other 18 need at most 132 KB (27% of it)"
    )
    first = p.layers[0]
    assert (first.name, first.input_output_bytes, first.live_bytes, first.weight_bytes) == (
        "features.0.0", 3 * 144 * 144 + 16 * 72 * 72, 3 * 144 * 144 + 16 * 72 * 72, 432)


def test_unknown_technique_and_duplicate_registration():
    from edgefit.errors import ConfigError, RegistryError

    with pytest.raises(ConfigError, match="unknown memory technique int"):
        plan_memory(nn.Linear(2, 2), input_shape=(1, 2), techniques=[3])
    with pytest.raises(RegistryError, match="already registered"):
        register_technique(InPlaceConfig)(lambda state, cfg: None)
