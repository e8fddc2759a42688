"""Save a compressed model as ``.efz`` and load it back as an ``nn.Module``.

>>> import tempfile
>>> from edgefit.compress import MagnitudeConfig, prune_
>>> from edgefit.zoo import create
>>> _ = torch.manual_seed(0)
>>> model = create("lenet_300_100_digits")
>>> _ = prune_(model, MagnitudeConfig(sparsity=0.9))
>>> path = Path(tempfile.mkdtemp()) / "m.efz"
>>> saved = save_compressed(model, path, model_name="lenet_300_100_digits")
>>> saved.file_bytes == path.stat().st_size < 50_610 * 4
True
>>> back = load_compressed(path)  # rebuilt from the zoo, weights exact
>>> all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgefit.compress._layers import weight_layers
from edgefit.compress.encode.container import EncodedTensor, encode_tensor, read_efz, write_efz
from edgefit.data.weights import check_state_matches
from edgefit.errors import ConfigError

_ENCODE_MODES = ("huff", "fixed", "sparse")


@dataclass
class SaveResult:
    """What :func:`save_compressed` wrote.

    Attributes:
        path: the file.
        file_bytes: its size on disk, header included.
        entries: ``{tensor name: (encoding, payload bytes, fields)}``.
        uncompressed: ``{layer weight name: reason}`` for weights stored raw.
    """

    path: Path
    file_bytes: int
    entries: dict[str, tuple[str, int, list]] = field(default_factory=dict)
    uncompressed: dict[str, str] = field(default_factory=dict)

    @property
    def header_bytes(self) -> int:
        return self.file_bytes - sum(n for _, n, _ in self.entries.values())


def _is_quantized(module: nn.Module, enc: EncodedTensor) -> bool:
    if hasattr(module, "edgefit_kmeans") or hasattr(module, "edgefit_linear"):
        return True
    return enc.segments[0].size // 4 <= 256  # a codebook of at most 8-bit codes


def _pick(value, name: str):
    if isinstance(value, Mapping):
        return value.get(name)
    return value


def encode_model(
    model: nn.Module,
    encoding: str = "huff",
    *,
    index_bits: int | Mapping[str, int] | None = None,
) -> tuple[list[EncodedTensor], dict[str, str]]:
    """Encode every state-dict tensor; Linear/Conv weights with ``encoding``.

    A weight that cannot take ``encoding`` (more distinct values than a codebook
    holds, i.e. not quantized) falls back to ``sparse`` when that is smaller
    than raw, else to ``raw``; the reason is returned per weight.
    """
    if encoding not in _ENCODE_MODES:
        raise ConfigError(f"encoding must be one of {_ENCODE_MODES}, got {encoding!r}")
    layers = weight_layers(model)
    weights = {f"{n}.weight": (n, m) for n, m in layers.items()}
    out, skipped = [], {}
    for key, t in model.state_dict().items():
        a = t.detach().cpu().contiguous().numpy()
        if key in weights and t.dtype == torch.float32:
            lname, m = weights[key]
            ib = _pick(index_bits, lname)
            st = getattr(m, "edgefit_kmeans", None)
            bits = st.bits if st is not None and encoding == "fixed" else None
            try:
                enc = encode_tensor(key, a, encoding, index_bits=ib, bits=bits)
            except ConfigError as exc:
                enc = None
                if encoding != "sparse":
                    enc = encode_tensor(key, a, "sparse", index_bits=ib)
                    skipped[key] = f"not quantized ({exc}); stored as sparse fp32"
                if enc is None or enc.nbytes >= a.nbytes:
                    enc = encode_tensor(key, a, "raw")
                    skipped[key] = "dense and not quantized; stored uncompressed"
            if enc.encoding in ("huff", "fixed") and not _is_quantized(m, enc):
                # Many distinct values (pruned, not quantized): a codebook would be as large as the
                # values themselves; keep whichever lossless form is smaller.
                alt = encode_tensor(key, a, "sparse", index_bits=ib)
                if alt.nbytes < enc.nbytes:
                    enc = alt
                    skipped[key] = "not quantized; stored as sparse fp32 (smaller than a codebook)"
            if enc.encoding == "huff":
                # Tiny layers: the Huffman tables can cost more than they save.
                alt = encode_tensor(key, a, "fixed", index_bits=ib)
                if alt.nbytes < enc.nbytes:
                    enc = alt
            if enc.encoding != "raw" and enc.nbytes >= a.nbytes:
                enc = encode_tensor(key, a, "raw")
                skipped[key] = "encoding would be larger than the raw tensor; stored uncompressed"
            out.append(enc)
        else:
            if key in weights:
                skipped[key] = f"dtype {t.dtype} is not encoded; stored uncompressed"
            out.append(encode_tensor(key, a, "raw"))
    return out, skipped


def save_compressed(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    model_name: str | None = None,
    encoding: str = "huff",
    index_bits: int | Mapping[str, int] | None = None,
    extra: dict | None = None,
) -> SaveResult:
    """Write ``model`` (pruned and/or quantized) as an ``.efz`` file, atomically.

    Args:
        model: the compressed model.
        path: output file.
        model_name: zoo name recorded so :func:`load_compressed` can rebuild the
            architecture without code (``None``: the loader needs ``model=``).
        encoding: ``"huff"`` (P+Q+H), ``"fixed"`` (P+Q) or ``"sparse"`` (P).
        index_bits: relative index width, one value or ``{layer: bits}``
            (default: the smallest stream per layer, 2..8 bits).
        extra: small JSON-able dict stored in the metadata (e.g. accuracy).
    """
    tensors, skipped = encode_model(model, encoding, index_bits=index_bits)
    p = write_efz(path, tensors, model=model_name, extra=extra)
    res = SaveResult(p, p.stat().st_size, uncompressed=skipped)
    for t in tensors:
        res.entries[t.name] = (t.encoding, t.nbytes, t.fields)
    return res


def load_compressed(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """Load an ``.efz`` file into ``model`` or into the zoo model it names.

    Nothing in the file runs code: the architecture comes from the zoo name in
    its metadata (or from ``model``), the weights are decoded from the streams and
    checked against their stored CRC-32. The returned model is in eval mode and
    its weights equal the quantized weights that were saved, bit for bit.

    Raises:
        CompressedFileError / FormatVersionError / ChecksumError: a bad file.
        ConfigError: no ``model`` given and the file names no zoo model.
        DataError: the file's tensors do not match the model.
    """
    f = read_efz(path)
    if model is None:
        if not f.model:
            raise ConfigError(f"{Path(path).name} records no zoo model; pass model= to load it")
        from edgefit.zoo import create

        model = create(f.model)
    own = model.state_dict()
    check_state_matches(own, {k: a.shape for k, a in f.tensors.items()}, Path(path).name)
    with torch.no_grad():
        for k, a in f.tensors.items():
            own[k].copy_(torch.from_numpy(np.ascontiguousarray(a)).to(own[k].dtype))
    model.eval()
    return model


def inspect_compressed(path: str | os.PathLike) -> dict:
    """What is inside an ``.efz`` file, without building a model (checks included)."""
    f = read_efz(path)
    rows = []
    for e in f.meta["t"]:
        name, shape, enc, lengths, *fields = e
        numel = int(np.prod(shape)) if shape else 1
        row = {"name": name, "shape": shape, "encoding": enc, "bytes": sum(lengths), "numel": numel}
        if enc == "raw":
            row["dtype"] = fields[0]
        elif enc == "sparse":
            row.update(index_bits=fields[0], nonzero=fields[1], index_entries=fields[2])
        elif enc == "fixed":
            row.update(bits=fields[0], index_bits=fields[1], nonzero=fields[2], index_entries=fields[3],
                       codebook=lengths[0] // 4)
        else:
            row.update(bits=fields[0], index_bits=fields[1], nonzero=fields[2], index_entries=fields[3],
                       codebook=lengths[0] // 4, weight_stream_bits=fields[4], index_stream_bits=fields[5])
        if "nonzero" in row:
            row["kept"] = row["nonzero"] / numel if numel else 0.0
        rows.append(row)
    return {
        "path": str(f.path),
        "format_version": f.meta["v"],
        "model": f.model,
        "file_bytes": f.file_bytes,
        "payload_bytes": sum(r["bytes"] for r in rows),
        "header_bytes": f.file_bytes - sum(r["bytes"] for r in rows),
        "extra": f.meta.get("x", {}),
        "tensors": rows,
    }
