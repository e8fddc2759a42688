"""Regularized (aging) evolution, Real et al., "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019: the population is the last ``population``
finished trials; a tournament of ``sample`` of them picks the parent; the child
changes one random choice of the parent."""

from __future__ import annotations

from dataclasses import dataclass

from edgefit.errors import ConfigError
from edgefit.search.nas.optimizers import OptimizerConfig, check_int, register_optimizer
from edgefit.search.nas.optimizers.base import ProposalSampler, arch_key


@dataclass(frozen=True)
class EvolutionConfig(OptimizerConfig):
    """Attributes: population: trials alive (random until there are that many);
    sample: tournament size (1..population)."""

    population: int = 10
    sample: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("population", self.population, 2)
        check_int("sample", self.sample, 1)
        if self.sample > self.population:
            raise ConfigError(f"sample ({self.sample}) must be <= population ({self.population})")


class EvolutionSampler(ProposalSampler):
    def __init__(self, space, seed: int, population: int, sample: int) -> None:
        super().__init__(space, seed)
        self.population, self.sample = population, sample

    def propose(self, history, scores, seen, rng):
        if len(history) < self.population:
            return self.unseen_random(seen, rng)
        alive = list(range(len(history) - self.population, len(history)))
        contenders = rng.sample(alive, self.sample)
        parent = max(contenders, key=lambda i: (scores[i], i))
        base = {k: history[parent].params[k] for k in self.space.params}
        mutable = [k for k, v in self.space.params.items() if len(v) > 1]
        child = base
        if not mutable:
            return child
        for _ in range(20):  # prefer a child not seen yet
            key = rng.choice(mutable)
            child = {**base, key: rng.choice([v for v in self.space.params[key] if v != base[key]])}
            if arch_key(child) not in seen:
                break
        return child


@register_optimizer("evolution", EvolutionConfig)
def _evolution(config: EvolutionConfig, space, context):
    return EvolutionSampler(space, config.seed, config.population, config.sample)
