"""The model registry: a name -> builder table filled by ``@register_model``.

Modelled on torchvision ``models/_api.py``: registering a name twice raises, and a
miss names the close candidates.

>>> from edgefit.zoo import create, get_spec
>>> model = create("lenet5")
>>> get_spec("lenet5").input_shape
(1, 1, 32, 32)
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgefit.errors import ModelSpecError, RegistryError, close_names

_DTYPES = ("float32", "int64")


@dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one registered model.

    Attributes:
        name: registry name, e.g. ``"resnet50"``.
        builder: the function that builds the model from keyword-only options.
        input_shape: default example input shape, batch of 1 included.
        input_dtype: ``"float32"`` for images and features, ``"int64"`` for token ids.
        family: architecture family, e.g. ``"resnet"``.
        paper: the paper the architecture comes from.
        description: one line on the variant.
        input_shape_fn: maps the builder's options to the input shape when options
            change it (MobileNet ``resolution``, transformer ``seq_len``); ``None``
            when the shape is fixed.
    """

    name: str
    builder: Callable[..., nn.Module] = field(repr=False)
    input_shape: tuple[int, ...]
    input_dtype: str
    family: str
    paper: str
    description: str = ""
    input_shape_fn: Callable[..., tuple[int, ...]] | None = field(default=None, repr=False)

    def input_shape_for(self, **options: Any) -> tuple[int, ...]:
        """The example input shape for a model built with ``options``.

        Options that do not affect the shape (``device``, ``num_classes``...) are ignored.
        """
        if self.input_shape_fn is None:
            return self.input_shape
        return tuple(int(d) for d in self.input_shape_fn(**options))

    def options(self) -> dict[str, Any]:
        """The builder's keyword-only options and their defaults."""
        sig = inspect.signature(self.builder)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    input_dtype: str = "float32",
    family: str,
    paper: str,
    description: str = "",
    input_shape_fn: Callable[..., tuple[int, ...]] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that registers a model builder under ``name``.

    Args:
        name: registry name; must be new.
        input_shape: default example input shape including the batch of 1.
        input_dtype: ``"float32"`` or ``"int64"``.
        family: architecture family.
        paper: citation of the paper.
        description: one line on the variant.
        input_shape_fn: optional ``(**options) -> shape`` for options that change it.

    Raises:
        RegistryError: ``name`` is already registered.
    """
    if input_dtype not in _DTYPES:
        raise RegistryError(f"input_dtype must be one of {_DTYPES}, got {input_dtype!r}")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise RegistryError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=builder,
            input_shape=tuple(int(d) for d in input_shape),
            input_dtype=input_dtype,
            family=family,
            paper=paper,
            description=description,
            input_shape_fn=input_shape_fn,
        )
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``.

    Raises:
        RegistryError: no such model; the message suggests close names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RegistryError(
            f"unknown model {name!r}.{close_names(name, _REGISTRY)}"
            f" See edgefit.zoo.list_models()."
        ) from None


def create(name: str, **options: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword ``options``.

    Args:
        name: registry name.
        **options: the builder's keyword-only options, e.g. ``device="meta"``.

    Raises:
        RegistryError: unknown name.
        ModelSpecError: an option the builder does not take, or a bad option value.
    """
    spec = get_spec(name)
    known = spec.options()
    for key in options:
        if key not in known:
            raise ModelSpecError(
                f"model {name!r} has no option {key!r}.{close_names(key, known)}"
                f" Options: {', '.join(sorted(known)) or 'none'}."
            )
    try:
        return spec.builder(**options)
    except ModelSpecError:
        raise
    except (ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelSpecError(f"cannot build {name!r} with {options}: {first}") from exc


@contextlib.contextmanager
def on_device(device: str | torch.device | None) -> Iterator[None]:
    """Build under ``torch.device(device)``; ``None`` keeps the default device.

    ``device="meta"`` builds shapes only, without allocating weights.
    """
    if device is None:
        yield
        return
    with torch.device(device):
        yield


def check_choice(option: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raise :class:`ModelSpecError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ModelSpecError(f"option {option}={value!r} must be one of {choices}")


def check_positive(option: str, value: Any) -> None:
    """Raise :class:`ModelSpecError` unless ``value`` is a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ModelSpecError(f"option {option}={value!r} must be a positive number")
