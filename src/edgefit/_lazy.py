"""Lazy package attributes, so that importing a package does not import torch-heavy modules."""

from __future__ import annotations

import importlib


def lazy_attributes(package: str, table: dict[str, tuple[str, str]], namespace: dict):
    """Return ``(__getattr__, __dir__)`` for a package whose attributes load on first use.

    Args:
        package: the package's name, for error messages.
        table: attribute -> (module, name in that module).
        namespace: the package's ``globals()``; loaded values are cached there.
    """

    def __getattr__(name: str):
        if name in table:
            module_name, attr = table[name]
            value = getattr(importlib.import_module(module_name), attr)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(table) | {k for k in namespace if not k.startswith("_")})

    return __getattr__, __dir__
