"""Bit-packed binary kernels: a dot product of two {-1, +1} vectors of length
``k`` is ``k - 2 popcount(a XOR b)`` on their sign bits (bit 1 = +1), 64 lanes
per machine word.

``xnor_matmul`` and ``xnor_conv2d`` return int32 results equal to the float
products of the +-1 tensors exactly (``F.linear(sign x, sign W)``,
``F.conv2d(sign x, sign W, padding=p)``). Memory: 1 bit per weight, 32x less
than float32.

Two backends compute the same integers (``backend=``):

* ``"numba"`` (used by ``"auto"`` when numba is installed, the ``quant`` extra):
  JIT-compiled loops with a 64-bit ``popcnt`` per word (vectorized to
  ``vpopcntq`` on AVX-512 VPOPCNTDQ CPUs), parallel over output rows or
  positions. The convolution packs the input once along channels (one word
  string per pixel) and, for each output position, XORs the packed pixel under
  each kernel tap with every filter's words for that tap; taps in the zero
  padding are skipped and not counted. Compiled on first use and cached on disk.
* ``"numpy"`` (fallback): numpy 2's ``bitwise_count`` over ``(rows, N)`` tiles;
  the convolution goes through an im2col of sign bits, and zero padding, which
  is a third value, is corrected for:
  ``dot = popcount(valid) - 2 popcount((a XOR w) AND valid)``.

>>> a = pack_signs(np.array([[1.0, -1.0, 1.0]]))
>>> w = pack_signs(np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0]]))
>>> xnor_matmul(a, w).tolist()
[[1, -3]]
>>> xnor_matmul(a, w, backend="numpy").tolist()
[[1, -3]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefit.errors import ConfigError

BACKENDS = ("auto", "numba", "numpy")
_BLOCK_WORDS = 1 << 16  # rows x words per block: keeps the XOR buffer in cache


@dataclass
class PackedSigns:
    """Sign bits packed along the last axis into uint64 words.

    Attributes:
        words: ``(..., ceil(k / 64))`` uint64; bit 1 is +1, padding bits are 0.
        k: the unpacked length.
        valid: same shape as ``words``, 1 where the value is +-1 (0 for zero
            padding), or None when every value is +-1.
    """

    words: np.ndarray
    k: int
    valid: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return int(self.words.nbytes)

    def columns(self) -> np.ndarray:
        """The words as ``(n_words, rows)``, contiguous (computed once)."""
        t = self.__dict__.get("_columns")
        if t is None:
            t = self.__dict__["_columns"] = np.ascontiguousarray(self.words.reshape(-1, self.words.shape[-1]).T)
        return t


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    b = np.packbits(bits.astype(np.uint8, copy=False), axis=-1)
    pad = (-b.shape[-1]) % 8
    if pad:
        b = np.concatenate([b, np.zeros(b.shape[:-1] + (pad,), np.uint8)], axis=-1)
    return np.ascontiguousarray(b).view(np.uint64)


def pack_signs(x: np.ndarray, *, zero_is_padding: bool = False) -> PackedSigns:
    """Pack ``x >= 0`` (+1) / ``x < 0`` (-1) along the last axis.

    With ``zero_is_padding`` exact zeros are marked invalid (they count as 0).
    """
    x = np.asarray(x)
    valid = _pack_bits(x != 0) if zero_is_padding else None
    return PackedSigns(_pack_bits(x >= 0 if not zero_is_padding else x > 0), int(x.shape[-1]), valid)


def _jit():
    """The numba kernels module, or None when numba is not installed (imported on first use)."""
    try:
        from edgefit.accel import _xnor_jit
    except ImportError:
        return None
    return _xnor_jit


def resolve_backend(backend: str = "auto") -> str:
    """``"numba"`` or ``"numpy"``: the kernels ``backend`` runs on here.

    Raises:
        ConfigError: an unknown name, ``"numba"`` without numba, or ``"numpy"``
            without numpy 2's ``bitwise_count``.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown XNOR backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend in ("auto", "numba") and _jit() is not None:
        return "numba"
    if backend == "numba":
        raise ConfigError("the numba XNOR backend needs numba (pip install 'edgefit[quant]')")
    if not hasattr(np, "bitwise_count"):
        raise ConfigError(f"the XNOR kernels need numba or numpy >= 2 (np.bitwise_count); this is numpy {np.__version__}")
    return "numpy"


