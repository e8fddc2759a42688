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
    "edgefit.compress.quantize.registry",
    "edgefit.compress.quantize.activation",
    "edgefit.compress.quantize.binary",
    "edgefit.compress.quantize.binarized",
    "edgefit.compress.quantize.ternary",
    "edgefit.compress.quantize.log",
    "edgefit.compress.quantize.recipe",
    "edgefit.compress.quantize.precision",
    "edgefit.compress.encode.container",
    "edgefit.accel.xnor",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
