"""The result of counting: per-layer rows, totals, and what was not counted.

Conventions (the lectures', reference/000 and 001):

* 1 MAC = 2 FLOPs. ``macs`` counts the multiply-accumulates of conv, linear,
  matmul, bmm, einsum and attention. Bias adds are not MACs; they, and every
  other non-MAC operation (elementwise, pooling, normalization, softmax), are
  counted in ``other_ops`` and never folded into ``flops``.
* ``params`` counts every parameter tensor once, however many modules share it.
* ``activations`` of a layer are the elements of its output, counted for layers
  that compute (conv, linear, matmul, attention, pooling, embedding, resizing);
  elementwise functions, normalization, dropout and reshapes are taken as fused
  into the layer that produced their input and add none. The total includes
  the model input, as the lectures' AlexNet table does.
* ``peak_activations`` is the largest input + output of any one layer (the
  lectures' definition); ``peak_live_activations`` is the most elements alive
  at once in the traced graph, from a liveness pass (it sees residual branches
  that stay alive).
* Tables, CSV and Markdown of a profile are in `edgefit.report`
  (``profile_table(p)``, ``render_profile(p, "csv")``): this module only holds data.
* Sizes in bytes use ``bits`` for weights and ``activation_bits`` for
  activations, both per row (a quantized model has one width per layer, see
  `edgefit.compress.quantize.precision`); ``bytes_moved`` = weights at the row's
  width + inputs + outputs of the layer, with inputs and outputs being the
  tensors that cross the layer's boundary, each at the widest activation width
  of the rows that read it (a model output also at the default).
* ``bit_ops`` counts the work of binary rows (1-bit weights and 1-bit
  activations, XNOR-Net / BNN): each of their MACs is one XNOR and one popcount
  step, so ``bit_ops = 2 * macs`` of those rows (the same 2 ops per MAC as
  ``flops``, which still counts them; reference/004 "XNOR, bitcount").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class LayerStats:
    """One row: everything that one module's forward ran (functional calls included).

    Attributes:
        name: module path as in ``model.named_modules()`` (``features.3``);
            ``""`` is the root module.
        kind: the module's class name (``Conv2d``).
        ops: the aten ops this row ran, e.g. ``("convolution",)``.
        calls: how many times the module's forward ran.
        input_shapes: shapes of the activation tensors that entered the row.
        output_shape: shape of the row's (first) output tensor.
        params: parameter elements first used by this row (shared tensors once).
        params_without_bias: the same without tensors named ``bias``.
        macs: multiply-accumulates.
        flops: ``2 * macs``.
        other_ops: non-MAC arithmetic (bias adds, elementwise, pooling, norm, softmax).
        activations: output elements of the row's computing ops (see module doc).
        input_elements: elements of activation tensors entering the row.
        output_elements: elements of activation tensors leaving the row.
        peak_activations: largest input + output of one computing op in the row.
        weight_bytes: ``params`` at the row's weight bit width.
        bytes_moved: weight bytes + input and output bytes, each tensor at the
            widest activation width of the rows that read it.
        bits: weight bit width used for this row.
        activation_bits: activation bit width of this row (``None`` in rows
            built by hand: the profile's ``activation_bits``).
        bit_ops: XNOR + popcount operations, ``2 * macs`` when the row's weights
            and activations are both 1 bit, else 0.
        attributes: the op attributes that determine cost (stride, padding,
            groups, kernel...), for latency lookup tables.
    """

    name: str
    kind: str
    ops: tuple[str, ...]
    calls: int
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...] | None
    params: int
    params_without_bias: int
    macs: int
    flops: int
    other_ops: int
    activations: int
    input_elements: int
    output_elements: int
    peak_activations: int
    weight_bytes: float
    bytes_moved: float
    bits: int
    attributes: dict = field(default_factory=dict)
    activation_bits: int | None = None
    bit_ops: int = 0

    @classmethod
    def _fast(cls, fields: dict) -> LayerStats:
        """Build without the frozen-dataclass ``__init__`` (one ``object.__setattr__``
        per field, ~5 us a row): ``fields``, which holds every field, becomes the
        row's ``__dict__``."""
        row = object.__new__(cls)
        object.__setattr__(row, "__dict__", fields)
        return row

    @property
    def intensity(self) -> float:
        """Operational intensity: (FLOPs + other ops) per byte moved."""
        return (self.flops + self.other_ops) / self.bytes_moved if self.bytes_moved else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        d["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        d["ops"] = list(self.ops)
        d["intensity"] = self.intensity
        return d


@dataclass(frozen=True)
class Totals:
    """Whole-model figures. Element counts unless the name says bytes."""

    params: int
    params_without_bias: int
    macs: int
    flops: int
    other_ops: int
    activations: int
    input_activations: int
    peak_activations: int
    peak_activations_layer: str
    peak_live_activations: int
    peak_live_layer: str
    peak_live_bytes: float
    model_size_bytes: float
    bytes_moved: float
    unused_params: int
    bit_ops: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    """Per-layer metrics of one model at one input, plus totals and coverage.

    Attributes:
        model: a label for the model (class name or zoo name).
        input_shapes: shapes of the example inputs.
        bits: default weight bit width.
        activation_bits: default activation bit width (rows may differ: see
            ``LayerStats.activation_bits``; the peak live bytes use this one).
        layers: rows in execution order.
        totals: whole-model figures.
        uncounted: aten op name -> times seen, for ops with no cost formula.
        coverage: share of traced ops (by count) that have a formula.
    """

    model: str
    input_shapes: tuple[tuple[int, ...], ...]
    bits: int
    activation_bits: int
    layers: tuple[LayerStats, ...]
    totals: Totals
    uncounted: dict[str, int]
    coverage: float

    def layer(self, name: str) -> LayerStats:
        """The row of module ``name``; raises ``KeyError`` with close names."""
        for row in self.layers:
            if row.name == name:
                return row
        from edgefit.errors import RegistryError, close_names

        raise RegistryError(f"no layer {name!r} in the profile.{close_names(name, [r.name for r in self.layers])}")

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input_shapes": [list(s) for s in self.input_shapes],
            "bits": self.bits,
            "activation_bits": self.activation_bits,
            "conventions": {
                "flops": "2 * macs; bias adds and other non-MAC work are in other_ops",
                "activations": "output elements of computing layers, total includes the input",
                "peak_activations": "max over layers of input + output elements",
                "peak_live_activations": "max elements alive at once (liveness over the traced graph)",
                "bit_ops": "2 * macs of rows with 1-bit weights and 1-bit activations (XNOR + popcount)",
                "bytes": "weights at each row's bits; each activation tensor at the width of the rows reading it",
            },
            "layers": [row.to_dict() for row in self.layers],
            "totals": self.totals.to_dict(),
            "uncounted": dict(self.uncounted),
            "coverage": self.coverage,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)
