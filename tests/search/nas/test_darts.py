"""Gradient-based search: the architecture weights move to the right operation."""

import pytest
import torch
from torch import nn

from edgefit.errors import ConfigError
from edgefit.search import search
from edgefit.search.nas import DartsConfig, EvalConfig, SearchSpace
from edgefit.search.nas.optimizers.darts import (
    MixedOp,
    build_supernet,
    learn_architecture,
    split_parameters,
)


def test_architecture_weights_find_the_identity_on_an_identity_task():
    # target y = x: of {3x3 avg pool, identity, 3x3 max pool}, only the identity is exact
    torch.manual_seed(0)
    op = MixedOp(2, ["avg_pool3x3", "identity", "max_pool3x3"])
    arch, weights = split_parameters(op)
    assert arch == [op.alpha] and weights == []
    xs = [torch.randn(8, 2, 6, 6) for _ in range(8)]
    batches = lambda: [(x, x) for x in xs]  # noqa: E731
    learn_architecture(op, nn.MSELoss(), batches, batches, arch_lr=0.1, weight_lr=0.1, epochs=10)
    probs = torch.softmax(op.alpha.detach(), 0)
    assert int(probs.argmax()) == 1 and float(probs[1]) > 0.6


def test_supernet_has_every_candidate_and_rejects_other_spaces():
    space = SearchSpace("s", "cell", {"node1.op": ("identity", "conv3x3"), "node2.op": ("identity", "conv1x1"),
                                      "node2.input": (0, 1)},
                        {"nodes": 2, "in_channels": 1, "channels": 4, "cells": 1, "num_classes": 10})
    net = build_supernet(space)
    arch, weights = split_parameters(net)
    assert sorted(p.numel() for p in arch) == [1, 2, 2, 2]  # alphas of 2 ops each, betas of 1 and 2 inputs
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ConfigError, match="darts needs a cell space"):
        search("mbv2", DartsConfig(), trials=1)


@pytest.mark.slow
def test_darts_search_end_to_end_and_resume_reuses_the_supernet(tmp_path):
    space = SearchSpace("s", "cell", {"node1.op": ("identity", "max_pool3x3", "conv3x3"),
                                      "node2.op": ("identity", "conv1x1"), "node2.input": (0, 1)},
                        {"nodes": 2, "in_channels": 1, "channels": 4, "cells": 1, "num_classes": 10})
    url = f"sqlite:///{tmp_path / 'd.db'}"
    cfg = EvalConfig(epochs=1, train_fraction=0.3)
    first = search(space, DartsConfig(epochs=1), trials=1, storage=url, eval_config=cfg)
    assert first.time_nas["supernet_seconds"] > 0 and len(first.records) == 1
    again = search(space, DartsConfig(epochs=1), trials=3, storage=url, eval_config=cfg)
    assert len(again.records) == 3 and again.time_nas["supernet_seconds"] == first.time_nas["supernet_seconds"]
    assert len({tuple(sorted(r.arch.items())) for r in again.records}) == 3
