"""Seeded, deterministic training and evaluation on CPU.

Determinism: the model's initial weights come from the caller; everything the
loop draws (batch order) comes from a ``torch.Generator`` seeded with
``TrainConfig.seed``, and ``torch.manual_seed(seed)`` is set for dropout-like
layers. The loop runs with ``torch.set_num_threads(threads)`` and restores the
previous value on exit, so two runs with the same inputs and thread count give
the same weights bit for bit on the same machine. The default is one intra-op
thread: the digits models are so small that a second thread only adds
synchronisation (measured 4-10x slower on a busy 2-core machine), and results
depend on the thread count, so one fixed value keeps them reproducible.

Masks: ``train(..., masks={param_name: bool tensor})`` holds pruned weights at
zero while retraining (gradients are masked and the mask is re-applied after
every optimizer step, so Adam's moments cannot revive a pruned weight).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgefit.data.datasets import ArrayDataset
from edgefit.errors import ConfigError, DataError

_OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        epochs: passes over the training set (0 is allowed: nothing happens).
        lr: learning rate.
        batch_size: samples per step.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        weight_decay: L2 penalty.
        seed: seeds the batch order (and ``torch.manual_seed``).
        threads: torch intra-op threads during the loop (1: fastest and reproducible for small models).
        lr_decay: multiply the learning rate by this after every epoch.
    """

    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    threads: int = 1
    lr_decay: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 0:
            raise ConfigError(f"epochs must be an integer >= 0, got {self.epochs!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"threads must be an integer >= 1, got {self.threads!r}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")


@dataclass
class TrainHistory:
    """Per-epoch mean training loss and test accuracy."""

    loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``torch.set_num_threads(n)``, restoring the old value after."""
    old = torch.get_num_threads()
    torch.set_num_threads(min(n, os.cpu_count() or n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _tensors(data: ArrayDataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(getattr(data, f"x_{split}"))
    y = torch.from_numpy(getattr(data, f"y_{split}"))
    return x, y


def iterate_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled mini-batches; the order depends only on ``generator``'s state."""
    perm = torch.randperm(len(y), generator=generator)
    for i in range(0, len(y), batch_size):
        idx = perm[i : i + batch_size]
        yield x[idx], y[idx]


def check_model_fits(model: nn.Module, data: ArrayDataset) -> None:
    """Raise :class:`DataError` when the model cannot eat the dataset's samples."""
    x = torch.from_numpy(data.x_test[:2])
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:
        raise DataError(
            f"the model does not accept {data.name} samples of shape {data.sample_shape}:"
            f" {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if out.ndim != 2 or out.shape[1] < data.num_classes:
        raise DataError(
            f"the model outputs shape {tuple(out.shape)} but {data.name} has {data.num_classes} classes"
        )


def evaluate(model: nn.Module, data: ArrayDataset, split: str = "test", batch_size: int = 512) -> float:
    """Top-1 accuracy in [0, 1] on ``split`` (``"test"`` or ``"train"``)."""
    x, y = _tensors(data, split)
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(y)


def apply_masks_(model: nn.Module, masks: dict[str, torch.Tensor] | None) -> None:
    """Zero the pruned entries of each masked parameter, in place."""
    if not masks:
        return
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            p = params[name]
            p.copy_(torch.where(mask, p, torch.zeros((), dtype=p.dtype)))


def train(
    model: nn.Module,
    data: ArrayDataset,
    config: TrainConfig | None = None,
    *,
    masks: dict[str, torch.Tensor] | None = None,
    params: list[nn.Parameter] | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
    before_step: Callable[[], None] | None = None,
    after_backward: Callable[[], None] | None = None,
    after_step: Callable[[], None] | None = None,
) -> TrainHistory:
    """Train ``model`` in place with cross-entropy; returns the history.

    Args:
        model: the network; its output is (batch, classes) logits.
        data: the dataset.
        config: hyper-parameters (defaults: 30 epochs of Adam at 1e-3).
        masks: parameter name -> bool mask of weights to keep at their value
            (False entries are held at exactly zero).
        params: parameters to optimize (default: all of the model's).
        on_epoch: called as ``on_epoch(epoch, mean_loss, test_accuracy)``; the
            CLI draws its progress bar from it.
        before_step: called before each forward pass (weight sharing re-derives
            weights from codebooks here).
        after_backward: called after ``backward`` (e.g. to route gradients).
        after_step: called after each optimizer step.

    >>> from edgefit.data import load_digits, TrainConfig
    >>> # train(model, load_digits(), TrainConfig(epochs=5))
    """
    config = config or TrainConfig()
    check_model_fits(model, data)
    history = TrainHistory()
    if config.epochs == 0:
        return history
    x, y = _tensors(data, "train")
    params = list(model.parameters()) if params is None else list(params)
    named = dict(model.named_parameters())
    if masks:
        unknown = [n for n in masks if n not in named]
        if unknown:
            raise ConfigError(f"masks name parameters the model lacks: {unknown}")
    with torch_threads(config.threads):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        if config.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=config.lr_decay)
        loss_fn = nn.CrossEntropyLoss()
        apply_masks_(model, masks)
        for epoch in range(config.epochs):
            model.train()
            total, count = 0.0, 0
            for xb, yb in iterate_batches(x, y, config.batch_size, gen):
                if before_step is not None:
                    before_step()
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                if masks:
                    for name, mask in masks.items():
                        g = named[name].grad
                        if g is not None:
                            g.mul_(mask)
                if after_backward is not None:
                    after_backward()
                opt.step()
                apply_masks_(model, masks)
                if after_step is not None:
                    after_step()
                total += loss.item() * len(yb)
                count += len(yb)
            sched.step()
            if before_step is not None:
                before_step()
            acc = evaluate(model, data)
            history.loss.append(total / count)
            history.test_accuracy.append(acc)
            if on_epoch is not None:
                on_epoch(epoch, total / count, acc)
    model.eval()
    return history


def seeded_init_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialize every parameter from ``seed`` (each module's own reset)."""
    torch.manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters") and m is not model:
            m.reset_parameters()
    return model


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
