"""Sparse storage: relative indices with filler zeros (Deep Compression, Sec. 2
and Fig. 2), and CSR as the baseline.

Relative index, ``index_bits = b``, ``M = 2**b - 1``: the nonzeros of a flattened
tensor are stored in order, each with the distance ``d >= 1`` from the previous
stored position (the first from position -1). A code ``c < M`` means "the next
weight is ``c + 1`` positions on". When a gap exceeds what a code can say the
paper inserts a *filler zero*; here the filler is the reserved code ``M``,
meaning "a zero ``M`` positions on" — the filler carries no weight code because
its value is known to be zero (the paper spends a weight code on it; this saves
those bits and is otherwise the same scheme). So ``d = f*M + r`` with
``f = (d - 1) // M`` fillers and one real entry of code ``r - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefit.errors import CompressedFileError, ConfigError


@dataclass
class RelativeIndex:
    """Relative-index form of a flat tensor.

    Attributes:
        index: codes in ``0..2**index_bits - 1`` (fillers are ``2**index_bits - 1``).
        values: the nonzero values in position order (one per non-filler code).
        size: length of the flat tensor.
        index_bits: code width.
    """

    index: np.ndarray
    values: np.ndarray
    size: int
    index_bits: int

    @property
    def fillers(self) -> int:
        return int(np.sum(self.index == (1 << self.index_bits) - 1))


def relative_encode(flat: np.ndarray, index_bits: int) -> RelativeIndex:
    """Relative indices of the nonzeros of ``flat`` (1-D).

    >>> r = relative_encode(np.array([0, 3.4, 0, 0, 0.9] + [0] * 10 + [1.7]), 3)
    >>> r.index.tolist(), r.values.tolist()
    ([1, 2, 7, 3], [3.4, 0.9, 1.7])
    """
    if not 1 <= index_bits <= 16:
        raise ConfigError(f"index_bits must be 1..16, got {index_bits}")
    x = np.asarray(flat).ravel()
    pos = np.flatnonzero(x)
    m = (1 << index_bits) - 1
    if pos.size == 0:
        return RelativeIndex(np.zeros(0, np.int64), x[:0].copy(), x.size, index_bits)
    d = np.diff(pos, prepend=-1)
    f = (d - 1) // m
    ends = np.cumsum(f + 1) - 1
    index = np.full(int(ends[-1]) + 1, m, dtype=np.int64)
    index[ends] = d - f * m - 1
    return RelativeIndex(index, x[pos].copy(), x.size, index_bits)


def relative_decode(index: np.ndarray, values: np.ndarray, size: int, index_bits: int) -> np.ndarray:
    """Rebuild the flat tensor; zeros everywhere but the stored positions.

    Raises:
        CompressedFileError: the codes and values disagree, or run past ``size``.
    """
    idx = np.asarray(index, dtype=np.int64)
    m = (1 << index_bits) - 1
    values = np.asarray(values)
    out = np.zeros(size, dtype=values.dtype)
    if idx.size == 0:
        if values.size:
            raise CompressedFileError("relative index is empty but values are stored")
        return out
    if idx.min() < 0 or idx.max() > m:
        raise CompressedFileError(f"relative index code outside 0..{m}")
    steps = np.where(idx == m, m, idx + 1)
    positions = np.cumsum(steps) - 1
    real = idx != m
    if int(real.sum()) != values.size:
        raise CompressedFileError(f"relative index names {int(real.sum())} weights but {values.size} are stored")
    if positions[-1] >= size:
        raise CompressedFileError(f"relative index runs past the tensor ({int(positions[-1])} >= {size})")
    out[positions[real]] = values
    return out


@dataclass
class CSR:
    """Compressed sparse rows of a 2-D matrix (conv weights are viewed as (out, in*k*k))."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    def nbytes(self, value_bytes: int = 4, index_bytes: int = 4) -> int:
        """Storage at the given widths (default fp32 values, int32 indices and pointers)."""
        return self.data.size * value_bytes + (self.indices.size + self.indptr.size) * index_bytes


def csr_encode(matrix: np.ndarray) -> CSR:
    """CSR of ``matrix`` (2-D, or N-D viewed as ``(shape[0], -1)``)."""
    a = np.asarray(matrix)
    a = a.reshape(a.shape[0], -1) if a.ndim != 2 else a
    rows, cols = np.nonzero(a)
    indptr = np.zeros(a.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=a.shape[0]), out=indptr[1:])
    return CSR(a[rows, cols].copy(), cols.astype(np.int64), indptr, (int(a.shape[0]), int(a.shape[1])))


def csr_decode(csr: CSR) -> np.ndarray:
    """Dense matrix from a :class:`CSR`."""
    out = np.zeros(csr.shape, dtype=csr.data.dtype)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    out[rows, csr.indices] = csr.data
    return out
