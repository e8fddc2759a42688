"""Bundled datasets and the train / evaluate loop.

>>> from edgefit.data import load_digits, train, evaluate, TrainConfig
>>> data = load_digits()   # 1,437 train / 360 test, fixed split
"""

from edgefit.data.datasets import ArrayDataset, load_dataset, load_digits, load_npz
from edgefit.data.stats import Spread
from edgefit.data.train import (
    TrainConfig,
    TrainHistory,
    apply_masks_,
    evaluate,
    seeded_init_,
    torch_threads,
    train,
)
from edgefit.data.weights import load_weights_, read_weights_metadata, save_weights

__all__ = [
    "ArrayDataset",
    "Spread",
    "TrainConfig",
    "TrainHistory",
    "apply_masks_",
    "evaluate",
    "load_dataset",
    "load_digits",
    "load_npz",
    "load_weights_",
    "read_weights_metadata",
    "save_weights",
    "seeded_init_",
    "torch_threads",
    "train",
]
