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
    "edgefit.compress.prune.groups",
    "edgefit.compress.prune.channel",
    "edgefit.compress.prune.auto",
    "edgefit.compress.prune.fmap",
    "edgefit.compress.prune.saved",
    "edgefit.compress.factorize",
    "edgefit.compress.distill",
    "edgefit.compress.structured",
    "edgefit.data.resize",
    "edgefit.search.executor",
    "edgefit.search.netadapt",
    "edgefit.search.netadapt.adapter",
    "edgefit.search.netadapt.budgets",
    "edgefit.search.netadapt.schedule",
    "edgefit.search.netadapt.tasks",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
