"""Search spaces as data: named choices, a builder and its options, with a source.

A space is a YAML file (the built-in ones live beside this module in ``spaces/``)
or a `SearchSpace` made in Python::

    name: tiny
    builder: cell                 # a registered builder (see builders.py)
    source: "where the space comes from"
    options: {nodes: 2, in_channels: 1, num_classes: 10, channels: 8, input_size: 8}
    params:                       # each choice's options, cheapest first
      node1.op: [identity, conv3x3]
      node2.op: [identity, conv3x3]
      node2.input: [0, 1]

Choices are listed cheapest first: `SearchSpace.smallest` takes the first of each,
which is how a constraint no architecture can meet is caught before a search starts.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefit._io import read_mapping
from edgefit.errors import ConfigError, RegistryError, close_names

_SPACES_DIR = Path(__file__).with_name("spaces")


@dataclass(frozen=True)
class SearchSpace:
    """Named categorical choices and how to build a network from one pick of each.

    Attributes:
        name: the space's name.
        builder: a registered builder name (``mbv2``, ``cell`` or one of yours).
        params: choice name -> the allowed values, cheapest first.
        options: keyword options of the builder (channels, classes, input size...).
        source: where the space comes from.

    >>> s = SearchSpace("t", "cell", {"node1.op": ("identity", "conv3x3")}, {"nodes": 1})
    >>> s.size, s.smallest()
    (2, {'node1.op': 'identity'})
    """

    name: str
    builder: str
    params: Mapping[str, tuple]
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        from edgefit.search.nas.builders import get_builder

        get_builder(self.builder)
        if not self.params:
            raise ConfigError(f"space {self.name!r} has no params")
        fixed = {}
        for key, values in self.params.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"space {self.name!r}: param {key!r} needs a non-empty list of choices")
            if len(set(map(repr, values))) != len(values):
                raise ConfigError(f"space {self.name!r}: param {key!r} repeats a choice")
            fixed[key] = tuple(values)
        object.__setattr__(self, "params", fixed)
        object.__setattr__(self, "options", dict(self.options))

    @property
    def size(self) -> int:
        """The number of architectures in the space (product of the choice counts)."""
        return math.prod(len(v) for v in self.params.values())

    def distributions(self) -> dict:
        """Optuna categorical distributions, one per param."""
        from optuna.distributions import CategoricalDistribution

        return {k: CategoricalDistribution(list(v)) for k, v in self.params.items()}

    def sample(self, rng: random.Random) -> dict:
        """A uniformly random architecture."""
        return {k: rng.choice(v) for k, v in self.params.items()}

    def smallest(self) -> dict:
        """The first (cheapest) choice of every param."""
        return {k: v[0] for k, v in self.params.items()}

    def neighbors(self, arch: Mapping) -> list[dict]:
        """Every architecture that differs from ``arch`` in exactly one param."""
        out = []
        for key, values in self.params.items():
            for v in values:
                if v != arch[key]:
                    out.append({**arch, key: v})
        return out

    def check(self, arch: Mapping) -> dict:
        """``arch`` as a dict of valid choices; raises `ConfigError` otherwise."""
        missing = [k for k in self.params if k not in arch]
        if missing:
            raise ConfigError(f"architecture lacks {missing} of space {self.name!r}")
        for k, v in arch.items():
            if k in self.params and v not in self.params[k]:
                raise ConfigError(f"{k}={v!r} is not a choice of space {self.name!r}: {list(self.params[k])}")
        return {k: arch[k] for k in self.params}

    def build(self, arch: Mapping):
        """The ``nn.Module`` of one architecture."""
        from edgefit.search.nas.builders import get_builder

        return get_builder(self.builder)(self.check(arch), **self.options)

    def input_shape(self) -> tuple[int, ...]:
        """The example input shape (batch 1) from the options ``in_channels`` and ``input_size``."""
        size = int(self.options.get("input_size", 224))
        return (1, int(self.options.get("in_channels", 3)), size, size)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "builder": self.builder,
            "source": self.source,
            "options": dict(self.options),
            "params": {k: list(v) for k, v in self.params.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping, *, where: str = "space") -> SearchSpace:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: a space is a mapping with name, builder, params")
        unknown = set(data) - {"name", "builder", "source", "options", "params"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("name", "builder", "params"):
            if key not in data:
                raise ConfigError(f"{where}: missing {key!r}")
        for key in ("params", "options"):
            if not isinstance(data.get(key) or {}, Mapping):
                raise ConfigError(f"{where}: {key} must be a mapping of name -> value")
        return cls(str(data["name"]), str(data["builder"]), dict(data["params"]), dict(data.get("options") or {}),
                   str(data.get("source", "")))


def list_spaces() -> list[str]:
    """Names of the built-in spaces."""
    return sorted(p.stem for p in _SPACES_DIR.glob("*.yaml"))


def _read(path: Path) -> dict:
    return read_mapping(path, "space file")


def load_space(space: str | os.PathLike | SearchSpace | Mapping, **options) -> SearchSpace:
    """A built-in space by name (``mbv2``, ``cell``...), a YAML/JSON file, a dict or a `SearchSpace`.

    ``options`` override the builder options (e.g. ``num_classes=10``).

    Raises:
        RegistryError: an unknown name (with the close names).
        ConfigError: a malformed file.
    """
    if isinstance(space, SearchSpace):
        result = space
    elif isinstance(space, Mapping):
        result = SearchSpace.from_dict(space)
    else:
        text = os.fspath(space)
        path = Path(text)
        if text in list_spaces():
            path = _SPACES_DIR / f"{text}.yaml"
        elif path.suffix not in (".yaml", ".yml", ".json"):
            raise RegistryError(
                f"unknown search space {text!r}; built-in: {list_spaces()} (or a .yaml file).{close_names(text, list_spaces())}"
            )
        result = SearchSpace.from_dict(_read(path), where=str(path))
    if options:
        result = SearchSpace(result.name, result.builder, result.params, {**result.options, **options}, result.source)
    return result
