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
    "edgefit.memory",
    "edgefit.memory.arena",
    "edgefit.memory.plan",
    "edgefit.hardware.mcu",
    "edgefit.accel", "edgefit.accel.arch", "edgefit.accel.layers", "edgefit.accel.dataflow",
    "edgefit.accel.compare", "edgefit.accel.sparsity", "edgefit.accel.fastconv", "edgefit.accel.energy_tool",
    "edgefit.report.html",
    "edgefit.report.html.sections",
    "edgefit.report.html.svg",
    "edgefit.search.nas",
    "edgefit.search.nas.pareto",
    "edgefit.search.nas.objectives",
    "edgefit.search.nas.space",
    "edgefit.search.nas.result",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