def set_num_threads(threads: int) -> None:
    """Threads the numba kernels use (numba's own setting; the numpy backend is single-threaded)."""
    if _jit() is not None:
        import numba

        numba.set_num_threads(threads)


def xnor_matmul(a: PackedSigns, w: PackedSigns, *, backend: str = "auto") -> np.ndarray:
    """``(M, k) x (N, k)^T`` of +-1 matrices as int32 ``(M, N)``.

    Raises:
        ConfigError: the inner sizes differ, or ``backend`` is not available.
    """
    if a.k != w.k:
        raise ConfigError(f"xnor_matmul: inner sizes differ ({a.k} vs {w.k})")
    aw = a.words.reshape(-1, a.words.shape[-1])
    if resolve_backend(backend) == "numpy":
        return _matmul_numpy(a, aw, w)
    jit = _jit()
    out = np.empty((aw.shape[0], w.words.shape[0]), np.int32)
    ww = w.words.reshape(-1, w.words.shape[-1])
    if a.valid is None:
        jit.matmul(aw, ww, a.k, out)
    else:
        jit.matmul_masked(aw, np.ascontiguousarray(a.valid.reshape(aw.shape)), ww, out)
    return out


def _matmul_numpy(a: PackedSigns, aw: np.ndarray, w: PackedSigns) -> np.ndarray:
    """One pass per 64-bit word column over an ``(M, N)`` tile: XOR (and the validity mask), popcount, accumulate."""
    wt = w.columns()
    m, n, nw = aw.shape[0], wt.shape[1], aw.shape[1]
    at = np.ascontiguousarray(aw.T)
    vt = None if a.valid is None else np.ascontiguousarray(a.valid.reshape(-1, nw).T)
    out = np.empty((m, n), np.int32)
    rows = max(1, _BLOCK_WORDS // n)
    for i in range(0, m, rows):
        r = min(rows, m - i)
        acc = np.zeros((r, n), np.int32)
        x = np.empty((r, n), np.uint64)
        c = np.empty((r, n), np.uint8)
        for j in range(nw):
            np.bitwise_xor(at[j, i : i + r, None], wt[j][None, :], out=x)
            if vt is not None:
                np.bitwise_and(x, vt[j, i : i + r, None], out=x)
            np.add(acc, np.bitwise_count(x, out=c), out=acc)
        k = a.k if vt is None else np.bitwise_count(vt[:, i : i + r]).sum(axis=0, dtype=np.int32)[:, None]
        out[i : i + r] = k - 2 * acc
    return out


def xnor_linear(x: np.ndarray, w: PackedSigns, *, backend: str = "auto") -> np.ndarray:
    """``F.linear(sign(x), sign(W))`` for a batch ``x`` of shape ``(B, k)``: int32 ``(B, N)``."""
    return xnor_matmul(pack_signs(x), w, backend=backend)


def pack_conv_weight(w: np.ndarray) -> PackedSigns:
    """A conv weight ``(N, C, kh, kw)`` packed per filter, in patch order (C, kh, kw)."""
    w = np.asarray(w)
    return pack_signs(w.reshape(w.shape[0], -1))


def xnor_conv2d(x: np.ndarray, w: PackedSigns, kernel: tuple[int, int], stride: int = 1, padding: int = 0, *,
                backend: str = "auto") -> np.ndarray:
    """``F.conv2d(sign(x), sign(W), stride, padding)`` for ``x`` of shape ``(C, H, W)``: int32 ``(N, Ho, Wo)``.

    ``sign`` is +1 for ``x >= 0``; padded positions are zeros and do not count.

    Raises:
        ConfigError: ``x`` is not one ``(C, H, W)`` image, or ``C x kh x kw`` is
            not the packed filter length.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ConfigError(f"xnor_conv2d takes one image (C, H, W), got shape {x.shape}")
    kh, kw = kernel
    if x.shape[0] * kh * kw != w.k:
        raise ConfigError(f"xnor_conv2d: {x.shape[0]} channels x {kh}x{kw} kernel != packed filter length {w.k}")
    if resolve_backend(backend) == "numpy":
        return _conv2d_numpy(x, w, kernel, stride, padding)
    jit = _jit()
    c, h, wd = x.shape
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    xp = np.zeros((h, wd, -(-c // 64)), np.uint64)
    jit.pack_channels(x >= 0, xp)
    out = np.empty((ho * wo, w.words.shape[0]), np.int32)
    jit.conv2d(xp, _tap_words(w, c, kernel), c, stride, padding, out)
    return out.T.reshape(-1, ho, wo)


def _tap_words(w: PackedSigns, channels: int, kernel: tuple[int, int]) -> np.ndarray:
    """The filters repacked per kernel tap along channels, ``(kh, kw, ceil(C/64), N)`` (computed once)."""
    cache, key = w.__dict__.setdefault("_taps", {}), (channels, tuple(kernel))
    if key not in cache:
        n = w.words.reshape(-1, w.words.shape[-1]).shape[0]
        bits = _unpack(w).reshape(n, channels, *kernel).astype(bool)
        cache[key] = np.ascontiguousarray(_pack_bits(bits.transpose(2, 3, 0, 1)).transpose(0, 1, 3, 2))
    return cache[key]


def _unpack(w: PackedSigns) -> np.ndarray:
    """The 0/1 sign bits ``(rows, k)`` of packed words."""
    words = w.words.reshape(-1, w.words.shape[-1])
    return np.unpackbits(words.view(np.uint8), axis=-1)[:, : w.k]


def _conv2d_numpy(x: np.ndarray, w: PackedSigns, kernel: tuple[int, int], stride: int, padding: int) -> np.ndarray:
    """im2col of the sign bits, then the matmul; padded positions are packed as +1 and their contribution,
    which depends only on the weights and the geometry, is subtracted (computed once per input size)."""
    kh, kw = kernel
    bits = x >= 0
    if padding:
        bits = np.pad(bits, ((0, 0), (padding, padding), (padding, padding)), constant_values=True)
    win = np.lib.stride_tricks.sliding_window_view(bits, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    c, ho, wo = win.shape[:3]
    patches = win.transpose(1, 2, 0, 3, 4).reshape(ho * wo, c * kh * kw)
    out = xnor_matmul(PackedSigns(_pack_bits(patches), patches.shape[1]), w, backend="numpy")
    if padding:
        out -= _padding_correction(w, x.shape, kernel, stride, padding)
    return out.T.reshape(-1, ho, wo)


def _padding_correction(w: PackedSigns, shape, kernel, stride: int, padding: int) -> np.ndarray:
    """``(P, N)``: the sum of each filter's +-1 weights over the padded positions of each patch."""
    key = (tuple(shape), tuple(kernel), stride, padding)
    cache = w.__dict__.setdefault("_pad_corrections", {})
    if key not in cache:
        signs = _unpack(w).astype(np.int32) * 2 - 1
        c, h, wd = shape
        pad = np.ones((c, h + 2 * padding, wd + 2 * padding), np.int32)
        pad[:, padding : padding + h, padding : padding + wd] = 0
        win = np.lib.stride_tricks.sliding_window_view(pad, tuple(kernel), axis=(1, 2))[:, ::stride, ::stride]
        ind = win.transpose(1, 2, 0, 3, 4).reshape(-1, c * kernel[0] * kernel[1])
        cache[key] = (ind @ signs.T).astype(np.int32)
    return cache[key]
