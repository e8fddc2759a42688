import pytest
import torch

import edgefit
from edgefit.errors import ConfigError, RegistryError
from edgefit.search.nas import SearchSpace, list_spaces, load_space
from edgefit.search.nas.builders import OPERATIONS, make_operation
from edgefit.zoo.blocks import InvertedResidual


def test_builtin_spaces_sizes_and_cheapest_first():
    assert list_spaces() == ["cell", "mbv2"]
    cell, mbv2 = load_space("cell"), load_space("mbv2")
    assert cell.size == 12**4 * (1 * 2 * 3 * 4)
    assert mbv2.size == 3 * 3 * 27**3
    assert mbv2.smallest()["width"] == 0.5 and cell.smallest()["node1.op"] == "identity"
    assert set(cell.params["node1.op"]) == set(OPERATIONS)  # the lectures' twelve operations
    assert len(OPERATIONS) == 12


# parameters of each operation at c channels (BatchNorm: 2c), hand-derived
@pytest.mark.parametrize(
    "op, params",
    [
        ("identity", 0), ("avg_pool3x3", 0), ("max_pool3x3", 0), ("max_pool5x5", 0), ("max_pool7x7", 0),
        ("conv1x1", 16 + 8), ("conv3x3", 9 * 16 + 8), ("dil_conv3x3", 9 * 16 + 8),
        ("sep_conv3x3", 9 * 4 + 16 + 8), ("sep_conv5x5", 25 * 4 + 16 + 8),
        ("conv1x3_3x1", 2 * 3 * 16 + 8), ("conv1x7_7x1", 2 * 7 * 16 + 8),
    ],
)
def test_operations_keep_shape_and_have_hand_derived_params(op, params):
    m = make_operation(op, 4)
    assert m(torch.zeros(1, 4, 8, 8)).shape == (1, 4, 8, 8)
    assert sum(p.numel() for p in m.parameters()) == params


def test_profile_counts_a_sampled_network_exactly():
    # conv3x3 at 4 channels on 8x8: 9 * 4 * 4 * 64 MACs
    p = edgefit.profile(make_operation("conv3x3", 4), input_shape=(1, 4, 8, 8))
    assert p.totals.macs == 9216
    s = SearchSpace("one", "cell", {"node1.op": ("conv3x3",)},
                    {"nodes": 1, "in_channels": 1, "channels": 4, "cells": 1, "num_classes": 10, "input_size": 8})
    prof = edgefit.profile(s.build(s.smallest()), input_shape=s.input_shape())
    # stem 3x3 1->4 (36 x 64), cell conv3x3 (9216), linear 4->10 (40)
    assert prof.totals.macs == 36 * 64 + 9216 + 40
    assert prof.uncounted == {}


def test_searchable_kernel_block_params_hand_derived():
    # expand 8->24 (192) + BN 48, depthwise 5x5 (600) + BN 48, project 24->8 (192) + BN 16
    assert sum(p.numel() for p in InvertedResidual(8, 8, 1, 3, 5).parameters()) == 1096
    assert InvertedResidual(8, 8, 1, 3, 5).use_res_connect and not InvertedResidual(8, 16, 2, 3, 5).use_res_connect


def test_mbv2_resolution_adds_a_resize_and_profiles():
    s = load_space("mbv2")
    arch = {**s.smallest(), "resolution": 16}
    p = edgefit.profile(s.build(arch), input_shape=s.input_shape())
    assert p.layers[0].output_shape == (1, 1, 16, 16)
    assert p.uncounted == {}


def test_user_space_from_yaml(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nbuilder: cell\noptions: {nodes: 1, in_channels: 1, channels: 4}\n"
                 "params:\n  node1.op: [identity, conv1x1]\n")
    s = load_space(f)
    assert s.size == 2 and s.neighbors({"node1.op": "identity"}) == [{"node1.op": "conv1x1"}]
    assert load_space(f, channels=8).options["channels"] == 8


@pytest.mark.parametrize(
    "spec, error, text",
    [
        ("mbv3", RegistryError, "unknown search space"),
        ({"name": "x", "builder": "nope", "params": {"a": [1]}}, RegistryError, "unknown space builder"),
        ({"name": "x", "builder": "cell", "params": {"a": []}}, ConfigError, "non-empty list"),
        ({"name": "x", "builder": "cell", "params": {"a": [1, 1]}}, ConfigError, "repeats"),
        ({"name": "x", "builder": "cell"}, ConfigError, "missing 'params'"),
        ({"name": "x", "builder": "cell", "params": [1, 2]}, ConfigError, "params must be a mapping"),
    ],
)
def test_bad_spaces(spec, error, text):
    with pytest.raises(error, match=text):
        load_space(spec)


def test_bad_architecture():
    s = load_space("cell")
    with pytest.raises(ConfigError, match="not a choice"):
        s.build({**s.smallest(), "node1.op": "conv9x9"})
    with pytest.raises(ConfigError, match="lacks"):
        s.build({"node1.op": "identity"})
