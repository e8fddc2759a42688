"""The model zoo: a registry of ``nn.Module`` builders, one file per family.

>>> from edgefit.zoo import create, list_models
>>> "resnet50" in list_models()
True
>>> model = create("llama_7b", device="meta")  # shapes only, no 27 GB allocation
"""

from __future__ import annotations

# Importing each family file registers its builders.
from edgefit.zoo import (  # noqa: F401
    alexnet,
    densenet,
    fastdepth,
    googlenet,
    lenet,
    llama,
    mobilenet,
    resnet,
    shufflenet,
    squeezenet,
    transformer,
    vgg,
)
from edgefit.zoo.registry import ModelSpec, create, get_spec, list_models, register_model
from edgefit.zoo.resolve import ResolvedModel, resolve_model

__all__ = [
    "ModelSpec",
    "ResolvedModel",
    "create",
    "get_spec",
    "list_models",
    "register_model",
    "resolve_model",
]
