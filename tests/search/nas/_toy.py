"""A tiny cell space (4 x 4 x 2 = 32 architectures) and a synthetic score with one known optimum."""

from edgefit.search.nas import SearchSpace

OPS = ("identity", "conv1x1", "conv3x3", "max_pool3x3")
TOY = SearchSpace(
    "toy",
    "cell",
    {"node1.op": OPS, "node2.op": OPS, "node2.input": (0, 1)},
    {"nodes": 2, "in_channels": 1, "num_classes": 10, "channels": 4, "input_size": 8, "cells": 1},
)
OPTIMUM = {"node1.op": "conv3x3", "node2.op": "max_pool3x3", "node2.input": 1}


def score(arch: dict) -> dict:
    """2.5 at OPTIMUM only; every other architecture scores less."""
    value = (arch["node1.op"] == "conv3x3") + (arch["node2.op"] == "max_pool3x3") + 0.5 * (arch["node2.input"] == 1)
    return {"accuracy": float(value)}


def cost(arch: dict) -> dict:
    """Two objectives with a hand-checkable front: accuracy-like score and a per-op cost."""
    price = {"identity": 0, "conv1x1": 1, "conv3x3": 3, "max_pool3x3": 1}
    return {**score(arch), "macs": price[arch["node1.op"]] + price[arch["node2.op"]]}
