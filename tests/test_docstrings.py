"""The `>>>` examples in the public modules' docstrings run and hold."""

import doctest
import importlib

import pytest

MODULES = [
    "edgefit",
    "edgefit.metrics.counting",
    "edgefit.metrics.formulas",
    "edgefit.zoo",
    "edgefit.hardware",
    "edgefit.measure.correction",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
