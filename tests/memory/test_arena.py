"""Arena planning: hand-derived offsets, the lower bound, validation."""

from __future__ import annotations

import pytest
import torch.nn as nn

from edgefit.memory import (
    Buffer,
    InPlaceConfig,
    PlanError,
    plan_arena,
    plan_memory,
    tensors_from_trace,
)
from edgefit.memory.arena import Arena, overlapping_pairs, validate_arena
from edgefit.trace import trace

# a lives through everything; c is big early; b and d are born at the end.
BUFS = [Buffer("a", 3, 0, 3), Buffer("b", 3, 3, 3), Buffer("c", 4, 0, 1), Buffer("d", 2, 3, 3)]


def test_tflm_greedy_by_size_by_hand():
    # c (4) at 0; a (3) clashes with c -> 4; b (3) clashes with a [4,7) only -> 0;
    # d (2) clashes with a [4,7) and b [0,3): the gap 3..4 is too small -> 7. Arena 9.
    arena = plan_arena(BUFS, orders=["size"])
    assert arena.offsets == {"a": 4, "b": 0, "c": 0, "d": 7}
    assert arena.size_bytes == 9
    # live: t0 = a + c = 7, t3 = a + b + d = 8
    assert arena.lower_bound_bytes == 8 and arena.peak_step == 3


def test_best_of_orders_reaches_the_bound():
    # size x lifetime: a (12) at 0, c (8) at 3, b at 3 (c is dead), d at 6: 8 bytes.
    arena = plan_arena(BUFS)
    assert arena.size_bytes == arena.lower_bound_bytes == 8
    assert arena.order == "size x lifetime"
    assert arena.offsets == {"a": 0, "b": 3, "c": 3, "d": 6}
    assert arena.overhead == 0.0


def test_overlap_is_caught():
    bad = Arena(tuple(BUFS), {"a": 0, "b": 3, "c": 2, "d": 6}, 8, 8, 3, "size")
    assert overlapping_pairs(bad) == [("a", "c")]
    with pytest.raises(PlanError, match="a and c are alive at once and overlap"):
        validate_arena(bad)


def test_outside_the_arena_is_caught():
    with pytest.raises(PlanError, match="outside"):
        validate_arena(Arena((Buffer("a", 4, 0, 0),), {"a": 2}, 4, 4, 0, "size"))


def test_duplicate_names_and_unknown_order():
    with pytest.raises(PlanError, match="unique"):
        plan_arena([Buffer("a", 1, 0, 0), Buffer("a", 1, 0, 0)])
    with pytest.raises(PlanError, match="unknown placement order"):
        plan_arena(BUFS, orders=["random"])


def test_tensor_lifetimes_of_a_chain():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    ts = tensors_from_trace(trace(net, input_shape=(1, 1, 8, 8)))
    spans = [(t.layer, t.numel, t.start, t.end) for t in ts]
    # ops: 0 conv, 1 batch norm (+ two 4-element statistics), 2 relu, 3 conv; the output lives to the end (4)
    assert spans == [
        ("(input)", 64, 0, 0), ("0", 256, 0, 1), ("1", 256, 1, 2), ("1", 4, 1, 1), ("1", 4, 1, 1),
        ("2", 256, 2, 3), ("3", 128, 3, 4),
    ]


def test_tiny_plan_by_hand():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    p = plan_memory(net, input_shape=(1, 1, 8, 8), bits=8, techniques=[InPlaceConfig()])
    # estimate: largest input + output of one layer = conv2: 256 + 128
    assert p.estimate_bytes == 384
    # live at the batch norm: conv out 256 + bn out 256 + statistics 4 + 4
    assert p.peak_live_bytes == 520 and p.steps[1].arena_bytes == 520
    # in place, batch norm and relu reuse the conv output: peak at conv2 = 256 + 128
    assert p.arena_bytes == p.lower_bound_bytes == 384
    assert [(i.layer, i.kind, i.saved_bytes) for i in p.inplace] == [("1", "elementwise", 256), ("2", "elementwise", 256)]
