"""The `>>>` examples in every module's docstrings run and hold.

Modules are found by walking the package, so a new module's examples run without an
entry here; a module whose source holds ``>>>`` must run at least one example.
"""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import edgefit


def _modules_with_examples() -> list[str]:
    names = ["edgefit"]
    for info in pkgutil.walk_packages(edgefit.__path__, "edgefit."):
        names.append(info.name)
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec.origin and spec.origin.endswith(".py") and ">>>" in Path(spec.origin).read_text():
            found.append(name)
    return found


MODULES = _modules_with_examples()


def test_examples_are_found():
    assert {"edgefit", "edgefit.zoo", "edgefit.metrics.formulas"} <= set(MODULES)
    assert len(MODULES) >= 20


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
