"""The precisions a quantized model really has, per layer, for the profile and
the hardware model, and what each multiply-accumulate becomes at them
(reference/003: BinaryConnect "MAC -> addition/subtraction", BNN "MAC ->
XNOR", LogNet "Product = X << W").

>>> p = {"fc": LayerPrecision("xnor", 1, 1)}
>>> profile_bits(p)
{'fc': 1, 'default': 32}
>>> profile_widths(p, has_float_layer=False)
{'bits': {'fc': 1, 'default': 32}, 'activation_bits': {'fc': 1, 'default': 8}}
>>> op_kind(p["fc"]), op_kind(LayerPrecision("lognet", 5, 4)), op_kind(LayerPrecision("bwn", 1, 32))
('xnor+popcount', 'shift+add', 'add/sub')
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from torch import nn

from edgefit.errors import CompressedFileError

WORD_BITS = 64  # lanes of one XNOR + popcount instruction pair on a 64-bit CPU


@dataclass(frozen=True)
class LayerPrecision:
    """One layer's family, weight bits and activation bits (32: float)."""

    family: str
    weight_bits: int
    act_bits: int


def layer_precisions(model: nn.Module) -> dict[str, LayerPrecision]:
    """From the states ``quantize_`` attached, or what ``load_compressed`` restored."""
    out = {}
    for n, m in model.named_modules():
        st = getattr(m, "edgefit_quant", None)
        if st is not None:
            out[n] = LayerPrecision(st.family, st.bits, st.act_bits)
        elif getattr(m, "edgefit_precision", None):
            p = m.edgefit_precision
            out[n] = LayerPrecision(p["family"], int(p["weight_bits"]), int(p["act_bits"]))
        elif getattr(m, "edgefit_kmeans", None) is not None:
            out[n] = LayerPrecision("kmeans", m.edgefit_kmeans.bits, m.edgefit_kmeans.act_bits)
    return out


def efz_precisions(path: str | os.PathLike) -> dict[str, LayerPrecision]:
    """Read the per-layer precisions from an ``.efz`` file (checked; nothing built)."""
    from edgefit.compress.encode.container import read_efz

    f = read_efz(path, decode=False)
    return file_precisions(f.meta, f.path.name)


