"""Knowledge distillation (Hinton, Vinyals, Dean, "Distilling the Knowledge in a
Neural Network", 2015): a student learns from a teacher's softened outputs.

Loss per batch, with temperature ``T`` and soft-loss weight ``alpha``::

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
        + (1 - alpha) * cross_entropy(student, labels)

The ``T^2`` keeps the soft gradients' scale independent of ``T`` (the paper's
section 2). ``alpha = 0`` is ordinary training; use it after pruning or
factorization (`edgefit.compress.prune`, `edgefit.compress.factorize`) with the
unpruned model as the teacher to recover accuracy.

Matching soft targets converges more slowly than fitting labels: on digits a 30-30
MLP student distilled for 60 epochs was still learning where the same student on
labels alone had converged (``benchmarks/results/structured_pruning.md``); give it
several times the epochs. Soft targets help most a student large enough to overfit
its labels (Hinton et al.'s 800-800 MLP at T = 20); a very small one prefers a low T.

>>> import torch
>>> s, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
>>> float(distillation_loss(s, t, torch.tensor([0]), temperature=2.0, alpha=1.0))
0.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from edgefit.data.datasets import ArrayDataset
from edgefit.data.train import (
    TrainHistory,
    check_model_fits,
    evaluate,
    iterate_batches,
    torch_threads,
)
from edgefit.errors import ConfigError


@dataclass(frozen=True)
class DistillConfig:
    """Distillation options.

    Attributes:
        temperature: softmax temperature ``T`` (> 0) for both models' soft outputs.
        alpha: weight of the soft loss in [0, 1]; ``1 - alpha`` weighs the hard labels.
        epochs, lr, batch_size, seed, threads: the training loop (Adam).
    """

    temperature: float = 4.0
    alpha: float = 0.9
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) or not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be an integer >= 0, got {self.epochs!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
                      temperature: float, alpha: float) -> torch.Tensor:
    """Hinton's loss (see the module docstring), averaged over the batch."""
    t = temperature
    soft = nn.functional.kl_div(
        nn.functional.log_softmax(student_logits / t, 1),
        nn.functional.log_softmax(teacher_logits / t, 1),
        reduction="batchmean", log_target=True,
    ) * (t * t)
    if alpha >= 1:
        return alpha * soft
    return alpha * soft + (1 - alpha) * nn.functional.cross_entropy(student_logits, labels)


def distill_(student: nn.Module, teacher: nn.Module, data: ArrayDataset, config: DistillConfig | None = None, *,
             on_epoch: Callable[[int, float, float], None] | None = None) -> TrainHistory:
    """Train ``student`` in place on ``data`` against ``teacher``'s soft targets.

    The teacher is only run (eval mode, no grad). Returns the per-epoch loss and test accuracy.

    Raises:
        DataError: either model does not accept the data.
    """
    config = config or DistillConfig()
    check_model_fits(student, data)
    check_model_fits(teacher, data)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    history = TrainHistory()
    teacher.eval()
    with torch_threads(config.threads):
        with torch.no_grad():
            soft = torch.cat([teacher(x[i : i + 512]) for i in range(0, len(y), 512)])
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        opt = torch.optim.Adam(student.parameters(), lr=config.lr)
        index = torch.arange(len(y))
        for epoch in range(config.epochs):
            student.train()
            total = 0.0
            for ib, yb in iterate_batches(index, y, config.batch_size, gen):
                opt.zero_grad(set_to_none=True)
                loss = distillation_loss(student(x[ib]), soft[ib], yb, temperature=config.temperature,
                                         alpha=config.alpha)
                loss.backward()
                opt.step()
                total += loss.item() * len(yb)
            acc = evaluate(student, data)
            history.loss.append(total / len(y))
            history.test_accuracy.append(acc)
            if on_epoch is not None:
                on_epoch(epoch, total / len(y), acc)
    student.eval()
    return history
