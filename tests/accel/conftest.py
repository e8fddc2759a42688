import pytest
import torch
from torch import nn

from edgefit.data import TrainConfig, load_digits, train


@pytest.fixture(scope="session")
def digits_convnet():
    """``make(epochs) -> (net in eval mode, digits)``: a tiny conv + two linears, seeded, trained on digits."""

    def make(epochs: int):
        data = load_digits()
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))
        train(net, data, TrainConfig(epochs=epochs))
        return net.eval(), data

    return make
