"""The six optimization algorithms of the lectures (reference/003), one file each, behind
a registry keyed on the config type.

Every algorithm is an Optuna sampler, so the study's storage, resume and parallel
trials work the same for all of them:

=============  =====================  ===================================================
name           config                 algorithm
=============  =====================  ===================================================
random         `RandomConfig`         uniform samples of the whole space
coordinate     `CoordinateConfig`     evaluate every one-choice move from the best so far,
                                      move to the best, restart at a local optimum
evolution      `EvolutionConfig`      regularized (aging) evolution, Real et al. AAAI 2019
reinforce      `ReinforceConfig`      REINFORCE policy gradient (Williams 1992) on a
                                      factorized controller, Zoph & Le ICLR 2017
tpe, gp        `TPEConfig`,           Bayesian optimization: Optuna's tree-structured
               `GPConfig`             Parzen estimator and Gaussian-process samplers
nsga2          `NSGA2Config`          Optuna's NSGA-II (Deb et al. 2002), multi-objective
darts          `DartsConfig`          gradient descent on softmax architecture weights of
                                      a one-shot supernet (Liu et al., ICLR 2019)
=============  =====================  ===================================================
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from edgefit.errors import ConfigError, RegistryError, close_names

_REGISTRY: dict[type, Callable] = {}
_NAMES: dict[str, type] = {}
ALIASES = {"bayesian": "tpe", "rl": "reinforce", "regularized_evolution": "evolution", "gradient": "darts"}


@dataclass(frozen=True)
class OptimizerConfig:
    """Base of every optimizer config: ``seed`` seeds its choices."""

    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")


def check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def check_positive(name: str, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


def register_optimizer(name: str, config_type: type):
    """Register ``factory(config, space, context) -> optuna sampler`` for ``config_type``."""

    def wrap(factory):
        if config_type in _REGISTRY or name in _NAMES:
            raise RegistryError(f"optimizer {name!r} is already registered")
        _REGISTRY[config_type] = factory
        _NAMES[name] = config_type
        config_type.name = name
        return factory

    return wrap


def _load_all() -> None:
    from edgefit.search.nas.optimizers import (  # noqa: F401 - registration
        bayesian,
        coordinate,
        darts,
        evolution,
        nsga2,
        random_search,
        reinforce,
    )


def list_optimizers() -> list[str]:
    """The registered optimizer names."""
    _load_all()
    return sorted(_NAMES)


def optimizer_config(name: str, **kwargs) -> OptimizerConfig:
    """The config of optimizer ``name`` (aliases: bayesian -> tpe, rl -> reinforce...)."""
    _load_all()
    name = ALIASES.get(name, name)
    if name not in _NAMES:
        raise RegistryError(
            f"unknown optimizer {name!r}; choose from {sorted(_NAMES)}.{close_names(name, list(_NAMES) + list(ALIASES))}"
        )
    return _NAMES[name](**kwargs)


def make_sampler(config: OptimizerConfig, space, context):
    """The Optuna sampler of ``config`` (dispatched on its type)."""
    _load_all()
    factory = _REGISTRY.get(type(config))
    if factory is None:
        raise RegistryError(f"no optimizer registered for {type(config).__name__}; known: {sorted(_NAMES)}")
    return factory(config, space, context)


def trial_rng(seed: int, number: int) -> random.Random:
    """A generator that depends only on the optimizer seed and the trial number (resumable)."""
    return random.Random(seed * 1_000_003 + number)
