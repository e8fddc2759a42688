"""Neural architecture search: search spaces as data, the lectures' six optimization
algorithms, hardware-aware objectives and constraints, on an Optuna study and Ray.

>>> from edgefit.search.nas import load_space, list_optimizers
>>> load_space("cell").size
497664
>>> list_optimizers()
['coordinate', 'darts', 'evolution', 'gp', 'nsga2', 'random', 'reinforce', 'tpe']
"""

from __future__ import annotations

_LAZY = {
    "search": ("edgefit.search.nas.runner", "search"),
    "SearchResult": ("edgefit.search.nas.result", "SearchResult"),
    "TrialRecord": ("edgefit.search.nas.result", "TrialRecord"),
    "load_architecture": ("edgefit.search.nas.result", "load_architecture"),
    "EvalConfig": ("edgefit.search.nas.evaluation", "EvalConfig"),
    "SearchSpace": ("edgefit.search.nas.space", "SearchSpace"),
    "load_space": ("edgefit.search.nas.space", "load_space"),
    "list_spaces": ("edgefit.search.nas.space", "list_spaces"),
    "register_builder": ("edgefit.search.nas.builders", "register_builder"),
    "Objective": ("edgefit.search.nas.objectives", "Objective"),
    "Constraint": ("edgefit.search.nas.objectives", "Constraint"),
    "pareto_front": ("edgefit.search.nas.pareto", "pareto_front"),
    "hypervolume_2d": ("edgefit.search.nas.pareto", "hypervolume_2d"),
    "list_optimizers": ("edgefit.search.nas.optimizers", "list_optimizers"),
    "optimizer_config": ("edgefit.search.nas.optimizers", "optimizer_config"),
    "StorageError": ("edgefit.search.nas.study", "StorageError"),
    "RandomConfig": ("edgefit.search.nas.optimizers.random_search", "RandomConfig"),
    "CoordinateConfig": ("edgefit.search.nas.optimizers.coordinate", "CoordinateConfig"),
    "EvolutionConfig": ("edgefit.search.nas.optimizers.evolution", "EvolutionConfig"),
    "ReinforceConfig": ("edgefit.search.nas.optimizers.reinforce", "ReinforceConfig"),
    "TPEConfig": ("edgefit.search.nas.optimizers.bayesian", "TPEConfig"),
    "GPConfig": ("edgefit.search.nas.optimizers.bayesian", "GPConfig"),
    "NSGA2Config": ("edgefit.search.nas.optimizers.nsga2", "NSGA2Config"),
    "DartsConfig": ("edgefit.search.nas.optimizers.darts", "DartsConfig"),
}

__all__ = sorted(_LAZY)


from edgefit._lazy import lazy_attributes  # noqa: E402

__getattr__, __dir__ = lazy_attributes("edgefit.search.nas", _LAZY, globals())
