"""Reinforcement learning: a REINFORCE controller (Williams 1992) as in Zoph & Le,
"Neural Architecture Search with Reinforcement Learning", ICLR 2017, with the
controller factorized into one softmax per choice (the ENAS-style policy without the
RNN): sample an architecture with probability p, observe its reward R, move the
logits along (R - baseline) * grad log p.

The controller's state is replayed from the stored trials in order at every
proposal, so a resumed study has the same controller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgefit.errors import ConfigError
from edgefit.search.nas.optimizers import OptimizerConfig, check_positive, register_optimizer
from edgefit.search.nas.optimizers.base import ProposalSampler


@dataclass(frozen=True)
class ReinforceConfig(OptimizerConfig):
    """Attributes: lr: policy-gradient step on the logits (rewards are standardized);
    baseline_decay: the moving-average baseline's decay in [0, 1)."""

    lr: float = 0.5
    baseline_decay: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("lr", self.lr)
        if not 0 <= self.baseline_decay < 1:
            raise ConfigError(f"baseline_decay must be in [0, 1), got {self.baseline_decay!r}")


def softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    e = [math.exp(x - top) for x in logits]
    s = sum(e)
    return [x / s for x in e]


def controller_logits(space, history, scores, lr: float, decay: float) -> dict[str, list[float]]:
    """The controller after learning from ``history`` (rewards = ``scores``, standardized)."""
    logits = {k: [0.0] * len(v) for k, v in space.params.items()}
    finite = [s for s in scores if math.isfinite(s)]
    if not finite:
        return logits
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((s - mean) ** 2 for s in finite) / len(finite)) or 1.0
    floor = min(finite) - std
    baseline = None
    for trial, score in zip(history, scores, strict=True):
        reward = ((score if math.isfinite(score) else floor) - mean) / std
        baseline = reward if baseline is None else decay * baseline + (1 - decay) * reward
        advantage = reward - baseline
        for key, choices in space.params.items():
            probs = softmax(logits[key])
            picked = choices.index(trial.params[key])
            for j in range(len(choices)):
                logits[key][j] += lr * advantage * ((1.0 if j == picked else 0.0) - probs[j])
    return logits


class ReinforceSampler(ProposalSampler):
    def __init__(self, space, seed: int, lr: float, decay: float) -> None:
        super().__init__(space, seed)
        self.lr, self.decay = lr, decay

    def propose(self, history, scores, seen, rng):
        logits = controller_logits(self.space, history, scores, self.lr, self.decay)
        return {k: rng.choices(v, weights=softmax(logits[k]))[0] for k, v in self.space.params.items()}


@register_optimizer("reinforce", ReinforceConfig)
def _reinforce(config: ReinforceConfig, space, context):
    return ReinforceSampler(space, config.seed, config.lr, config.baseline_decay)
