"""The ``.efz`` file: a versioned Deep Compression container on safetensors.

Layout (format version 1). The file is a plain safetensors file holding one
tensor, ``payload`` (uint8, 1-D), and one metadata entry, ``efz``, a compact JSON
string (kept small: at LeNet size the header is a visible share of the file)::

    {"format": "efz", "v": 1, "model": "lenet_300_100_digits" | null,
     "crc": <crc32 of the payload>,
     "t": [ENTRY, ...]}                     # in payload order

Each ENTRY is a JSON list ``[name, shape, encoding, segment_lengths, *fields]``;
its segments are consecutive byte ranges of the payload, in ENTRY order.

=========  ===================================================  ============================
encoding   segments                                             fields
=========  ===================================================  ============================
``raw``    tensor bytes, little-endian                          dtype (``f4 f2 i8 ...``)
``sparse`` fp32 nonzero values; relative index packed at ib     ib, nnz, n_index, crc
``fixed``  fp32 codebook; weight codes at b bits; index at ib   b, ib, nnz, n_index, crc
``huff``   fp32 codebook; code lengths of weight codes (1 byte  b, ib, nnz, n_index,
           per codebook entry); code lengths of index codes     wbits, ibits, crc
           (1 byte per ``2**ib``); Huffman weight stream;
           Huffman index stream
``lut``    codes at b bits; fp32 level table (groups x L)           b, groups, L, crc
``qlin``   codes at b bits; fp64 scale per group; int64 zero        b, groups, crc
           point per group
=========  ===================================================  ============================

* ``lut`` (binary, ternary, log weights: ``w = levels[g, code]``) and ``qlin``
  (linear and fixed-point weights, int32 biases: ``w = f32((code - zp) scale)``)
  store the codes of a quantized layer bit-packed, groups along axis 0; they
  need format version 2, which a writer uses only when a file holds them
  (version 1 files still load).
* ``sparse`` is the pruning stage (P), ``fixed`` pruning + quantization (P+Q),
  ``huff`` adds Huffman coding (P+Q+H); all three decode to float32.
* The relative index is that of :mod:`edgefit.compress.encode.sparse` (code
  ``2**ib - 1`` is a filler zero); weight codes index the sorted codebook of
  the layer's distinct nonzero values, so a decoded weight is bit-identical to
  the quantized weight, and pruned weights are +0.0.
* ``crc`` of an entry is the CRC-32 of the decoded float32 tensor's bytes; the
  top-level ``crc`` covers the whole payload. Both are checked on load.
* Readers refuse another ``v`` (:class:`~edgefit.errors.FormatVersionError`);
  truncation and corruption raise :class:`~edgefit.errors.CompressedFileError`,
  checksum mismatches :class:`~edgefit.errors.ChecksumError`.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefit._io import atomic_write_with
from edgefit.compress.encode.bits import pack_fixed, unpack_fixed
from edgefit.compress.encode.huffman import (
    code_lengths,
    huffman_bits,
    huffman_decode,
    huffman_encode,
)
from edgefit.compress.encode.sparse import relative_decode, relative_encode
from edgefit.errors import ChecksumError, CompressedFileError, ConfigError, FormatVersionError

FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
ENCODINGS = ("raw", "sparse", "fixed", "huff", "lut", "qlin")
QUANT_ENCODINGS = ("lut", "qlin")
MAX_CODEBOOK = 1 << 16
_DTYPES = {"f4": np.float32, "f2": np.float16, "f8": np.float64, "i8": np.int64, "i4": np.int32,
           "u1": np.uint8, "b1": np.bool_}


def _dtype_code(a: np.ndarray) -> str:
    for k, v in _DTYPES.items():
        if a.dtype == np.dtype(v):
            return k
    raise ConfigError(f"cannot store dtype {a.dtype} in an .efz file")


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a).tobytes())


@dataclass
class EncodedTensor:
    """One tensor's entry and payload segments, before writing."""

    name: str
    shape: tuple[int, ...]
    encoding: str
    segments: list[np.ndarray]
    fields: list

    @property
    def nbytes(self) -> int:
        return sum(int(s.size) for s in self.segments)

    def entry(self) -> list:
        return [self.name, list(self.shape), self.encoding, [int(s.size) for s in self.segments], *self.fields]


def best_index_bits(flat: np.ndarray, candidates=range(2, 9), huffman: bool = True) -> int:
    """The relative-index width that makes the index stream (and its table) smallest."""
    best, best_bits = None, 0
    for ib in candidates:
        r = relative_encode(flat, ib)
        if huffman:
            lens = code_lengths(r.index, 1 << ib)
            size = math.ceil(huffman_bits(r.index, lens) / 8) + (1 << ib)
        else:
            size = math.ceil(r.index.size * ib / 8)
        # fillers carry no weight code, so only the index stream changes with ib
        if best is None or size < best:
            best, best_bits = size, ib
    return best_bits


