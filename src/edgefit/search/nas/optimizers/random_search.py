"""Random search: samples the whole space uniformly; uses no previous result."""

from __future__ import annotations

from dataclasses import dataclass

from edgefit.search.nas.optimizers import OptimizerConfig, register_optimizer


@dataclass(frozen=True)
class RandomConfig(OptimizerConfig):
    """Uniform random sampling (Optuna's `RandomSampler`)."""


@register_optimizer("random", RandomConfig)
def _random(config: RandomConfig, space, context):
    import optuna

    return optuna.samplers.RandomSampler(seed=config.seed)
