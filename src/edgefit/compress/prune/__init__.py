"""Pruning: fine-grained magnitude (per layer or global, sparsity or Han's
quality threshold), gradual prune-and-retrain schedules, neuron pruning, the
per-layer sensitivity scan, and structured channel pruning across dependency
groups. One verb, dispatched on the config type:

>>> from edgefit.compress.prune import prune_, MagnitudeConfig, ChannelConfig
>>> # prune_(model, MagnitudeConfig(sparsity=0.9)); prune_(model, ChannelConfig(ratio=0.5, input_shape=(1, 3, 32, 32)))
"""

from edgefit.compress.prune.auto import (
    AutoChannelConfig,
    EnergyAwareConfig,
    GroupSensitivity,
    group_sensitivity,
    model_cost,
    pick_group_ratios,
    prune_auto_,
    prune_energy_aware_,
)
from edgefit.compress.prune.channel import (
    ChannelConfig,
    channel_importance,
    prune_channels_,
    prune_groups_,
)
from edgefit.compress.prune.cleanup import remove_dead_connections_
from edgefit.compress.prune.groups import ChannelGroup, ChannelGroups, channel_groups
from edgefit.compress.prune.magnitude import (
    MagnitudeConfig,
    magnitude_mask,
    masks_from_zeros,
    sparsity,
)
from edgefit.compress.prune.magnitude import prune_ as prune_magnitude_
from edgefit.compress.prune.neuron import NeuronConfig, linear_chains, prune_neurons_
from edgefit.compress.prune.schedule import GradualConfig, GradualResult, prune_gradually_
from edgefit.compress.prune.sensitivity import (
    DEFAULT_SPARSITIES,
    SensitivityResult,
    pick_sparsities,
    plot_sensitivity,
    sensitivity_scan,
)
from edgefit.errors import ConfigError

_PRUNERS = {
    MagnitudeConfig: prune_magnitude_,
    NeuronConfig: prune_neurons_,
    ChannelConfig: prune_channels_,
    AutoChannelConfig: prune_auto_,
    EnergyAwareConfig: prune_energy_aware_,
}


def prune_(model, config, **kwargs):
    """Prune ``model`` in place with the technique ``config`` selects.

    ``MagnitudeConfig`` zeroes weights (returns masks), ``NeuronConfig`` removes
    Linear neurons and ``ChannelConfig`` removes channels across dependency groups
    (both return the kept indices). Keyword arguments go to the technique
    (``example_inputs=``, ``data=`` for channel pruning).
    """
    pruner = _PRUNERS.get(type(config))
    if pruner is None:
        names = ", ".join(c.__name__ for c in _PRUNERS)
        raise ConfigError(f"prune_ takes one of {names}, got {type(config).__name__}")
    return pruner(model, config, **kwargs)


__all__ = [
    "DEFAULT_SPARSITIES",
    "AutoChannelConfig",
    "EnergyAwareConfig",
    "GroupSensitivity",
    "group_sensitivity",
    "model_cost",
    "pick_group_ratios",
    "prune_auto_",
    "prune_energy_aware_",
    "ChannelConfig",
    "ChannelGroup",
    "ChannelGroups",
    "GradualConfig",
    "GradualResult",
    "MagnitudeConfig",
    "NeuronConfig",
    "SensitivityResult",
    "channel_groups",
    "channel_importance",
    "linear_chains",
    "magnitude_mask",
    "masks_from_zeros",
    "pick_sparsities",
    "plot_sensitivity",
    "prune_",
    "prune_channels_",
    "prune_groups_",
    "prune_magnitude_",
    "prune_gradually_",
    "prune_neurons_",
    "remove_dead_connections_",
    "sensitivity_scan",
    "sparsity",
]
