"""Dense weights files: safetensors only (nothing loaded can run code)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from edgefit._io import atomic_write_with
from edgefit.errors import DataError


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model.state_dict()`` as float safetensors, atomically.

    ``metadata`` (JSON-able) is stored under the ``edgefit`` key of the header.
    """
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"edgefit": json.dumps(metadata, separators=(",", ":"))} if metadata else None
    return atomic_write_with(path, lambda tmp: save_file(state, tmp, metadata=meta))


def read_weights_metadata(path: str | os.PathLike) -> dict:
    """The ``edgefit`` metadata of a weights file ({} when absent)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise DataError(f"{path}: not a safetensors weights file ({exc})") from exc
    try:
        return json.loads(meta.get("edgefit", "{}"))
    except json.JSONDecodeError:
        return {}


def check_state_matches(own: dict, shapes: dict, label: str) -> None:
    """Raise :class:`DataError` unless ``shapes`` ({name: shape}) has exactly the names and shapes of ``own``.

    Shared by every loader (safetensors weights, ``.efz`` files) so the message reads the same.
    """
    missing = sorted(set(own) - set(shapes))
    extra = sorted(set(shapes) - set(own))
    wrong = [
        f"{k} {tuple(shapes[k])} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(shapes))
        if tuple(shapes[k]) != tuple(own[k].shape)
    ]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if extra:
            parts.append(f"unexpected {extra[:5]}")
        if wrong:
            parts.append(f"shape mismatch {wrong[:5]}")
        raise DataError(f"{label} does not match the model: " + "; ".join(parts))


def load_weights_(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a safetensors state dict into ``model`` in place, strictly.

    Raises:
        DataError: the file is missing or unreadable, or its tensors do not match
            the model's names and shapes (the message lists the differences).
    """
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise DataError(f"weights file {str(p)!r} does not exist")
    try:
        state = load_file(str(p))
    except Exception as exc:
        raise DataError(f"{p.name}: not a readable safetensors file ({exc})") from exc
    own = model.state_dict()
    check_state_matches(own, {k: tuple(v.shape) for k, v in state.items()}, p.name)
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))
    return model
