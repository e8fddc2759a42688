"""NSGA-II (Deb et al., IEEE TEC 2002) through Optuna's `NSGAIISampler`: the
multi-objective evolutionary algorithm whose survivors are chosen by non-dominated
rank and crowding distance."""

from __future__ import annotations

from dataclasses import dataclass

from edgefit.search.nas.optimizers import OptimizerConfig, check_int, register_optimizer


@dataclass(frozen=True)
class NSGA2Config(OptimizerConfig):
    """Attributes: population: individuals per generation."""

    population: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("population", self.population, 2)


@register_optimizer("nsga2", NSGA2Config)
def _nsga2(config: NSGA2Config, space, context):
    import optuna

    return optuna.samplers.NSGAIISampler(population_size=config.population, seed=config.seed)
