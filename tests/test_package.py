"""The top-level package: lazy attributes and subpackages."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_plain_import_reaches_subpackages_lazily():
    code = (
        "import sys, edgefit\n"
        "print('torch' in sys.modules, 'edgefit.zoo' in sys.modules)\n"
        "print('resnet50' in edgefit.zoo.list_models(), 'edgefit.zoo' in sys.modules)\n"
        "print(edgefit.hardware.get_device('jetson_nano').name != '')\n"
        "print(callable(edgefit.compress.deep_compress), callable(edgefit.measure.measure_latency))\n"
    )
    assert _run(code).splitlines() == ["False False", "True True", "True", "True True"]


def test_unknown_attribute_is_an_attribute_error():
    import edgefit

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        edgefit.nonexistent  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute '_io_private'"):
        edgefit._io_private  # noqa: B018


def test_dir_lists_lazy_names():
    import edgefit

    assert {"profile", "estimate", "EdgefitError"} <= set(dir(edgefit))