def file_precisions(meta: dict, fname: str = "efz file") -> dict[str, LayerPrecision]:
    """The per-layer precisions an ``.efz`` file's metadata records: the ``q`` entry of
    the quantized families, and the code width of k-means codebook streams.

    Raises:
        CompressedFileError: a ``q`` entry's weight width is not the width its
            layer's bit-packed codes are stored at (each layer has its own).
    """
    from edgefit.compress.encode.container import QUANT_ENCODINGS

    try:
        out = {layer: LayerPrecision(q.get("f", "?"), int(q.get("b", 32)), int(q.get("ab", 32)))
               for layer, q in (meta.get("q") or {}).items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise CompressedFileError(f"{fname}: malformed quantization entry ({exc})") from exc
    packed = {e[0][: -len(".weight")]: int(e[4]) for e in meta["t"] if e[2] in QUANT_ENCODINGS and e[0].endswith(".weight")}
    for layer, p in out.items():
        if layer in packed and packed[layer] != p.weight_bits:
            raise CompressedFileError(f"{fname}: the quantization entry of {layer!r} records {p.weight_bits}-bit weights;"
                                      f" its codes are stored at {packed[layer]} bits")
    for e in meta["t"]:  # k-means layers: the code width of their stream (activations from their q entry, if any)
        layer, _, leaf = e[0].rpartition(".")
        if leaf == "weight" and e[2] in ("fixed", "huff") and (layer not in out or out[layer].family == "kmeans"):
            out[layer] = LayerPrecision("kmeans", int(e[4]), out[layer].act_bits if layer in out else 32)
    return out


def profile_bits(precisions: dict[str, LayerPrecision], default: int = 32) -> dict[str, int]:
    """``bits=`` for :func:`edgefit.profile`: each quantized layer at its width."""
    return {**{n: p.weight_bits for n, p in precisions.items()}, "default": default}


def op_kind(p: LayerPrecision) -> str:
    """What one multiply-accumulate of the layer becomes."""
    if p.weight_bits == 1 and p.act_bits == 1:
        return "xnor+popcount"
    if p.family in ("binaryconnect", "bwn", "twn", "ttq"):
        return "add/sub"
    if p.family == "lognet":
        return "shift+add"
    if p.act_bits < 32 and p.family in ("linear", "fixed"):
        return f"int{max(p.weight_bits, p.act_bits)} MAC"
    return "fp32 MAC"


@dataclass
class LayerOps:
    """One row of :func:`operation_counts`."""

    name: str
    family: str
    weight_bits: int
    act_bits: int
    macs: int
    kind: str
    word_ops: int  # 64-lane XNOR + popcount pairs for binary layers, else the MACs
    bit_ops: int = 0  # XNOR + popcount operations of a binary layer (2 x MACs), from the profile
    other_ops: int = 0  # the layer's non-MAC work (bias adds, scaling), from the profile
    runs_at: str = ""  # the device precision the layer ran at (with a device), from the estimate
    compute_seconds: float = 0.0  # its T_computation at that rate, from the estimate

    @property
    def compute_saving(self) -> float:
        """XNOR-Net's computation saving on a 64-bit CPU: ``macs / (word_ops + other_ops)``.

        Rastegari et al. (2016), section 3.2: ``S = c N_W N_I / (c N_W N_I / 64 + N_I)``,
        the ``N_I`` being the non-binary work per output (the scaling, here the
        row's other ops). 1 for layers that are not binary.

        >>> round(LayerOps("conv", "xnor", 1, 1, 2304, "xnor+popcount", 36, 4608, 1).compute_saving, 2)
        62.27
        """
        if self.kind != "xnor+popcount" or not self.macs:
            return 1.0
        return self.macs / (self.word_ops + self.other_ops)


def profile_widths(precisions: dict[str, LayerPrecision], *, has_float_layer: bool) -> dict:
    """``bits=`` and ``activation_bits=`` for :func:`edgefit.profile`: each quantized
    layer at its real weight and activation widths.

    Layers with no entry (activations, pooling, float layers) keep weights at 32
    bits and move activations at 32 bits when a float weight layer remains, else
    at the widest quantized activation width and at least 8 bits (a fully
    quantized model's glue layers run on integers).
    """
    acts = {p.act_bits for p in precisions.values()} or {32}
    default_act = 32 if has_float_layer else max(max(acts), 8)
    return {
        "bits": profile_bits(precisions),
        "activation_bits": {**{n: p.act_bits for n, p in precisions.items()}, "default": default_act},
    }


def model_widths(model: nn.Module, precisions: dict[str, LayerPrecision] | None = None) -> dict:
    """The real per-layer widths of ``model`` as keyword arguments of :func:`edgefit.profile`
    (``{}`` for a model with no quantized layer).

    >>> from torch import nn
    >>> model_widths(nn.Linear(4, 2))
    {}
    """
    precisions = layer_precisions(model) if precisions is None else precisions
    if not precisions:
        return {}
    has_float = any(isinstance(m, _WEIGHT_LAYERS) and n not in precisions for n, m in model.named_modules())
    return profile_widths(precisions, has_float_layer=has_float)


_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def operation_counts(profile, precisions: dict[str, LayerPrecision]) -> list[LayerOps]:
    """Per quantized layer: MACs, what they become, and the machine operations.

    A binary layer's ``k``-long dot product is ``k`` XNORs and a popcount: on a
    64-bit word that is ``ceil(k / 64)`` XNOR + popcount pairs per output, so
    ``word_ops = macs / 64`` (the lectures' "58x faster convolutions" of
    XNOR-Net is this 64 minus overheads).
    """
    rows = []
    for r in profile.layers:
        p = precisions.get(r.name)
        if p is None or not r.macs:
            continue
        kind = op_kind(p)
        words = math.ceil(r.macs / WORD_BITS) if kind == "xnor+popcount" else r.macs
        rows.append(LayerOps(r.name, p.family, p.weight_bits, p.act_bits, r.macs, kind, words, r.bit_ops, r.other_ops))
    return rows


@dataclass
class PrecisionReport:
    """A quantized model's real widths through the profile (and a device estimate).

    Attributes:
        precisions: per quantized layer.
        ops: :func:`operation_counts` rows.
        profile: the profile at the real weight widths.
        estimate: the device estimate, when a device was given.
    """

    precisions: dict[str, LayerPrecision]
    ops: list[LayerOps]
    profile: object
    estimate: object | None = None

    def to_text(self) -> str:
        dev = self.estimate is not None
        lines = [f"{'layer':<16} {'family':<13} {'W bits':>6} {'A bits':>6} {'MACs':>12}  {'a MAC becomes':<15} {'machine ops':>12}"
                 f"  {'saving':>6}" + ("  runs at   compute" if dev else "")]
        for r in self.ops:
            saving = f"{r.compute_saving:.1f}x" if r.kind == "xnor+popcount" else "-"
            lines.append(f"{r.name:<16} {r.family:<13} {r.weight_bits:>6} {r.act_bits:>6} {r.macs:>12,}  {r.kind:<15} {r.word_ops:>12,}"
                         f"  {saving:>6}" + (f"  {r.runs_at:<8} {1e6 * r.compute_seconds:.3g} us" if dev else ""))
        t = self.profile.totals
        lines.append(f"weights {t.model_size_bytes:,.0f} bytes at these widths (fp32: {4 * t.params:,});"
                     f" {t.macs:,} MACs (binary layers: {t.bit_ops:,} XNOR + popcount bit operations) ->"
                     f" {sum(r.word_ops for r in self.ops) + t.macs - sum(r.macs for r in self.ops):,} machine ops")
        if self.estimate is not None:
            e = self.estimate.totals
            lines.append(f"{self.estimate.device.display_name}: {1e3 * e.seconds:.4g} ms,"
                         f" {1e3 * e.joules:.3f} mJ; {e.fit_message}")
            lines += [f"note: {n}" for n in self.estimate.notes]
        return "\n".join(lines)


def precision_report(model: nn.Module, input_shape, *, precisions=None, device=None) -> PrecisionReport:
    """Profile ``model`` at its real per-layer weight and activation widths
    (:func:`model_widths`); estimate on ``device`` if given, each layer at the
    device rate its widths call for (`edgefit.hardware.estimate`).

    Args:
        model: a model after ``quantize_`` or from ``load_compressed``.
        input_shape: its example input shape.
        precisions: the per-layer precisions (default: read from ``model``).
        device: a device name, file or `edgefit.hardware.Device`.
    """
    from edgefit.metrics import profile as profile_fn

    precisions = layer_precisions(model) if precisions is None else precisions
    kwargs = model_widths(model, precisions) or {"bits": 32}
    prof = profile_fn(model, input_shape=input_shape, **kwargs)
    ops = operation_counts(prof, precisions)
    est = None
    if device is not None:
        from edgefit.hardware import estimate

        est = estimate(prof, device)
        by_name = {row.name: row for row in est.layers}
        for r in ops:
            r.runs_at, r.compute_seconds = by_name[r.name].precision, by_name[r.name].compute_seconds
    return PrecisionReport(precisions, ops, prof, est)
