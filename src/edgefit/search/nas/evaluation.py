"""Cheap evaluation of one architecture: approximate accuracy (a few epochs on a
subset, validation held out of the training split) and exact metrics (see objectives)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgefit.errors import ConfigError


@dataclass(frozen=True)
class EvalConfig:
    """How a sampled architecture's accuracy is approximated.

    Attributes:
        epochs: training epochs per sample (the lectures' "approximate accuracy").
        train_fraction: share of the (search) training set used, in (0, 1].
        val_fraction: share of the dataset's training split held out for validation;
            the test split is never seen by the search.
        lr, batch_size: Adam learning rate and mini-batch size.
        seed: seeds the split, the initial weights and the batch order.
        threads: torch threads per evaluation.
    """

    epochs: int = 3
    train_fraction: float = 1.0
    val_fraction: float = 0.2
    lr: float = 1e-2
    batch_size: int = 32
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        self.train_config()  # validates epochs, lr, batch_size, seed, threads
        if self.epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction must be in (0, 1], got {self.train_fraction!r}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")

    def train_config(self):
        """The `TrainConfig` of one sample's training."""
        from edgefit.data import TrainConfig

        return TrainConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                           threads=self.threads)


def search_split(data, config: EvalConfig):
    """The dataset the search sees: a subset of the training split as ``train`` and a
    held-out part of it as ``test`` (validation). Deterministic in ``config.seed``."""
    from edgefit.data import ArrayDataset

    n = len(data.y_train)
    order = np.random.default_rng(config.seed).permutation(n)
    n_val = max(1, int(round(n * config.val_fraction)))
    val, train = order[:n_val], order[n_val:]
    train = train[: max(1, int(round(len(train) * config.train_fraction)))]
    return ArrayDataset(
        f"{data.name}-search", data.x_train[train], data.y_train[train], data.x_train[val], data.y_train[val],
        data.num_classes,
    )


def train_and_score(space_dict: dict, arch: dict, data, config: EvalConfig) -> dict:
    """Build ``arch``, train it briefly on ``data.train`` and score ``data.test``.

    A top-level function so that Ray can ship it to a worker. Returns
    ``{"accuracy", "train_seconds"}``.
    """
    import torch

    from edgefit.data import evaluate, train
    from edgefit.search.nas.space import SearchSpace

    start = time.perf_counter()
    torch.manual_seed(config.seed)
    model = SearchSpace.from_dict(space_dict).build(arch)
    train(model, data, config.train_config())
    return {"accuracy": evaluate(model, data), "train_seconds": time.perf_counter() - start}


def call_user_evaluate(fn, arch: dict) -> dict:
    """Run a user ``evaluate(arch) -> {metric key: value}`` and time it."""
    start = time.perf_counter()
    out = dict(fn(dict(arch)))
    out.setdefault("train_seconds", time.perf_counter() - start)
    return out
