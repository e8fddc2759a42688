"""The quantization registry: one entry per family, keyed on its config type.

``quantize_(model, config)`` looks the config's type up here, so a new family
is a new file that calls :func:`register_quantizer`, not a new branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch  # noqa: F401  (doctest)
from torch import nn

from edgefit.compress._layers import select_layers
from edgefit.compress.quantize._family import (
    QuantStates,
    calibrate_inputs,
    finalize_layer,
    target_layers,
)
from edgefit.errors import ConfigError, RegistryError, close_names


@dataclass(frozen=True)
class Family:
    """How one family quantizes.

    Attributes:
        name: the ``--method`` name.
        config_type: its config dataclass.
        weight: ``(config, module) -> WeightQuantizer`` (None for whole-model quantizers).
        act: ``(config, module, stats or None) -> ActQuantizer or None``.
        act_needs_data: the activation quantizer is calibrated (needs calibration data).
        apply: ``(model, config, calibration=...) -> states``, for a family that quantizes the whole
            model itself (k-means).
        prepare: ``(model, config) -> None`` run first (batch-norm folding).
        image_input_float: the first layer's input (the image) is not an activation
            and stays as it is (BNN, XNOR-Net: "the first layer's input is not binary").
    """

    name: str
    config_type: type
    weight: Callable | None = None
    act: Callable | None = None
    act_needs_data: bool = False
    apply: Callable | None = None
    prepare: Callable | None = None
    image_input_float: bool = False


QUANTIZERS: dict[type, Family] = {}
METHODS: dict[str, Family] = {}


def register_quantizer(family: Family) -> Family:
    """Add a family; its config type and name must be new."""
    if family.config_type in QUANTIZERS or family.name in METHODS:
        raise RegistryError(f"quantization family {family.name!r} is already registered")
    QUANTIZERS[family.config_type] = family
    METHODS[family.name] = family
    return family


def family_of(config) -> Family:
    fam = QUANTIZERS.get(type(config))
    if fam is None:
        known = ", ".join(f.config_type.__name__ for f in QUANTIZERS.values())
        raise ConfigError(f"quantize_ takes one of {known}; got {type(config).__name__}")
    return fam


def method(name: str) -> Family:
    """The family registered under ``name`` (``"ttq"``, ``"bwn"``...)."""
    if name not in METHODS:
        raise ConfigError(f"unknown quantization method {name!r}.{close_names(name, METHODS)} Methods: {', '.join(METHODS)}")
    return METHODS[name]


def plan(model: nn.Module, config, calibration=None) -> tuple[dict, dict[str, str]]:
    """``{layer: (module, weight quantizer, activation quantizer)}`` and the skipped layers."""
    fam = family_of(config)
    if fam.prepare is not None:
        fam.prepare(model, config)
    layers, skipped = target_layers(model, config)
    stats = {}
    wants_act = fam.act is not None and getattr(config, "act_bits", 1) is not None
    if wants_act and fam.act_needs_data:
        stats = calibrate_inputs(model, list(layers), calibration,
                                 f"{fam.name} activation quantization (act_bits={config.act_bits})")
    out = {}
    first = next(iter(select_layers(model, None)), None)
    for n, m in layers.items():
        act = fam.act(config, m, stats.get(n)) if wants_act and not (fam.image_input_float and n == first) else None
        out[n] = (m, fam.weight(config, m, act, name=n), act)
    return out, skipped


def quantize_(model: nn.Module, config, *, calibration=None) -> dict:
    """Quantize ``model`` in place with the family of ``config``; returns per-layer states.

    Args:
        model: the network (Linear/Conv layers are quantized).
        config: a family config (``LinearQuantConfig``, ``BWNConfig``, ``TTQConfig``...).
        calibration: inputs (tensor or array, or a dataset: its training images)
            for families that quantize activations with a calibrated range.

    Returns:
        ``{layer: state}``; for the reduced-precision families a
        :class:`QuantStates` whose ``skipped`` lists layers kept in float and why.

    >>> from edgefit.compress.quantize import BWNConfig
    >>> net = nn.Sequential(nn.Linear(2, 2, bias=False))
    >>> _ = net[0].weight.data.copy_(torch.tensor([[0.5, -1.5], [0.2, 0.2]]))
    >>> _ = quantize_(net, BWNConfig())
    >>> net[0].weight.tolist()
    [[1.0, -1.0], [0.20000000298023224, 0.20000000298023224]]
    """
    fam = family_of(config)
    if fam.apply is not None:
        return fam.apply(model, config, calibration=calibration)
    entries, skipped = plan(model, config, calibration)
    return QuantStates({n: finalize_layer(n, m, wq, act) for n, (m, wq, act) in entries.items()}, skipped=skipped)
