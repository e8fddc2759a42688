"""Fixed-width bit packing, most significant bit first, with numpy."""

from __future__ import annotations

import numpy as np

from edgefit.errors import CompressedFileError, ConfigError


def pack_fixed(values: np.ndarray, width: int) -> np.ndarray:
    """Pack non-negative integers into ``width`` bits each; returns uint8 bytes.

    >>> pack_fixed(np.array([1, 2, 3]), 2).tolist()   # 01 10 11 00
    [108]
    """
    if not 1 <= width <= 32:
        raise ConfigError(f"bit width must be 1..32, got {width}")
    v = np.asarray(values, dtype=np.uint64).ravel()
    if v.size and int(v.max()) >= (1 << width):
        raise ConfigError(f"value {int(v.max())} does not fit in {width} bits")
    if width in (1, 8):  # fast paths, same bytes
        return np.packbits(v.astype(np.uint8)) if width == 1 else v.astype(np.uint8)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((v[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.ravel())


def unpack_fixed(buf: np.ndarray, width: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed`: ``count`` integers of ``width`` bits (int64)."""
    need = count * width
    if len(buf) * 8 < need or len(buf) != (need + 7) // 8:
        raise CompressedFileError(f"a {width}-bit stream of {count} values needs {(need + 7) // 8} bytes, got {len(buf)}")
    if count == 0:
        return np.zeros(0, np.int64)
    if width == 8:
        return np.asarray(buf, dtype=np.uint8).astype(np.int64)
    if width == 1:
        return np.unpackbits(np.asarray(buf, dtype=np.uint8))[:count].astype(np.int64)
    bits = np.unpackbits(np.asarray(buf, dtype=np.uint8))[:need].reshape(count, width).astype(np.int64)
    return bits @ (np.int64(1) << np.arange(width - 1, -1, -1, dtype=np.int64))
