"""resolve_model: every spec form and every failure."""

from __future__ import annotations

import sys

import pytest
from torch import nn

from edgefit.errors import ModelSpecError
from edgefit.zoo import ResolvedModel, resolve_model

GOOD = """
from torch import nn

class Net(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.fc = nn.Linear(3, width)

def build():
    return Net()

def not_a_module():
    return 42

def boom():
    raise RuntimeError("bad weights\\nsecond line")

NOT_CALLABLE = 3
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "mymodel.py"
    path.write_text(GOOD)
    return path


def test_zoo_spec():
    resolved = resolve_model("zoo:mobilenet_v1", resolution=128, device="meta")
    assert isinstance(resolved, ResolvedModel)
    assert resolved.input_shape == (1, 3, 128, 128)
    assert resolved.input_dtype == "float32"
    assert resolved.name == "mobilenet_v1"
    assert resolve_model("zoo:llama_tiny").input_dtype == "int64"


def test_file_spec_function_and_class(model_file):
    resolved = resolve_model(f"{model_file}:build")
    assert isinstance(resolved.model, nn.Module)
    assert resolved.input_shape is None
    assert resolved.name == "mymodel:build"
    assert resolve_model(f"{model_file}:Net").model.fc.out_features == 4
    assert resolve_model(f"{model_file}:Net", width=7).model.fc.out_features == 7


def test_module_spec(tmp_path, monkeypatch, model_file):
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mymodel", raising=False)
    resolved = resolve_model("mymodel:build")
    assert resolved.model.fc.in_features == 3
    assert resolve_model("torch.nn:Identity").name == "torch.nn:Identity"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("resnet5", "neither a zoo model.*Did you mean: resnet50"),
        ("zoo:", "missing the part"),
        ("zoo:resnet5", "unknown model 'resnet5'. Did you mean: resnet50"),
        ("missing/nowhere.py:build", "model file not found"),
        ("no_such_module_xyz:build", "cannot import module 'no_such_module_xyz'"),
        ("torch.nn:NoSuchLayer", "has no attribute 'NoSuchLayer'"),
    ],
)
def test_failures_without_files(spec, match):
    with pytest.raises(ModelSpecError, match=match) as info:
        resolve_model(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("attr", "match"),
    [
        ("missing", "has no attribute 'missing'"),
        ("NOT_CALLABLE", "is not callable"),
        ("boom", "raised RuntimeError: bad weights$"),
        ("not_a_module", "returned int, not a torch.nn.Module"),
    ],
)
def test_failures_in_file(model_file, attr, match):
    with pytest.raises(ModelSpecError, match=match) as info:
        resolve_model(f"{model_file}:{attr}")
    assert "\n" not in str(info.value)


def test_file_that_fails_to_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import no_such_dependency_xyz\n")
    with pytest.raises(ModelSpecError, match="importing .*broken.py failed: ModuleNotFoundError"):
        resolve_model(f"{path}:build")
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def (:\n")
    with pytest.raises(ModelSpecError, match="SyntaxError"):
        resolve_model(f"{syntax}:build")


def test_bad_zoo_option():
    with pytest.raises(ModelSpecError, match="has no option 'colour'"):
        resolve_model("zoo:lenet5", colour="red")


def test_bare_zoo_name():
    resolved = resolve_model("resnet50")
    assert resolved.name == "resnet50" and resolved.from_zoo
    assert not resolve_model("torch.nn:Identity").from_zoo
