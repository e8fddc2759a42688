"""Each optimizer on a tiny space with a known optimum (a synthetic score, no training)."""

import itertools

import pytest

from edgefit.errors import ConfigError, RegistryError
from edgefit.search import search
from edgefit.search.nas import (
    CoordinateConfig,
    EvolutionConfig,
    GPConfig,
    NSGA2Config,
    RandomConfig,
    ReinforceConfig,
    TPEConfig,
    list_optimizers,
    optimizer_config,
)
from edgefit.search.nas.pareto import pareto_front

from ._toy import OPTIMUM, TOY, cost, score

BUDGET = 24  # of 32 architectures


@pytest.mark.parametrize(
    "config",
    [
        RandomConfig(seed=0),
        CoordinateConfig(seed=0),
        EvolutionConfig(population=6, sample=2, seed=0),
        ReinforceConfig(seed=0),
        TPEConfig(startup_trials=6, seed=0),
    ],
    ids=lambda c: c.name,
)
def test_finds_the_known_optimum(config):
    result = search(TOY, config, trials=BUDGET, evaluate=score)
    assert len(result.records) == BUDGET
    assert result.best.arch == OPTIMUM and result.best.values == {"accuracy": 2.5}


@pytest.mark.slow
def test_gp_finds_the_known_optimum():
    result = search(TOY, GPConfig(startup_trials=6, seed=0), trials=14, evaluate=score)
    assert result.best.arch == OPTIMUM


def test_coordinate_descent_moves_one_choice_at_a_time_from_the_best():
    result = search(TOY, CoordinateConfig(start="smallest"), trials=6, evaluate=score)
    recs = result.records
    assert recs[0].arch == TOY.smallest()
    for i in range(1, 6):  # each sample is one move from the best before it (the earliest on a tie)
        best = max(recs[:i], key=lambda r: (r.values["accuracy"], -r.number))
        assert sum(recs[i].arch[k] != best.arch[k] for k in TOY.params) == 1
    assert [r.values["accuracy"] for r in recs] == [0.0, 0.0, 0.0, 0.0, 1.0, 1.5]


def test_no_architecture_is_sampled_twice_by_the_proposal_samplers():
    for config in (CoordinateConfig(), EvolutionConfig(population=4, sample=2)):
        result = search(TOY, config, trials=16, evaluate=score)
        keys = [tuple(sorted(r.arch.items())) for r in result.records]
        assert len(set(keys)) == len(keys)


def _true_front():
    archs = [dict(zip(TOY.params, combo, strict=False)) for combo in itertools.product(*TOY.params.values())]
    values = [cost(a) for a in archs]
    idx = pareto_front([(v["accuracy"], v["macs"]) for v in values], ("maximize", "minimize"))
    return {(values[i]["accuracy"], values[i]["macs"]) for i in idx}


def test_nsga2_multi_objective_front_is_the_true_front():
    result = search(TOY, NSGA2Config(population=8, seed=0), objectives=["accuracy", "macs"], trials=32,
                    evaluate=cost)
    found = {(r.values["accuracy"], r.values["macs"]) for r in result.front}
    assert _true_front() == {(0.5, 0), (1.5, 1), (2.5, 4)}
    assert found <= _true_front() and (2.5, 4) in found


def test_single_objective_algorithms_use_pareto_rank_for_several_objectives():
    result = search(TOY, EvolutionConfig(population=6, sample=3), objectives=["accuracy", "macs"], trials=24,
                    evaluate=cost)
    found = {(r.values["accuracy"], r.values["macs"]) for r in result.front}
    assert found <= _true_front() and len(found) >= 3


def test_registry_names_aliases_and_errors():
    assert list_optimizers() == ["coordinate", "darts", "evolution", "gp", "nsga2", "random", "reinforce", "tpe"]
    assert optimizer_config("bayesian").name == "tpe"
    assert optimizer_config("rl", seed=3) == ReinforceConfig(seed=3)
    with pytest.raises(RegistryError, match="unknown optimizer 'evolutoin'.*evolution"):
        optimizer_config("evolutoin")
    with pytest.raises(ConfigError, match="sample"):
        EvolutionConfig(population=3, sample=4)
    with pytest.raises(ConfigError, match="seed"):
        RandomConfig(seed=-1)
    with pytest.raises(ConfigError, match="start"):
        CoordinateConfig(start="middle")


def test_infeasible_samples_rank_by_how_far_they_break_the_constraints():
    from types import SimpleNamespace

    from optuna.trial import TrialState

    from edgefit.search.nas.optimizers.base import fitness

    done = lambda n, v: SimpleNamespace(number=n, state=TrialState.COMPLETE, values=[v], user_attrs={})  # noqa: E731
    cut = lambda n, x: SimpleNamespace(number=n, state=TrialState.PRUNED, values=None,  # noqa: E731
                                       user_attrs={"violations": {"size<=1KB": x}})
    scores = fitness([done(0, 0.5), cut(1, 3.0), cut(2, 1.0), done(3, 0.9)], ["maximize"])
    assert scores[0] == 0.5 and scores[3] == 0.9
    assert scores[1] < scores[2] < 0.5 - 1.0 + 1e-9  # below every feasible one, the smaller excess first
    assert scores[2] == pytest.approx(-0.5 - 0.5) and scores[1] == pytest.approx(-0.5 - 0.75)
