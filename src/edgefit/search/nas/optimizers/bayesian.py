"""Bayesian optimization: Optuna's tree-structured Parzen estimator (Bergstra et al.,
NeurIPS 2011) and Gaussian-process sampler. Both model the whole surface from the
previous samples and pick the most promising next one; both handle several
objectives."""

from __future__ import annotations

from dataclasses import dataclass

from edgefit.search.nas.optimizers import OptimizerConfig, check_int, register_optimizer


@dataclass(frozen=True)
class ModelBasedConfig(OptimizerConfig):
    """Attributes: startup_trials: random samples before the model is used."""

    startup_trials: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("startup_trials", self.startup_trials, 1)


@dataclass(frozen=True)
class TPEConfig(ModelBasedConfig):
    """Tree-structured Parzen estimator (multivariate)."""


@dataclass(frozen=True)
class GPConfig(ModelBasedConfig):
    """Gaussian process with expected improvement."""


@register_optimizer("tpe", TPEConfig)
def _tpe(config: TPEConfig, space, context):
    import optuna

    return optuna.samplers.TPESampler(
        seed=config.seed, n_startup_trials=config.startup_trials, multivariate=True
    )


@register_optimizer("gp", GPConfig)
def _gp(config: GPConfig, space, context):
    import optuna

    return optuna.samplers.GPSampler(seed=config.seed, n_startup_trials=config.startup_trials)