def encode_tensor(
    name: str, tensor: np.ndarray, encoding: str, *, index_bits: int | None = None, bits: int | None = None
) -> EncodedTensor:
    """Encode one tensor.

    Args:
        name: state-dict name.
        tensor: the values (``sparse``/``fixed``/``huff`` need float32).
        encoding: one of ``raw``, ``sparse``, ``fixed``, ``huff``.
        index_bits: relative index width (default: the smallest stream, 2..8).
        bits: weight code width for ``fixed`` (default: just enough for the
            codebook); must hold the layer's distinct nonzero values.

    Raises:
        ConfigError: the tensor does not fit the encoding (too many distinct
            values for a codebook, wrong dtype).
    """
    a = np.ascontiguousarray(tensor)
    shape = tuple(int(d) for d in a.shape)
    if encoding == "raw":
        return EncodedTensor(name, shape, "raw", [a.reshape(-1).view(np.uint8)], [_dtype_code(a)])
    if encoding not in ENCODINGS:
        raise ConfigError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if a.dtype != np.float32:
        raise ConfigError(f"{name}: {encoding} encoding needs float32, got {a.dtype}")
    flat = a.reshape(-1)
    # +0.0 and -0.0 are both "pruned"; decoding gives +0.0, so normalise first.
    flat = np.where(flat == 0, np.float32(0), flat).astype(np.float32)
    ib = index_bits or best_index_bits(flat, huffman=encoding == "huff")
    rel = relative_encode(flat, ib)
    crc = _crc(flat)
    nnz, ni = int(rel.values.size), int(rel.index.size)
    if encoding == "sparse":
        return EncodedTensor(name, shape, "sparse", [rel.values.astype("<f4").view(np.uint8), pack_fixed(rel.index, ib)],
                             [ib, nnz, ni, crc])
    codebook = np.unique(rel.values)
    if codebook.size > MAX_CODEBOOK:
        raise ConfigError(f"{name}: {codebook.size} distinct values; a codebook holds at most {MAX_CODEBOOK}")
    need = max(1, math.ceil(math.log2(max(codebook.size, 1))))
    b = need if bits is None else int(bits)
    if b < need:
        raise ConfigError(f"{name}: {codebook.size} distinct values do not fit {b}-bit codes")
    codes = np.searchsorted(codebook, rel.values)
    cb_bytes = codebook.astype("<f4").view(np.uint8)
    if encoding == "fixed":
        return EncodedTensor(name, shape, "fixed", [cb_bytes, pack_fixed(codes, b), pack_fixed(rel.index, ib)],
                             [b, ib, nnz, ni, crc])
    wl = code_lengths(codes, codebook.size)
    il = code_lengths(rel.index, 1 << ib)
    wbuf, wbits = huffman_encode(codes, wl)
    ibuf, ibits = huffman_encode(rel.index, il)
    return EncodedTensor(name, shape, "huff", [cb_bytes, wl, il, wbuf, ibuf], [b, ib, nnz, ni, wbits, ibits, crc])


def encode_codes(name: str, codes: np.ndarray, bits: int, *, levels: np.ndarray | None = None,
                 scale: np.ndarray | None = None, zero_point: np.ndarray | None = None) -> EncodedTensor:
    """Bit-pack a quantized layer: integer ``codes`` (the tensor's shape) with a level
    table (``lut``) or an affine map per group (``qlin``); groups along axis 0.

    >>> e = encode_codes("w", np.array([[1, 0], [0, 1]]), 1, levels=np.array([[-1.0, 1.0]], np.float32))
    >>> e.encoding, e.nbytes, decode_entry(e.entry(), e.segments).tolist()
    ('lut', 9, [[1.0, -1.0], [-1.0, 1.0]])
    """
    c = np.ascontiguousarray(codes).astype(np.int64)
    shape = tuple(int(d) for d in c.shape)
    packed = pack_fixed(c.reshape(-1), bits)
    if levels is not None:
        lv = np.ascontiguousarray(levels, dtype=np.float32)
        groups, nlev = lv.shape
        flat = _lut_decode(c.reshape(-1), lv, shape)
        return EncodedTensor(name, shape, "lut", [packed, lv.astype("<f4").reshape(-1).view(np.uint8)],
                             [int(bits), int(groups), int(nlev), _crc(flat)])
    sc = np.ascontiguousarray(scale, dtype=np.float64).reshape(-1)
    zp = np.ascontiguousarray(zero_point, dtype=np.int64).reshape(-1)
    flat = _qlin_decode(c.reshape(-1), sc, zp, shape)
    return EncodedTensor(name, shape, "qlin", [packed, sc.astype("<f8").view(np.uint8), zp.astype("<i8").view(np.uint8)],
                         [int(bits), int(sc.size), _crc(flat)])


