"""Save and load a channel-pruned (or factorized) model: safetensors weights plus
a small JSON description in the file's header.

The header records how to rebuild the architecture: the base model spec
(``zoo:NAME`` or ``file.py:callable``), its builder options, the example input
shape and every Conv/Linear/BN width (``{module: {in, out, groups}}``), plus
the factorized layers if any. Loading rebuilds the base model, resizes those
modules, and loads the weights strictly. Nothing in the file runs code.

>>> import torch, tempfile, os
>>> from edgefit.zoo import create
>>> from edgefit.compress.prune import prune_, ChannelConfig
>>> m = create("lenet5_digits")
>>> _ = prune_(m, ChannelConfig(ratio=0.5, input_shape=(1, 1, 8, 8)))
>>> path = os.path.join(tempfile.mkdtemp(), "pruned.safetensors")
>>> _ = save_pruned(m, path, base="zoo:lenet5_digits", input_shape=(1, 1, 8, 8))
>>> loaded = load_pruned(path)
>>> loaded.model.features[3].out_channels, loaded.input_shape
(25, (1, 1, 8, 8))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import nn

from edgefit.compress.prune.channel import layer_widths, shrink_to_widths_
from edgefit.errors import DataError

FORMAT = "edgefit-pruned-1"


def save_pruned(model: nn.Module, path: str | os.PathLike, *, base: str, options: Mapping | None = None,
                input_shape: Sequence[int] | None = None, extra: Mapping | None = None) -> Path:
    """Write ``model``'s weights and widths to ``path`` (.safetensors), atomically.

    Args:
        model: the pruned model.
        path: file to write.
        base: spec that builds the unpruned model (``"zoo:resnet50"``, ``"net.py:build"``).
        options: keyword options of that builder.
        input_shape: example input (batch 1), so ``edgefit profile FILE`` needs no shape.
        extra: JSON-able notes kept in the header (accuracy, MACs...).
    """
    from edgefit.compress.factorize import factorized_layers
    from edgefit.data.weights import save_weights

    meta = {
        "format": FORMAT,
        "base": base,
        "options": dict(options or {}),
        "input_shape": list(input_shape) if input_shape is not None else None,
        "widths": layer_widths(model),
        "factorized": factorized_layers(model),
        "extra": dict(extra or {}),
    }
    return save_weights(model, path, metadata=meta)


def base_spec(source: str, options: Mapping | None = None) -> tuple[str, dict]:
    """``(spec that builds the unpruned model, its options)`` for a MODEL argument.

    A pruned-model file names its own base; a zoo name becomes ``zoo:NAME``; a
    user spec (``file.py:fn``, ``pkg.mod:fn``) is kept as given.

    >>> base_spec("lenet5_digits")
    ('zoo:lenet5_digits', {})
    """
    from edgefit.zoo import list_models

    if is_pruned_file(source):
        return read_base(source)
    if ":" not in source and source in list_models():
        source = f"zoo:{source}"
    return source, dict(options or {})


def save_model(model: nn.Module, path: str | os.PathLike, *, source: str, options: Mapping | None = None,
               shrunk: bool = False, input_shape: Sequence[int] | None = None,
               extra: Mapping | None = None) -> Path:
    """Save ``model`` so that it loads back: a pruned-model file when its layers differ from
    what ``source`` builds, else plain weights.

    Args:
        model: the model to write.
        path: ``.safetensors`` file, written atomically.
        source: the MODEL argument it was built from (``zoo:NAME``, ``file.py:fn``, a pruned file).
        options: that builder's keyword options.
        shrunk: its layers were resized (pruned, factorized); a pruned ``source`` implies it.
        input_shape: example input (batch 1), recorded in a pruned-model file.
        extra: JSON-able notes for the header (accuracy, technique...).

    Returns:
        The path written.
    """
    from edgefit.data.weights import save_weights

    base, opts = base_spec(source, options)
    if shrunk or is_pruned_file(source):
        return save_pruned(model, path, base=base, options=opts, input_shape=input_shape, extra=extra)
    name = base.removeprefix("zoo:")  # a bare zoo name, as `edgefit train` records it
    return save_weights(model, path, metadata={"model": name, "options": opts, **dict(extra or {})})


def is_pruned_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a safetensors file written by `save_pruned`."""
    from edgefit.data.weights import read_weights_metadata

    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return False
    try:
        return read_weights_metadata(p).get("format") == FORMAT
    except DataError:
        return False


class LoadedPruned:
    """What `load_pruned` returns: ``model``, ``input_shape``, ``base``, ``options``, ``extra``."""

    def __init__(self, model, input_shape, base, options, extra) -> None:
        self.model, self.input_shape, self.base, self.options, self.extra = model, input_shape, base, options, extra


def load_pruned(path: str | os.PathLike, *, builder: str | None = None) -> LoadedPruned:
    """Rebuild a model saved by `save_pruned` and load its weights.

    The file names the model it was pruned from. A zoo model is rebuilt as is; a
    user builder (``file.py:fn``, ``pkg.mod:fn``) runs code, so a file never picks
    one by itself: pass it as ``builder`` (the CLI: give that spec on the command line).

    Raises:
        DataError: not a pruned-model file, a field missing, a user builder not
            passed explicitly, or tensors that do not match the rebuilt model.
        ModelSpecError: the base model cannot be built.
    """
    from edgefit.compress.factorize import refactorize_
    from edgefit.data.weights import load_weights_, read_weights_metadata
    from edgefit.zoo import list_models, resolve_model

    p = Path(path)
    if not p.is_file():
        raise DataError(f"pruned model file {str(p)!r} does not exist")
    meta = read_weights_metadata(p)
    if meta.get("format") != FORMAT:
        raise DataError(f"{p.name} is not a pruned edgefit model (no '{FORMAT}' header)")
    try:
        base, widths = str(meta["base"]), meta["widths"]
        options = dict(meta.get("options", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{p.name}: pruned-model header is incomplete ({exc})") from None
    if base.removeprefix("zoo:") not in list_models() and builder != base:
        raise DataError(f"{p.name} was pruned from {base!r}, which runs code to build: "
                        f"pass it explicitly to load it (load_pruned(path, builder={base!r}))")
    resolved = resolve_model(base, **options)
    model = resolved.model
    refactorize_(model, meta.get("factorized", {}))
    shrink_to_widths_(model, widths)
    load_weights_(model, p)
    shape = meta.get("input_shape")
    return LoadedPruned(model.eval(), tuple(shape) if shape else resolved.input_shape, base,
                        options, meta.get("extra", {}))


def resolve_pruned(path: str | os.PathLike, *, builder: str | None = None):
    """A pruned-model file as a `edgefit.zoo.ResolvedModel` (what every MODEL argument resolves to)."""
    from edgefit.zoo import ResolvedModel

    loaded = load_pruned(path, builder=builder)
    return ResolvedModel(loaded.model, loaded.input_shape, "float32", Path(path).name)


def read_base(path: str | os.PathLike) -> tuple[str, dict]:
    """``(base spec, builder options)`` of a pruned-model file (to save a further-shrunk version)."""
    from edgefit.data.weights import read_weights_metadata

    meta = read_weights_metadata(path)
    return meta["base"], dict(meta.get("options", {}))
