"""Coordinate descent: start from a sample, evaluate every move of one choice from the
best architecture so far, move to the best; at a local optimum restart from a random
unseen architecture. (The lectures: "starts from the previous best sample and greedily
finds the best direction to move"; NetAdapt is one.)"""

from __future__ import annotations

from dataclasses import dataclass

from edgefit.errors import ConfigError
from edgefit.search.nas.optimizers import OptimizerConfig, register_optimizer
from edgefit.search.nas.optimizers.base import ProposalSampler, arch_key

_STARTS = ("random", "smallest")


@dataclass(frozen=True)
class CoordinateConfig(OptimizerConfig):
    """Attributes: start: ``random`` or ``smallest`` (the cheapest architecture)."""

    start: str = "random"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.start not in _STARTS:
            raise ConfigError(f"start must be one of {_STARTS}, got {self.start!r}")


class CoordinateSampler(ProposalSampler):
    def __init__(self, space, seed: int, start: str) -> None:
        super().__init__(space, seed)
        self.start = start

    def propose(self, history, scores, seen, rng):
        if not history:
            first = self.space.smallest() if self.start == "smallest" else self.space.sample(rng)
            return first if arch_key(first) not in seen else self.unseen_random(seen, rng)
        best = max(range(len(history)), key=lambda i: (scores[i], -i))
        moves = self.space.neighbors({k: history[best].params[k] for k in self.space.params})
        rng.shuffle(moves)
        for arch in moves:
            if arch_key(arch) not in seen:
                return arch
        return self.unseen_random(seen, rng)


@register_optimizer("coordinate", CoordinateConfig)
def _coordinate(config: CoordinateConfig, space, context):
    return CoordinateSampler(space, config.seed, config.start)
