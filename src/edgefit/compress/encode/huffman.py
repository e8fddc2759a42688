"""Canonical Huffman coding with vectorized numpy encode and decode.

Deep Compression (Sec. 4) Huffman-codes the quantized weight indices and the
sparse relative indices, whose distributions are far from uniform. A canonical
code is fully described by the code length of each symbol, so a file stores one
byte per alphabet symbol (0 = unused) instead of a tree.

Codes are assigned in order of (length, symbol); bits are written most
significant first. Decoding looks at a ``max_len``-bit window at every bit
position at once (numpy), finds each window's code length with the canonical
limits, and then only walks the chain of code starts in a tight loop, which
keeps a LeNet-sized layer (~266k symbols) well under a second.
"""

from __future__ import annotations

import heapq

import numpy as np

from edgefit.errors import CompressedFileError, ConfigError

MAX_CODE_LENGTH = 57  # windows are built in uint64


def code_lengths(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    """Huffman code length (bits) of each symbol in ``range(alphabet)``; 0 = unused.

    Ties are broken by symbol order, so the result is deterministic. A stream
    with a single distinct symbol gets a 1-bit code.
    """
    s = np.asarray(symbols, dtype=np.int64).ravel()
    if s.size and (s.min() < 0 or s.max() >= alphabet):
        raise ConfigError(f"symbols must be in 0..{alphabet - 1}")
    counts = np.bincount(s, minlength=alphabet)
    lengths = np.zeros(alphabet, dtype=np.int64)
    used = np.flatnonzero(counts)
    if len(used) == 0:
        return lengths.astype(np.uint8)
    if len(used) == 1:
        lengths[used[0]] = 1
        return lengths.astype(np.uint8)
    # Heap items: (count, tie-break, list of symbols in the subtree).
    heap = [(int(counts[u]), i, [int(u)]) for i, u in enumerate(used)]
    heapq.heapify(heap)
    tie = len(heap)
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        for sym in a:
            lengths[sym] += 1
        for sym in b:
            lengths[sym] += 1
        heapq.heappush(heap, (c1 + c2, tie, a + b))
        tie += 1
    if lengths.max() > MAX_CODE_LENGTH:
        raise ConfigError(f"Huffman code longer than {MAX_CODE_LENGTH} bits; the stream is too skewed")
    return lengths.astype(np.uint8)


def _canonical(lengths: np.ndarray):
    """Sorted symbols, their codes, and per-length (first code, count, offset)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size and lengths.max() > MAX_CODE_LENGTH:
        raise CompressedFileError(f"Huffman code length {int(lengths.max())} exceeds {MAX_CODE_LENGTH}")
    used = np.flatnonzero(lengths)
    order = used[np.lexsort((used, lengths[used]))]
    max_len = int(lengths.max()) if used.size else 0
    count = np.bincount(lengths[used], minlength=max_len + 1)
    if used.size > 1 or (used.size == 1 and lengths[used[0]] != 1):
        kraft = np.sum(np.ldexp(1.0, -lengths[used]))
        if kraft > 1.0 + 1e-12:
            raise CompressedFileError("Huffman code lengths violate the Kraft inequality (corrupted table)")
    first = np.zeros(max_len + 2, dtype=np.int64)
    code = 0
    for ln in range(1, max_len + 1):
        code = (code + int(count[ln - 1]) if ln > 1 else 0) << (1 if ln > 1 else 0)
        first[ln] = code
    codes = np.zeros(lengths.size, dtype=np.uint64)
    offset = np.zeros(max_len + 2, dtype=np.int64)
    pos = 0
    for ln in range(1, max_len + 1):
        offset[ln] = pos
        syms = order[pos : pos + count[ln]]
        codes[syms] = (first[ln] + np.arange(len(syms))).astype(np.uint64)
        pos += int(count[ln])
    return order, codes, first, count, offset, max_len


def huffman_encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """Encode ``symbols`` with the canonical code of ``lengths``; returns (uint8 bytes, bit count)."""
    s = np.asarray(symbols, dtype=np.int64).ravel()
    if s.size == 0:
        return np.zeros(0, np.uint8), 0
    _, codes, _, _, _, _ = _canonical(lengths)
    lens = np.asarray(lengths, dtype=np.int64)[s]
    if np.any(lens == 0):
        raise ConfigError("a symbol to encode has no code (length 0)")
    code = codes[s]
    total = int(lens.sum())
    starts = np.cumsum(lens) - lens
    bits = np.zeros(total, dtype=np.uint8)
    for j in range(int(lens.max())):
        sel = lens > j
        shift = (lens[sel] - 1 - j).astype(np.uint64)
        bits[starts[sel] + j] = ((code[sel] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits), total


def huffman_decode(buf: np.ndarray, lengths: np.ndarray, count: int, nbits: int | None = None) -> np.ndarray:
    """Decode ``count`` symbols (int64) from ``buf``.

    Raises:
        CompressedFileError: the stream or table is inconsistent (corruption).
    """
    if count == 0:
        return np.zeros(0, np.int64)
    order, _, first, cnt, offset, max_len = _canonical(lengths)
    if max_len == 0:
        raise CompressedFileError("empty Huffman table for a non-empty stream")
    buf = np.asarray(buf, dtype=np.uint8)
    n = len(buf) * 8 if nbits is None else nbits
    if n > len(buf) * 8:
        raise CompressedFileError("Huffman stream is shorter than its bit count")
    bits = np.zeros(n + max_len, dtype=np.uint64)
    bits[:n] = np.unpackbits(buf)[:n]
    win = np.zeros(n, dtype=np.uint64)
    for j in range(max_len):
        win = (win << np.uint64(1)) | bits[j : j + n]
    # limits[l-1]: exclusive upper bound (left-justified) of windows whose code has length <= l.
    limits = np.array(
        [(int(first[ln]) + int(cnt[ln])) << (max_len - ln) for ln in range(1, max_len + 1)], dtype=np.uint64
    )
    length_at = np.searchsorted(limits, win, side="right") + 1  # values > max_len mean "no code"
    nxt = (np.arange(n, dtype=np.int64) + np.minimum(length_at, max_len + 1)).tolist()
    starts = [0] * count
    p = 0
    try:
        for i in range(count):
            starts[i] = p
            p = nxt[p]
    except IndexError:
        raise CompressedFileError(f"Huffman stream ended after {i} of {count} symbols") from None
    if p > n:
        raise CompressedFileError("Huffman stream ends inside a code")
    st = np.asarray(starts, dtype=np.int64)
    ln = length_at[st]
    if np.any(ln > max_len):
        raise CompressedFileError("Huffman stream holds a bit pattern that is no code")
    value = (win[st] >> (max_len - ln).astype(np.uint64)).astype(np.int64)
    idx = offset[ln] + value - first[ln]
    if np.any(idx < offset[ln]) or np.any(idx >= offset[ln] + cnt[ln]):
        raise CompressedFileError("Huffman stream holds a bit pattern that is no code")
    return order[idx].astype(np.int64)


def huffman_bits(symbols: np.ndarray, lengths: np.ndarray) -> int:
    """Encoded size in bits without encoding."""
    s = np.asarray(symbols, dtype=np.int64).ravel()
    return int(np.asarray(lengths, dtype=np.int64)[s].sum()) if s.size else 0
