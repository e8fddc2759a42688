"""Bundled and user datasets, as plain numpy arrays.

The built-in ``digits`` dataset is scikit-learn's 8x8 handwritten digits (UCI
"Optical Recognition of Handwritten Digits", 1,797 images, 10 classes). Pixel
values 0..16 are scaled to [0, 1] and shaped ``(N, 1, 8, 8)``.

The split is fixed and documented: a stratified split with
``sklearn.model_selection.train_test_split(test_size=360, random_state=0,
stratify=y)``, giving 1,437 training and 360 test images (35 to 37 per class in the
test set). It never changes between runs or machines.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefit.errors import DataError, close_names

DIGITS_TEST_SIZE = 360
DIGITS_SPLIT_SEED = 0
_REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class ArrayDataset:
    """A classification dataset held in memory.

    Attributes:
        name: ``"digits"`` or the file name of a user ``.npz``.
        x_train: float32 inputs, first axis the sample.
        y_train: int64 labels in ``[0, num_classes)``.
        x_test: float32 inputs with the same per-sample shape.
        y_test: int64 labels.
        num_classes: number of classes (max label + 1 over both splits).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input, without the batch axis."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"ArrayDataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"sample_shape={self.sample_shape}, classes={self.num_classes})"
        )


def load_digits() -> ArrayDataset:
    """The 8x8 digits with edgefit's fixed stratified 1,437 / 360 split.

    >>> d = load_digits()
    >>> d.x_train.shape, d.x_test.shape
    ((1437, 1, 8, 8), (360, 1, 8, 8))
    """
    try:
        from sklearn.datasets import load_digits as _sk_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise DataError("the digits dataset needs scikit-learn: pip install 'edgefit[data]'") from exc
    bunch = _sk_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, random_state=DIGITS_SPLIT_SEED, stratify=y
    )
    return ArrayDataset(
        "digits",
        np.ascontiguousarray(x_tr),
        np.ascontiguousarray(y_tr),
        np.ascontiguousarray(x_te),
        np.ascontiguousarray(y_te),
        10,
    )


def load_npz(path: str | os.PathLike) -> ArrayDataset:
    """A user dataset from an ``.npz`` with ``x_train, y_train, x_test, y_test``.

    Loaded with ``allow_pickle=False``, so object arrays are refused. Inputs are
    cast to float32 and labels to int64.

    Raises:
        DataError: missing file or key, mismatched lengths or sample shapes,
            non-integer or negative labels.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"dataset file {str(p)!r} does not exist")
    if not zipfile.is_zipfile(p):
        # np.load would try it as a pickle and blame pickling, which misleads.
        raise DataError(f"{p.name}: not an .npz file (not a zip archive)")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise DataError(f"{p.name}: cannot load without pickle ({exc})") from exc
    except Exception as exc:
        raise DataError(f"{p.name}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in _REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DataError(
            f"{p.name}: missing arrays {missing}; an .npz dataset needs {list(_REQUIRED_KEYS)}"
            f" (found {sorted(arrays)})"
        )
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2:
            raise DataError(f"{p.name}: x_{split} must have a sample axis and features, got shape {x.shape}")
        if y.ndim != 1:
            raise DataError(f"{p.name}: y_{split} must be 1-D labels, got shape {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{p.name}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if len(x) == 0:
            raise DataError(f"{p.name}: the {split} split is empty")
        if not np.issubdtype(x.dtype, np.number):
            raise DataError(f"{p.name}: x_{split} must be numeric, got dtype {x.dtype}")
        if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
            raise DataError(f"{p.name}: y_{split} must hold integer class labels, got dtype {y.dtype}")
        if np.any(y < 0):
            raise DataError(f"{p.name}: y_{split} has negative labels")
        xf = x.astype(np.float32)
        if not np.all(np.isfinite(xf)):
            raise DataError(f"{p.name}: x_{split} has NaN or infinite values")
        out[split] = (np.ascontiguousarray(xf), y.astype(np.int64))
    if out["train"][0].shape[1:] != out["test"][0].shape[1:]:
        raise DataError(
            f"{p.name}: x_train samples have shape {out['train'][0].shape[1:]} but x_test"
            f" samples {out['test'][0].shape[1:]}"
        )
    num_classes = int(max(out["train"][1].max(), out["test"][1].max())) + 1
    return ArrayDataset(p.name, out["train"][0], out["train"][1], out["test"][0], out["test"][1], num_classes)


DATASETS = {"digits": load_digits}


def load_dataset(name_or_path: str | os.PathLike) -> ArrayDataset:
    """``"digits"`` or a path to an ``.npz`` file.

    Raises:
        DataError: unknown name (with close names) or a bad file.
    """
    s = str(name_or_path)
    if s in DATASETS:
        return DATASETS[s]()
    if s.endswith(".npz") or Path(s).exists():
        return load_npz(s)
    raise DataError(f"unknown dataset {s!r}.{close_names(s, DATASETS)} Built in: {', '.join(DATASETS)}; or give a .npz path.")
