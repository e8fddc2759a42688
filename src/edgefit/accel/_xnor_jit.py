"""numba kernels behind :mod:`edgefit.accel.xnor` (imported only when numba is installed).

Each popcount is LLVM's ``ctpop`` on a 64-bit word, which compiles to ``popcnt``
(or, vectorized, to AVX-512 VPOPCNTDQ's ``vpopcntq`` where the CPU has it: numba
compiles for the host CPU). Functions are cached on disk (``cache=True``), so the
compile cost (seconds) is paid once per machine, not per process.

Bit layout: the same as ``np.packbits`` (big-endian within a byte) viewed as
little-endian uint64 (x86 and ARM are little-endian), so words packed here and by
numpy are interchangeable.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic


@intrinsic
def _popcount(typingctx, x):
    """``popcount(x)`` of a uint64 as LLVM's ``ctpop`` intrinsic."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@njit(cache=True, parallel=True)
def matmul(a, w, k, out):
    """``out[i, n] = k - 2 popcount(a[i] XOR w[n])`` over words; ``a`` (M, nw), ``w`` (N, nw); rows in parallel."""
    m, nw = a.shape
    for n in prange(w.shape[0]):
        for i in range(m):
            s = np.uint64(0)
            for j in range(nw):
                s += _popcount(a[i, j] ^ w[n, j])
            out[i, n] = k - 2 * np.int64(s)


@njit(cache=True, parallel=True)
def matmul_masked(a, valid, w, out):
    """As :func:`matmul`, counting only the bits set in ``valid`` (same shape as ``a``)."""
    m, nw = a.shape
    for n in prange(w.shape[0]):
        for i in range(m):
            s = np.uint64(0)
            c = np.uint64(0)
            for j in range(nw):
                s += _popcount((a[i, j] ^ w[n, j]) & valid[i, j])
                c += _popcount(valid[i, j])
            out[i, n] = np.int64(c) - 2 * np.int64(s)


@njit(cache=True, parallel=True)
def pack_channels(bits, out):
    """``bits`` (C, H, W) of 0/1 -> ``out`` (H, W, ceil(C/64)) uint64, channel c at word c // 64."""
    c_all, h, w = bits.shape
    for y in prange(h):
        for c in range(c_all):
            word = c >> 6
            shift = np.uint64(((c & 63) & ~7) | (7 - (c & 7)))
            for x in range(w):
                if bits[c, y, x]:
                    out[y, x, word] |= np.uint64(1) << shift


@njit(cache=True, parallel=True)
def conv2d(xp, wt, channels, stride, padding, out):
    """Binary convolution of channel-packed ``xp`` (H, W, cw) with ``wt`` (kh, kw, cw, N).

    ``out`` is (Ho * Wo, N) int32, one output position per row: for each tap
    inside the image and each word, the packed input word is XORed with the N
    filters' words (contiguous, so the inner loop vectorizes) and popcounted;
    taps in the zero padding are skipped and do not count towards ``k``.
    """
    h, w, nw = xp.shape
    kh, kw, _, n_out = wt.shape
    wo = (w + 2 * padding - kw) // stride + 1
    for p in prange(out.shape[0]):
        oy, ox = p // wo, p % wo
        row = out[p]
        row[:] = 0
        taps = 0
        for dy in range(kh):
            iy = oy * stride + dy - padding
            if iy < 0 or iy >= h:
                continue
            for dx in range(kw):
                ix = ox * stride + dx - padding
                if ix < 0 or ix >= w:
                    continue
                taps += 1
                for j in range(nw):
                    v = xp[iy, ix, j]
                    wrow = wt[dy, dx, j]
                    for n in range(n_out):
                        row[n] += np.int32(_popcount(v ^ wrow[n]))
        k = np.int32(taps * channels)
        for n in range(n_out):
            row[n] = k - 2 * row[n]