def _group_index(size: int, shape, groups: int) -> np.ndarray:
    if groups == 1:
        return np.zeros(size, np.int64)
    _check(bool(shape) and shape[0] == groups, f"{groups} groups do not match a tensor of shape {list(shape)}")
    return np.repeat(np.arange(groups), size // groups)


def _lut_decode(codes: np.ndarray, levels: np.ndarray, shape) -> np.ndarray:
    _check(codes.size == 0 or int(codes.max()) < levels.shape[1], "a code points outside its level table")
    return levels[_group_index(codes.size, shape, levels.shape[0]), codes].astype(np.float32)


def _qlin_decode(codes: np.ndarray, scale: np.ndarray, zp: np.ndarray, shape) -> np.ndarray:
    g = _group_index(codes.size, shape, scale.size)
    return ((codes - zp[g]).astype(np.float64) * scale[g]).astype(np.float32)


def _decode_quant(name: str, enc: str, shape, size: int, f: list, segments: list[np.ndarray]) -> np.ndarray:
    try:
        flat, crc = _decode_codes(name, enc, shape, size, f, segments)
    except CompressedFileError as exc:
        raise CompressedFileError(str(exc) if str(exc).startswith(name) else f"{name}: {exc}") from None
    if _crc(flat) != crc:
        raise ChecksumError(f"{name}: checksum mismatch: the decoded weights differ from the ones written")
    return flat.reshape(shape)


def _decode_codes(name: str, enc: str, shape, size: int, f: list, segments: list[np.ndarray]):
    b = f[0]
    codes = unpack_fixed(segments[0], b, size)
    if enc == "lut":
        _, groups, nlev, crc = f
        _check(segments[1].size == 4 * groups * nlev, f"{name}: level table has the wrong size")
        flat = _lut_decode(codes, segments[1].view("<f4").astype(np.float32).reshape(groups, nlev), shape)
    else:
        _, groups, crc = f
        _check(segments[1].size == 8 * groups and segments[2].size == 8 * groups, f"{name}: scales have the wrong size")
        flat = _qlin_decode(codes, segments[1].view("<f8").astype(np.float64), segments[2].view("<i8").astype(np.int64), shape)
    return flat, crc


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise CompressedFileError(msg)


def decode_entry(entry: list, segments: list[np.ndarray]) -> np.ndarray:
    """Decode one entry's segments back to a numpy array of the entry's shape."""
    name, shape, enc, _lengths, *f = entry
    size = int(np.prod(shape)) if shape else 1
    if enc == "raw":
        _check(len(f) == 1 and f[0] in _DTYPES, f"{name}: unknown raw dtype {f[:1]}")
        dt = np.dtype(_DTYPES[f[0]]).newbyteorder("<")
        _check(segments[0].size == size * dt.itemsize, f"{name}: raw tensor has the wrong byte count")
        return segments[0].view(dt).astype(dt.newbyteorder("="), copy=True).reshape(shape)
    if enc in QUANT_ENCODINGS:
        return _decode_quant(name, enc, shape, size, f, segments)
    if enc == "sparse":
        ib, nnz, ni, crc = f
        values = segments[0].view("<f4").astype(np.float32)
        _check(values.size == nnz, f"{name}: value count mismatch")
        index = unpack_fixed(segments[1], ib, ni)
    elif enc in ("fixed", "huff"):
        cb = segments[0].view("<f4").astype(np.float32)
        if enc == "fixed":
            b, ib, nnz, ni, crc = f
            codes = unpack_fixed(segments[1], b, nnz)
            index = unpack_fixed(segments[2], ib, ni)
        else:
            b, ib, nnz, ni, wbits, ibits, crc = f
            _check(segments[1].size == cb.size and segments[2].size == (1 << ib),
                   f"{name}: Huffman tables have the wrong size")
            _check(math.ceil(wbits / 8) == segments[3].size and math.ceil(ibits / 8) == segments[4].size,
                   f"{name}: Huffman stream length mismatch")
            codes = huffman_decode(segments[3], segments[1], nnz, wbits)
            index = huffman_decode(segments[4], segments[2], ni, ibits)
        _check(codes.size == 0 or int(codes.max()) < cb.size, f"{name}: weight code outside the codebook")
        values = cb[codes]
    else:
        raise CompressedFileError(f"{name}: unknown encoding {enc!r}")
    flat = relative_decode(index, values, size, ib).astype(np.float32)
    if _crc(flat) != crc:
        raise ChecksumError(f"{name}: checksum mismatch: the decoded weights differ from the ones written")
    return flat.reshape(shape)


def write_efz(path: str | os.PathLike, tensors: list[EncodedTensor], model: str | None = None, extra: dict | None = None,
              quant: dict | None = None) -> Path:
    """Write encoded tensors as one ``.efz`` file, atomically; returns the path.

    ``quant`` (``{layer: {"f": family, "b": weight bits, "ab": activation bits,
    "a": activation quantizer spec}}``) is stored as the ``q`` metadata entry.
    """
    from safetensors.numpy import save_file

    parts = [s.astype(np.uint8, copy=False).reshape(-1) for t in tensors for s in t.segments]
    payload = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    version = FORMAT_VERSION if quant or any(t.encoding in QUANT_ENCODINGS for t in tensors) else 1
    meta = {"format": "efz", "v": version, "model": model, "crc": zlib.crc32(payload.tobytes()),
            "t": [t.entry() for t in tensors]}
    if extra:
        meta["x"] = extra
    if quant:
        meta["q"] = quant
    text = json.dumps(meta, separators=(",", ":"))
    if payload.size == 0:
        payload = np.zeros(1, np.uint8)  # safetensors cannot hold an empty file body portably
    return atomic_write_with(path, lambda tmp: save_file({"payload": payload}, tmp, metadata={"efz": text}))


@dataclass
class EfzFile:
    """A read ``.efz`` file: its metadata and its decoded tensors."""

    path: Path
    meta: dict
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    file_bytes: int = 0

    @property
    def model(self) -> str | None:
        return self.meta.get("model")


def read_efz(path: str | os.PathLike, decode: bool = True) -> EfzFile:
    """Read, check and (by default) decode an ``.efz`` file.

    Raises:
        CompressedFileError: missing, truncated, not an efz file, inconsistent.
        FormatVersionError: another format version.
        ChecksumError: payload or decoded tensor checksum mismatch.
    """
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CompressedFileError(f"compressed file {str(p)!r} does not exist")
    try:
        with safe_open(str(p), framework="numpy") as f:
            raw_meta = (f.metadata() or {}).get("efz")
            keys = list(f.keys())
            payload = f.get_tensor("payload") if "payload" in keys else None
    except Exception as exc:
        raise CompressedFileError(f"{p.name}: truncated or not a safetensors file ({str(exc).splitlines()[0][:120]})") from exc
    if raw_meta is None or payload is None:
        raise CompressedFileError(f"{p.name}: a safetensors file, but not an edgefit .efz file")
    try:
        meta = json.loads(raw_meta)
    except json.JSONDecodeError as exc:
        raise CompressedFileError(f"{p.name}: corrupted metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != "efz":
        raise CompressedFileError(f"{p.name}: metadata is not efz metadata")
    if meta.get("v") not in READ_VERSIONS:
        raise FormatVersionError(
            f"{p.name}: efz format version {meta.get('v')!r}; this edgefit reads versions {READ_VERSIONS}"
        )
    payload = np.asarray(payload, dtype=np.uint8).reshape(-1)
    try:
        entries = meta["t"]
        total = sum(int(x) for e in entries for x in e[3])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CompressedFileError(f"{p.name}: malformed entry table ({exc})") from exc
    if not (total == payload.size or (total == 0 and payload.size == 1)):
        raise CompressedFileError(f"{p.name}: payload has {payload.size} bytes, the entries describe {total}")
    if total and zlib.crc32(payload.tobytes()) != meta.get("crc"):
        raise ChecksumError(f"{p.name}: payload checksum mismatch (the file is corrupted)")
    out = EfzFile(p, meta, file_bytes=p.stat().st_size)
    pos = 0
    for e in entries:
        segs = []
        for n in e[3]:
            segs.append(payload[pos : pos + int(n)])
            pos += int(n)
        out.sizes[e[0]] = sum(int(n) for n in e[3])
        if decode:
            try:
                out.tensors[e[0]] = decode_entry(e, segs)
            except (CompressedFileError, ChecksumError):
                raise
            except Exception as exc:
                raise CompressedFileError(f"{p.name}: entry {e[0]!r} cannot be decoded ({type(exc).__name__}: {exc})") from exc
    return out
