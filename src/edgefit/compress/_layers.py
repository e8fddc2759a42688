"""Which layers compression touches, and per-layer option parsing shared by the techniques."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from edgefit.errors import ConfigError, close_names

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


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
