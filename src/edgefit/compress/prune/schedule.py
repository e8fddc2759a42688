"""Iterative prune-and-retrain on a schedule.

Han 2015 prunes and retrains in several rounds; Zhu & Gupta ("To prune, or not
to prune", 2017) give the automated gradual pruning (AGP) schedule used here:

    s_t = s_f + (s_i - s_f) * (1 - t / n) ** 3,   t = 1..n

(``kind="linear"`` steps evenly instead). After each pruning step the model is
retrained for ``epochs_per_step`` epochs with the masks held fixed, so a pruned
weight never comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from edgefit.compress._layers import check_each, check_fraction, per_layer, select_layers
from edgefit.compress.prune.cleanup import remove_dead_connections_
from edgefit.compress.prune.magnitude import MagnitudeConfig, masks_from_zeros, prune_
from edgefit.errors import ConfigError

_KINDS = ("agp", "linear")


@dataclass(frozen=True)
class GradualConfig:
    """Gradual pruning schedule.

    Attributes:
        sparsity: final sparsity, one value or ``{layer: value}``.
        steps: pruning steps (each followed by retraining).
        epochs_per_step: retraining epochs after each step.
        initial: sparsity of the first step's starting point.
        kind: ``"agp"`` (cubic, Zhu & Gupta 2017) or ``"linear"``.
        final_epochs: extra retraining epochs after the last step.
        cleanup: after each step, zero connections of dead neurons and fold
            constant neurons into the next bias (:func:`remove_dead_connections_`).
    """

    sparsity: float | Mapping[str, float]
    steps: int = 5
    epochs_per_step: int = 5
    initial: float = 0.0
    kind: str = "agp"
    final_epochs: int = 0
    cleanup: bool = True

    def __post_init__(self) -> None:
        check_each(self.sparsity, check_fraction, "sparsity")
        check_fraction(self.initial, "initial")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps!r}")
        for k in ("epochs_per_step", "final_epochs"):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"{k} must be an integer >= 0, got {v!r}")
        if self.kind not in _KINDS:
            raise ConfigError(f"kind must be one of {_KINDS}, got {self.kind!r}")

    def at(self, step: int, final: float) -> float:
        """Target sparsity after step ``step`` (1-based) for a layer ending at ``final``."""
        frac = step / self.steps
        if self.kind == "agp":
            return final + (self.initial - final) * (1 - frac) ** 3
        return self.initial + (final - self.initial) * frac


@dataclass
class GradualResult:
    """Masks after the last step, and ``(step, {layer: sparsity}, test accuracy)`` per step."""

    masks: dict[str, torch.Tensor]
    history: list[tuple[int, dict[str, float], float]] = field(default_factory=list)


def prune_gradually_(
    model: nn.Module,
    data,
    config: GradualConfig,
    train_config=None,
    *,
    on_step: Callable[[int, dict[str, float], float], None] | None = None,
) -> GradualResult:
    """Prune ``model`` in place over ``config.steps`` rounds, retraining in between.

    Args:
        model: trained dense (or partly pruned) model.
        data: an :class:`edgefit.data.ArrayDataset`.
        config: the schedule.
        train_config: :class:`edgefit.data.TrainConfig` for retraining; its
            ``epochs`` is replaced by ``config.epochs_per_step``.
        on_step: called as ``on_step(step, sparsities, accuracy)``.
    """
    from dataclasses import replace

    from edgefit.data.train import TrainConfig, evaluate, train

    tc = train_config or TrainConfig(lr=5e-4)
    layers = select_layers(model, tuple(config.sparsity) if isinstance(config.sparsity, Mapping) else None)
    finals = per_layer(config.sparsity, layers, "sparsity")
    result = GradualResult(masks={})
    for step in range(1, config.steps + 1):
        targets = {n: config.at(step, float(s)) for n, s in finals.items()}
        result.masks = prune_(model, MagnitudeConfig(sparsity=targets))
        if config.cleanup:
            remove_dead_connections_(model)
            result.masks = masks_from_zeros(model, tuple(targets))
        epochs = config.epochs_per_step + (config.final_epochs if step == config.steps else 0)
        train(model, data, replace(tc, epochs=epochs, seed=tc.seed + step), masks=result.masks)
        acc = evaluate(model, data)
        result.history.append((step, targets, acc))
        if on_step is not None:
            on_step(step, targets, acc)
    return result
