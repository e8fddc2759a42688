"""A tiny digits convnet and its adapter, shared by the NetAdapt tests (and the kill test's child)."""

from __future__ import annotations

import torch
from torch import nn

from edgefit.data import TrainConfig, load_digits, train
from edgefit.search.netadapt import ConvnetAdapter, ResourceMeter, parse_budget


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


def trained(epochs: int = 2):
    data = load_digits()
    net = tiny_net()
    train(net, data, TrainConfig(epochs=epochs, lr=3e-3))
    return net, data


def adapter_for(net, data, budgets=("macs=50%",)):
    meter = ResourceMeter([parse_budget(b) for b in budgets], (1, 1, 8, 8))
    return ConvnetAdapter(net, torch.zeros(1, 1, 8, 8), meter, data)
