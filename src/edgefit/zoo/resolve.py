"""Turn a MODEL argument into an ``nn.Module``.

Three spellings:

* ``zoo:NAME``: a registered model (``zoo:resnet50``), built with the options;
* ``path/to/file.py:callable``: a callable in a Python file;
* ``package.module:callable``: a callable in an importable module.

The callable is called with the options (none by default) and must return an
``nn.Module``; an ``nn.Module`` subclass works as the callable. Every failure raises
:class:`~edgefit.errors.ModelSpecError` with one line naming the problem.

>>> resolve_model("zoo:lenet5").input_shape
(1, 1, 32, 32)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from edgefit.errors import ModelSpecError, RegistryError, close_names
from edgefit.zoo.registry import create, get_spec, list_models


@dataclass(frozen=True)
class ResolvedModel:
    """A model and what is known about its example input.

    Attributes:
        model: the built module.
        input_shape: example input shape with the batch of 1, or ``None`` when unknown
            (models from files and modules).
        input_dtype: ``"float32"`` or ``"int64"``.
        name: the zoo name, or ``"module:callable"`` for user models.
        from_zoo: the model came from the zoo (its ``name`` rebuilds it).
    """

    model: nn.Module
    input_shape: tuple[int, ...] | None
    input_dtype: str
    name: str
    from_zoo: bool = False


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _load_file(path_text: str) -> Any:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise ModelSpecError(f"model file not found: {path_text}")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"_edgefit_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelSpecError(f"cannot load {path_text} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise ModelSpecError(f"importing {path_text} failed: {_one_line(exc)}") from exc
    return module


def _load_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise ModelSpecError(f"cannot import module {name!r}: {_one_line(exc)}") from exc


def resolve_model(spec: str, **options: Any) -> ResolvedModel:
    """Resolve ``spec`` to a model.

    Args:
        spec: ``NAME`` or ``zoo:NAME``, ``path/to/file.py:callable`` or ``package.module:callable``.
        **options: for ``zoo:`` the builder's options (``device="meta"``...); otherwise
            keyword arguments for the callable.

    Raises:
        ModelSpecError: the spec is malformed, the file or module or attribute is
            missing, the import or the call raised, or the result is not an ``nn.Module``.
    """
    if isinstance(spec, str) and ":" not in spec and spec in list_models():
        spec = f"zoo:{spec}"  # a bare zoo name is unambiguous
    if not isinstance(spec, str) or ":" not in spec:
        close = close_names(spec, list_models()) if isinstance(spec, str) else ""
        raise ModelSpecError(
            f"model spec {spec!r} is neither a zoo model nor has a ':'; use NAME or zoo:NAME, "
            f"path/to/file.py:callable or package.module:callable.{close}"
        )
    source, _, attr = spec.rpartition(":")
    if not source or not attr:
        raise ModelSpecError(f"model spec {spec!r} is missing the part before or after ':'")

    if source == "zoo":
        try:
            model_spec = get_spec(attr)
        except RegistryError as exc:
            raise ModelSpecError(str(exc)) from exc
        model = create(attr, **options)
        return ResolvedModel(model, model_spec.input_shape_for(**options), model_spec.input_dtype, attr, True)

    is_file = source.endswith(".py") or "/" in source or "\\" in source
    module = _load_file(source) if is_file else _load_module(source)

    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ModelSpecError(f"{source} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ModelSpecError(f"{source}:{attr} is not callable")
    try:
        model = target(**options)
    except Exception as exc:
        raise ModelSpecError(f"calling {source}:{attr} raised {_one_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"{source}:{attr} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return ResolvedModel(model, None, "float32", f"{Path(source).stem if is_file else source}:{attr}")
