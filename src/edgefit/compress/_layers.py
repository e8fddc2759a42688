"""Which layers compression touches, and per-layer option parsing shared by the techniques."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from edgefit.errors import ConfigError, close_names

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# The layer kinds a per-layer mapping may name instead of layers (the lectures' "5 (conv), 4 (fc)").
LAYER_KINDS = {"conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d), "fc": (nn.Linear,)}


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Linear and conv modules that own a ``weight`` parameter, in module order."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, WEIGHT_LAYERS) and isinstance(getattr(m, "weight", None), nn.Parameter)
    }


def select_layers(model: nn.Module, names) -> dict[str, nn.Module]:
    """``weight_layers`` restricted to ``names`` (``None`` = all).

    Raises:
        ConfigError: a name that is not a weight layer of the model.
    """
    layers = weight_layers(model)
    if names is None:
        return layers
    out = {}
    for n in names:
        if n not in layers:
            raise ConfigError(
                f"no prunable/quantizable layer {n!r} in the model.{close_names(n, layers)}"
                f" Layers: {', '.join(layers)}"
            )
        out[n] = layers[n]
    return out


def per_layer(value, layers: dict[str, nn.Module], what: str) -> dict[str, object]:
    """Expand a scalar or a ``{layer: value}`` mapping to every selected layer.

    A mapping may name a subset; unnamed layers are left out (untouched).
    """
    if isinstance(value, Mapping):
        for n in value:
            if n not in layers:
                raise ConfigError(
                    f"{what} names layer {n!r}, which is not in the model.{close_names(n, layers)}"
                    f" Layers: {', '.join(layers)}"
                )
        return {n: value[n] for n in layers if n in value}
    return {n: value for n in layers}


def expand_kinds(value, model: nn.Module, what: str = "bits"):
    """A ``{"conv": 5, "fc": 4}`` mapping as ``{layer: value}`` over ``model``'s weight layers.

    ``conv`` stands for every convolution and ``fc`` for every fully connected
    (Linear) layer; a key that names a layer sets that layer and wins over its
    kind. A scalar is returned as it is.

    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2), nn.Linear(2, 2))
    >>> expand_kinds({"conv": 5, "fc": 4, "3": 3}, net)
    {'0': 5, '2': 4, '3': 3}

    Raises:
        ConfigError: a key that is neither a layer nor a kind, or ``conv``/``fc``
            naming a layer that is not the model's only layer of that kind (ambiguous).
    """
    if not isinstance(value, Mapping):
        return value
    check_each(value, lambda v, where: None, what)  # a non-empty mapping keyed by names
    layers = weight_layers(model)
    of_kind = {k: [n for n, m in layers.items() if isinstance(m, types)] for k, types in LAYER_KINDS.items()}
    for k in set(value) & set(LAYER_KINDS) & set(layers):
        if of_kind[k] != [k]:
            raise ConfigError(f"{what}: {k!r} is both a layer of the model and the kind of {len(of_kind[k])} layers;"
                              " name the layers one by one")
    named = per_layer({k: v for k, v in value.items() if k in layers or k not in LAYER_KINDS}, layers, what)
    out = {}
    for n, m in layers.items():
        kind = next((k for k, types in LAYER_KINDS.items() if isinstance(m, types) and k in value), None)
        if n in named or kind is not None:
            out[n] = named[n] if n in named else value[kind]
    return out


def check_each(value, check, what: str) -> None:
    """Run ``check`` on a scalar or on every value of a mapping, naming the key on failure."""
    if isinstance(value, Mapping):
        if not value:
            raise ConfigError(f"{what} mapping is empty")
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{what} keys must be layer names, got {k!r}")
            check(v, f"{what}[{k!r}]")
    else:
        check(value, what)


def check_fraction(v, what: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise ConfigError(f"{what} must be a number in [0, 1), got {v!r}")


def check_int_range(lo: int, hi: int):
    def check(v, what: str) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"{what} must be an integer in {lo}..{hi}, got {v!r}")

    return check
