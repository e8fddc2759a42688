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
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgefit.compress._layers import weight_layers
from edgefit.compress.encode.container import (
    EncodedTensor,
    encode_codes,
    encode_tensor,
    read_efz,
    write_efz,
)
from edgefit.data.weights import check_state_matches
from edgefit.errors import CompressedFileError, ConfigError

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


def _state_entry(key: str, st, a: np.ndarray) -> EncodedTensor | None:
    """The bit-packed codes of a quantized layer, if they still decode to the weight ``a``."""
    if st.levels is not None:
        enc = encode_codes(key, st.codes.numpy(), st.bits, levels=st.levels.numpy())
    else:
        enc = encode_codes(key, st.codes.numpy(), st.bits, scale=st.scale.numpy(), zero_point=st.zero_point.numpy())
    return enc if enc.fields[-1] == zlib.crc32(np.ascontiguousarray(a, dtype=np.float32).tobytes()) else None


def _bias_entry(key: str, st, a: np.ndarray) -> EncodedTensor | None:
    """An int32 bias as 32-bit codes with its per-channel scale."""
    if st is None or st.bias_codes is None:
        return None
    codes = st.bias_codes.numpy() + (1 << 31)
    scale = st.bias_scale.numpy().reshape(-1)  # one scale (per-tensor weights) or one per channel
    enc = encode_codes(key, codes, 32, scale=scale, zero_point=np.full(scale.shape, 1 << 31))
    return enc if enc.fields[-1] == zlib.crc32(np.ascontiguousarray(a, dtype=np.float32).tobytes()) else None


def quant_meta(model: nn.Module) -> dict:
    """``{layer: {"f", "b", "ab", "a"}}`` of the quantized layers (stored as the file's ``q`` entry);
    k-means layers have an entry only when their activations are quantized (their
    weight width is the code width of their codebook stream)."""
    out = {}
    for n, m in model.named_modules():
        st = getattr(m, "edgefit_quant", None)
        if st is None and getattr(getattr(m, "edgefit_kmeans", None), "act", None):
            st = m.edgefit_kmeans
            out[n] = {"f": "kmeans", "b": st.bits, "ab": st.act_bits, "a": st.act}
        elif st is not None:
            out[n] = {"f": st.family, "b": st.bits, "ab": st.act_bits, "a": st.act}
    return out


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
    biases = {f"{n}.bias": getattr(m, "edgefit_quant", None) for n, m in layers.items()}
    out, skipped = [], {}
    for key, t in model.state_dict().items():
        a = t.detach().cpu().contiguous().numpy()
        st = getattr(weights[key][1], "edgefit_quant", None) if key in weights else None
        packed = _state_entry(key, st, a) if st is not None else _bias_entry(key, biases.get(key), a)
        if packed is not None and (st is None or encoding == "sparse" or (a == 0).mean() < 0.5):
            out.append(packed)  # bit-packed codes; a pruned layer may still do better below
            continue
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
            if packed is not None and packed.nbytes <= enc.nbytes:
                enc = packed
                skipped.pop(key, None)
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
    p = write_efz(path, tensors, model=model_name, extra=extra, quant=quant_meta(model))
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
    return _load_into(read_efz(path), model, Path(path).name)


def resolve_compressed(path: str | os.PathLike):
    """An ``.efz`` file as a `edgefit.zoo.ResolvedModel` (what every MODEL argument
    resolves to): the zoo model it records, loaded as by `load_compressed` (the
    file is read once), with the zoo's input shape. Its layers carry their real
    precisions (``edgefit.compress.quantize.precision.model_widths``).
    """
    from edgefit.zoo import ResolvedModel, get_spec

    f = read_efz(path)
    if not f.model:
        raise ConfigError(f"{Path(path).name} records no zoo model; load it with load_compressed(path, model)")
    spec = get_spec(f.model)
    model = _load_into(f, None, Path(path).name)
    return ResolvedModel(model, tuple(spec.input_shape), spec.input_dtype or "float32", Path(path).name)


def _load_into(f, model: nn.Module | None, fname: str) -> nn.Module:
    if model is None:
        if not f.model:
            raise ConfigError(f"{fname} records no zoo model; pass model= to load it")
        from edgefit.zoo import create

        model = create(f.model)
    own = model.state_dict()
    check_state_matches(own, {k: a.shape for k, a in f.tensors.items()}, fname)
    with torch.no_grad():
        for k, a in f.tensors.items():
            own[k].copy_(torch.from_numpy(np.ascontiguousarray(a)).to(own[k].dtype))
    _restore_activations(model, f.meta.get("q") or {}, fname)
    _record_codebook_widths(model, f.meta, fname)
    model.eval()
    return model


def _restore_activations(model: nn.Module, quant: dict, fname: str) -> None:
    """Reinstall each layer's activation quantizer and record its precision (``module.edgefit_precision``)."""
    from edgefit.compress.quantize import act_from_spec

    mods = dict(model.named_modules())
    for layer, q in quant.items():
        if layer not in mods or not isinstance(q, dict):
            raise CompressedFileError(f"{fname}: quantization entry for {layer!r}, which the model lacks")
        if q.get("a"):
            try:
                act_from_spec(q["a"]).install(mods[layer])
            except (ConfigError, KeyError, TypeError) as exc:
                raise CompressedFileError(f"{fname}: bad activation quantizer for {layer!r} ({exc})") from exc
        mods[layer].edgefit_precision = {"family": q.get("f"), "weight_bits": q.get("b"), "act_bits": q.get("ab", 32)}


def _record_codebook_widths(model: nn.Module, meta: dict, fname: str) -> None:
    """k-means layers: record the code width of their codebook stream as their precision
    (every layer's recorded width checked against its stored codes)."""
    from edgefit.compress.quantize.precision import file_precisions

    mods = dict(model.named_modules())
    for layer, p in file_precisions(meta, fname).items():
        if p.family == "kmeans" and layer in mods:
            mods[layer].edgefit_precision = {"family": "kmeans", "weight_bits": p.weight_bits, "act_bits": p.act_bits}


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
        elif enc == "lut":
            row.update(bits=fields[0], groups=fields[1], levels=fields[2])
        elif enc == "qlin":
            row.update(bits=fields[0], groups=fields[1])
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
        "quantized": f.meta.get("q", {}),
        "tensors": rows,
    }
