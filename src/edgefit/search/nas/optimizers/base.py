"""What the custom samplers share: the history of a study, fitness, and the sampler shell."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import TrialState

from edgefit.search.nas.optimizers import trial_rng
from edgefit.search.nas.pareto import domination_counts


def arch_key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def directions_of(study) -> list[str]:
    return ["maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize" for d in study.directions]


def fitness(history: Sequence, directions: Sequence[str]) -> list[float]:
    """One number per finished trial, larger is better.

    One objective: its value (negated when minimized). Several: minus the number
    of trials that dominate it (0 for the Pareto front). Infeasible (pruned)
    trials rank below every feasible one, ordered by how far they break the
    constraints (Deb's feasibility rule), so a search that starts outside the
    feasible region walks into it; -inf when no violation is recorded.
    """
    done = [t for t in history if t.state == TrialState.COMPLETE]
    if len(directions) == 1:
        sign = 1.0 if directions[0] == "maximize" else -1.0
        score = {t.number: sign * t.values[0] for t in done}
    else:
        counts = domination_counts([t.values for t in done], directions)
        score = {t.number: -float(n) for t, n in zip(done, counts, strict=True)}
    floor = min(score.values(), default=0.0) - 1.0
    out = []
    for t in history:
        if t.number in score:
            out.append(score[t.number])
            continue
        broken = [v for v in (t.user_attrs.get("violations") or {}).values() if v > 0]
        excess = sum(broken)
        out.append(floor - excess / (1.0 + excess) if broken else -math.inf)  # bounded, order kept
    return out


class ProposalSampler(BaseSampler):
    """An Optuna sampler that proposes whole architectures from the finished trials.

    Subclasses implement ``propose(history, fitness, seen, rng) -> dict``. The
    proposal depends only on the stored trials, the seed and the trial number, so a
    resumed study continues where it stopped.
    """

    def __init__(self, space, seed: int = 0) -> None:
        self.space = space
        self.seed = seed

    def infer_relative_search_space(self, study, trial):
        return self.space.distributions()

    def sample_relative(self, study, trial, search_space):
        if not search_space:
            return {}
        trials = study.get_trials(deepcopy=False)
        history = [
            t for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and set(self.space.params) <= set(t.params)
        ]
        seen = {arch_key(t.params) for t in trials if t.params and t.number != trial.number}
        rng = trial_rng(self.seed, trial.number)
        arch = self.propose(history, fitness(history, directions_of(study)), seen, rng)
        return {k: arch[k] for k in search_space}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return random.Random(self.seed + trial.number).choice(param_distribution.choices)

    def propose(self, history, scores, seen, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def unseen_random(self, seen, rng, tries: int = 100) -> dict:
        """A random architecture not yet tried (any random one once the space looks exhausted)."""
        for _ in range(tries):
            arch = self.space.sample(rng)
            if arch_key(arch) not in seen:
                return arch
        return self.space.sample(rng)
