"""The registry raises on duplicates and explains misses (torchvision models/_api.py)."""

from __future__ import annotations

import pytest
from torch import nn

from edgefit.errors import EdgefitError, ModelSpecError, RegistryError
from edgefit.zoo import ModelSpec, create, get_spec, list_models, register_model
from edgefit.zoo import registry as registry_module


@pytest.fixture
def scratch_registry(monkeypatch):
    """An isolated copy of the registry so tests can register names."""
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))


def test_list_models_is_sorted_and_complete():
    names = list_models()
    assert names == sorted(names)
    for name in ("alexnet", "vgg16", "resnet50", "mobilenet_v1", "llama_7b", "bert_base"):
        assert name in names


def test_duplicate_name_raises(scratch_registry):
    with pytest.raises(RegistryError, match="already registered"):

        @register_model("alexnet", input_shape=(1, 3, 224, 224), family="x", paper="y")
        def _again(*, device=None):
            return nn.Identity()


def test_register_and_create(scratch_registry):
    @register_model("toy", input_shape=(1, 4), family="toy", paper="none", description="d")
    def toy(*, width: int = 3, device=None):
        """Toy."""
        return nn.Linear(4, width)

    spec = get_spec("toy")
    assert isinstance(spec, ModelSpec)
    assert spec.input_shape == (1, 4) and spec.input_dtype == "float32"
    assert spec.options() == {"width": 3, "device": None}
    assert create("toy", width=5).out_features == 5
    assert "toy" in list_models()


def test_bad_dtype_raises(scratch_registry):
    with pytest.raises(RegistryError, match="input_dtype"):
        register_model("toy2", input_shape=(1,), input_dtype="float16", family="t", paper="p")


def test_unknown_name_suggests_close_names():
    with pytest.raises(RegistryError, match="Did you mean: resnet50") as info:
        create("resnet5")
    assert isinstance(info.value, EdgefitError)
    assert "\n" not in str(info.value)
    with pytest.raises(RegistryError, match="unknown model 'zzzz'"):
        get_spec("zzzz")


def test_unknown_option_is_one_line_model_spec_error():
    with pytest.raises(ModelSpecError, match="has no option 'alpah'. Did you mean: alpha") as info:
        create("mobilenet_v1", alpah=0.5)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("bert_base", {"attention": "flash"}, "attention='flash'"),
        ("llama_tiny", {"attention": "mha"}, "attention='mha'"),
        ("mobilenet_v1", {"alpha": -1.0}, "alpha=-1.0"),
        ("shufflenet_v1", {"groups": 5}, "groups=5"),
        ("googlenet", {"kernel5": 7}, "kernel5=7"),
        ("transformer_encoder", {"dim": 65}, "not divisible"),
        ("bert_base", {"seq_len": 1024}, "exceeds max_positions"),
        ("llama", {"n_heads": 8, "n_kv_heads": 3, "device": "meta"}, "n_kv_heads=3"),
    ],
)
def test_bad_option_value(name, options, match):
    with pytest.raises(ModelSpecError, match=match) as info:
        create(name, **options)
    assert "\n" not in str(info.value)


def test_spec_is_frozen():
    spec = get_spec("lenet5")
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
