"""Pruning: fine-grained magnitude (per layer or global, sparsity or Han's
quality threshold), gradual prune-and-retrain schedules, neuron pruning and the
per-layer sensitivity scan.

>>> from edgefit.compress.prune import prune_, MagnitudeConfig
"""

from edgefit.compress.prune.cleanup import remove_dead_connections_
from edgefit.compress.prune.magnitude import (
    MagnitudeConfig,
    magnitude_mask,
    masks_from_zeros,
    prune_,
    sparsity,
)
from edgefit.compress.prune.neuron import NeuronConfig, linear_chains, prune_neurons_
from edgefit.compress.prune.schedule import GradualConfig, GradualResult, prune_gradually_
from edgefit.compress.prune.sensitivity import (
    DEFAULT_SPARSITIES,
    SensitivityResult,
    pick_sparsities,
    plot_sensitivity,
    sensitivity_scan,
)

__all__ = [
    "DEFAULT_SPARSITIES",
    "GradualConfig",
    "GradualResult",
    "MagnitudeConfig",
    "NeuronConfig",
    "SensitivityResult",
    "linear_chains",
    "magnitude_mask",
    "masks_from_zeros",
    "pick_sparsities",
    "plot_sensitivity",
    "prune_",
    "prune_gradually_",
    "prune_neurons_",
    "remove_dead_connections_",
    "sensitivity_scan",
    "sparsity",
]
