"""Lazy package attributes, so that importing a package does not import torch-heavy modules."""

from __future__ import annotations

import importlib
import importlib.util


def _is_subpackage(package: str, name: str) -> bool:
    """Whether ``package.name`` is a public submodule that can be imported."""
    if name.startswith("_"):
        return False
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except (ImportError, ValueError):
        return False


def lazy_attributes(
    package: str, table: dict[str, tuple[str, str]], namespace: dict, *, submodules: bool = False
):
    """Return ``(__getattr__, __dir__)`` for a package whose attributes load on first use.

    Args:
        package: the package's name, for error messages.
        table: attribute -> (module, name in that module).
        namespace: the package's ``globals()``; loaded values are cached there.
        submodules: also resolve any public submodule (``edgefit.zoo``) on first use, so a
            new subpackage needs no entry in ``table``.
    """

    def __getattr__(name: str):
        if name in table:
            module_name, attr = table[name]
            value = getattr(importlib.import_module(module_name), attr)
            namespace[name] = value
            return value
        if submodules and _is_subpackage(package, name):
            module = importlib.import_module(f"{package}.{name}")
            namespace[name] = module
            return module
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(table) | {k for k in namespace if not k.startswith("_")})

    return __getattr__, __dir__
