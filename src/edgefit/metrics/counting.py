"""From a `Trace` to a `Profile`: apply the formulas, group per layer, add up.

A row is everything one module's own forward ran: the ops of a leaf module,
or the functional calls a parent makes between its children (a residual add,
an attention matmul). Rows keep the order of their first op.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from edgefit.errors import ConfigError
from edgefit.metrics.formulas import _FORMULAS, Cost
from edgefit.metrics.profile import LayerStats, Profile, Totals
from edgefit.trace.tracer import Trace, gc_paused, trace


class UncountedOpsWarning(UserWarning):
    """Some traced ops have no cost formula; see ``Profile.uncounted``."""


# Positions of the attributes that set an op's cost, kept per row for lookup tables.
_CONV_ARG_POS = {"stride": 3, "padding": 4, "dilation": 5, "transposed": 6, "output_padding": 7, "groups": 8}
_POOL_ARG_POS = {"kernel_size": 1, "stride": 2, "padding": 3, "dilation": 4, "ceil_mode": 5}
_AVG_ARG_POS = {"kernel_size": 1, "stride": 2, "padding": 3, "ceil_mode": 4}
_PLAIN_CONV_ARGS = (list, list, list, bool, list, int)  # stride, padding, dilation, transposed, output_padding, groups


def _attributes(op) -> dict:
    name = op.name
    args = op.args
    if name == "convolution":
        if len(args) == 9 and _PLAIN_CONV_ARGS == tuple(map(type, args[3:9])):  # as every call passes them
            return {
                "stride": list(map(int, args[3])), "padding": list(map(int, args[4])),
                "dilation": list(map(int, args[5])), "transposed": args[6],
                "output_padding": list(map(int, args[7])), "groups": args[8], "kernel_size": list(args[1].shape[2:]),
            }
        d = {k: _plain(args[i]) for k, i in _CONV_ARG_POS.items() if i < len(args)}
        d["kernel_size"] = list(args[1].shape[2:])
        return d
    if name == "max_pool2d_with_indices":
        return {k: _plain(args[i]) for k, i in _POOL_ARG_POS.items() if i < len(args)}
    if name == "avg_pool2d":
        return {k: _plain(args[i]) for k, i in _AVG_ARG_POS.items() if i < len(args)}
    return {}


def _plain(v):
    if isinstance(v, (list, tuple)):
        return list(map(int, v))
    if isinstance(v, bool):
        return v
    return int(v) if isinstance(v, int) else v


def _is_bias(name: str) -> bool:
    """Whether a parameter is a bias: its last name component ends with ``bias``
    (the same as the whole name ending with it: no dot in those four letters)."""
    return name.endswith("bias")


def _bits_resolver(bits: int | Mapping[str, int]):
    if isinstance(bits, bool) or not isinstance(bits, (int, Mapping)):
        raise ConfigError(f"bits must be an integer or a mapping of layer patterns to integers, got {bits!r}")
    if isinstance(bits, int):
        _check_bits(bits)
        return lambda name: bits
    patterns = list(bits.items())
    for pattern, b in patterns:
        _check_bits(b, pattern)
    default = bits.get("default", 32)

    def resolve(name: str) -> int:
        for pattern, b in patterns:
            if pattern != "default" and fnmatch.fnmatchcase(name, pattern):
                return b
        return default

    return resolve


def _check_bits(b, where: str = "") -> None:
    if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 64:
        at = f" for {where!r}" if where else ""
        raise ConfigError(f"bit width{at} must be an integer from 1 to 64, got {b!r}")


_NO_COST = Cost()


class _Row:
    __slots__ = (
        "name", "kind", "ops", "first", "macs", "other", "activations", "params", "params_nb",
        "inputs", "produced", "peak", "out_shape", "attrs", "computes",
    )

    def __init__(self, name: str, kind: str, first: int):
        self.name, self.kind, self.first = name, kind, first
        self.ops: list[str] = []
        self.macs = self.other = self.activations = self.params = self.params_nb = self.peak = 0
        self.inputs: dict[int, tuple[int, tuple[int, ...]]] = {}  # value -> (elements, shape)
        self.produced: dict[int, int] = {}  # value -> elements
        self.out_shape: tuple[int, ...] | None = None
        self.attrs: dict = {}
        self.computes = False


class _Tally:
    """The per-row sums of one pass over a trace's ops."""

    def __init__(self, tr: Trace):
        self.tr = tr
        self.rows: dict[str, _Row] = {}
        self.producer_row: dict[int, str] = {}  # value -> row that wrote it
        self.consumers: dict[int, set[str]] = {}
        self.param_row: dict[str, str] = {}  # parameter -> first row that used it
        self.uncounted: dict[str, int] = {}
        self.n_counted = 0

    def add(self, op) -> None:
        """Count one op into the row of the module that ran it."""
        module = op.module
        row = self.rows.get(module)
        if row is None:
            info = self.tr.modules.get(module)
            row = self.rows[module] = _Row(module, info.kind if info else "?", op.index)
        name = op.name
        row.ops.append(name)
        formula = _FORMULAS.get(name)
        if formula is None:
            self.uncounted[name] = self.uncounted.get(name, 0) + 1
            cost = _NO_COST
        else:
            self.n_counted += 1
            cost = formula(op)
            row.macs += cost.macs
            row.other += cost.other_ops
        in_elems = self._inputs(op, row)
        outputs = op.outputs
        if cost.computes:
            row.computes = True
            out_elems = outputs[0].numel if outputs else 0
            row.activations += out_elems
            if in_elems + out_elems > row.peak:
                row.peak = in_elems + out_elems
            attrs = _attributes(op)
            if attrs:
                row.attrs = attrs
        if not outputs:
            return
        if not op.view:
            producer_row = self.producer_row
            for o in outputs:
                value = o.value
                if o.role == "activation" and value not in producer_row:
                    producer_row[value] = module
                    row.produced[value] = math.prod(o.shape)
        if name != "empty" and name != "empty_like":
            row.out_shape = outputs[0].shape

    def _inputs(self, op, row: _Row) -> int:
        """Record the op's inputs (values entering the row, first use of parameters);
        returns the elements of its distinct activation inputs."""
        module = op.module
        producer_row, consumers, param_row = self.producer_row, self.consumers, self.param_row
        in_elems = 0
        seen = None  # values counted so far, once a second activation comes
        first = None
        row_inputs = row.inputs
        for spec in op.inputs:
            role = spec.role
            if role == "activation":
                value = spec.value
                shape = spec.shape
                numel = math.prod(shape)
                if first is None:
                    first = value
                    in_elems = numel
                elif value != first:
                    if seen is None:
                        seen = {first}
                    if value not in seen:
                        seen.add(value)
                        in_elems += numel
                if producer_row.get(value) != module:
                    prev = row_inputs.get(value)
                    if prev is None or prev[0] < numel:
                        row_inputs[value] = (numel, shape)
                users = consumers.get(value)
                if users is None:
                    consumers[value] = {module}
                else:
                    users.add(module)
            elif role == "param" and spec.source not in param_row:
                param_row[spec.source] = module
        return in_elems

    def finish_pool_rows(self) -> None:
        """Rows of pooling modules that ran as plain reductions (AdaptiveAvgPool2d(1) -> mean)."""
        for row in self.rows.values():
            if not row.computes and "Pool" in row.kind:
                row.computes = True
                row.activations = sum(row.produced.values())
                row.peak = sum(e for e, _ in row.inputs.values()) + row.activations


def _layer_stats(tally: _Tally, bits_of, act_of, act_default: int, uniform: bool) -> list[LayerStats]:
    """One `LayerStats` per row, in order of first op; parameters go to the first row using them.

    When rows differ in activation width (not ``uniform``), each tensor is
    counted at the width of the rows that read it (see `_tensor_width`).
    """
    tr = tally.tr
    out_values = {s.value for s in tr.outputs if s.role == "activation"}
    row_params = _row_params(tally)
    width = None if uniform else _tensor_width(tally, act_of, out_values, act_default)
    consumers, modules = tally.consumers, tr.modules
    layers = []
    # one tuple per distinct shape (and list of input shapes): a layer's output is the next
    # one's input, and fewer objects are fewer for the garbage collector to visit
    shapes: dict = {}
    for row in sorted(tally.rows.values(), key=_first_op):
        name = row.name
        p, p_nb = row_params.get(name, (0, 0))
        b = bits_of(name)
        a = act_of(name)
        weight_bytes = p * b / 8
        inputs = row.inputs
        in_elems = sum([e for e, _ in inputs.values()])
        # a value leaves the row if it is a model output or another row reads it
        outs = [
            (v, e) for v, e in row.produced.items()
            if v in out_values or _read_elsewhere(consumers.get(v), name)
        ]
        out_elems = sum([e for _, e in outs])
        if width is None:
            act_bytes = (in_elems + out_elems) * a / 8
        else:
            act_bytes = (sum(e * width(v) for v, (e, _) in inputs.items()) + sum(e * width(v) for v, e in outs)) / 8
        info = modules.get(name)
        ops = row.ops
        macs = row.macs
        in_shapes = tuple([_shared(shapes, shape) for _, shape in inputs.values()])
        out_shape = None if row.out_shape is None else _shared(shapes, row.out_shape)
        layers.append(
            LayerStats._fast({
                "name": name,
                "kind": row.kind,
                "ops": _single_op(ops[0]) if len(ops) == 1 else tuple(dict.fromkeys(ops)),
                "calls": info.calls if info is not None else 1,
                "input_shapes": _shared(shapes, in_shapes),
                "output_shape": out_shape,
                "params": p,
                "params_without_bias": p_nb,
                "macs": macs,
                "flops": 2 * macs,
                "other_ops": row.other,
                "activations": row.activations,
                "input_elements": in_elems,
                "output_elements": out_elems,
                "peak_activations": row.peak,
                "weight_bytes": weight_bytes,
                "bytes_moved": weight_bytes + act_bytes,
                "bits": b,
                "attributes": row.attrs,
                "activation_bits": a,
                "bit_ops": 2 * macs if b == 1 and a == 1 else 0,
            })
        )
    return layers


def _shared(shapes: dict, shape: tuple) -> tuple:
    """The plain tuple equal to ``shape`` (a ``torch.Size`` or a tuple) kept in ``shapes``."""
    t = shapes.get(shape)  # a torch.Size hashes and compares as the tuple of its sizes
    if t is None:
        t = shape if type(shape) is tuple else tuple(shape)
        shapes[t] = t
    return t


@functools.lru_cache(maxsize=1024)
def _single_op(name: str) -> tuple[str]:
    """``(name,)``, one tuple per op name for all the rows that ran only that op."""
    return (name,)


def _first_op(row: _Row) -> int:
    return row.first


def _read_elsewhere(users: set[str] | None, row: str) -> bool:
    """Whether a row other than ``row`` is among a value's readers."""
    return bool(users) and (len(users) > 1 or row not in users)


def _row_params(tally: _Tally) -> dict[str, tuple[int, int]]:
    """Row -> (parameter elements, the same without biases) of the parameters it uses first."""
    params = tally.tr.params
    sums: dict[str, tuple[int, int]] = {}
    for pname, rname in tally.param_row.items():
        n = params[pname][0]
        p, p_nb = sums.get(rname, (0, 0))
        sums[rname] = (p + n, p_nb if _is_bias(pname) else p_nb + n)
    return sums


def _tensor_width(tally: _Tally, act_of, out_values: set[int], default: int):
    """Per-layer activation widths: a tensor is stored at the widest width of the rows
    that read it (a quantized layer reads its input at its own width; its producer
    writes it so), a model output at the default width."""
    def width(v: int) -> int:
        producer = tally.producer_row.get(v)
        widths = [act_of(c) for c in tally.consumers.get(v, ()) if c != producer]
        if v in out_values or not widths:
            widths.append(default)
        return max(widths)

    return width


def _totals(tally: _Tally, layers: list[LayerStats], bits_of, act_bits: int) -> Totals:
    """Whole-model figures; parameters no op used still count in the model size."""
    tr = tally.tr
    params = tr.params
    unused = [n for n in params if n not in tally.param_row]
    total_bits = macs = other_ops = activations = bit_ops = 0
    peak_row = None
    for r in layers:  # integer sums, in one pass
        total_bits += r.params * r.bits
        macs += r.macs
        other_ops += r.other_ops
        activations += r.activations
        bit_ops += r.bit_ops
        if peak_row is None or r.peak_activations > peak_row.peak_activations:
            peak_row = r
    total_bits += sum(params[n][0] * bits_of(tr.param_owner.get(n, "")) for n in unused)
    input_elems = sum(s.numel for s in tr.inputs)
    live, live_at = _peak_live(tr)
    return Totals(
        params=sum([n for n, _ in params.values()]),
        params_without_bias=sum([n for k, (n, _) in params.items() if not _is_bias(k)]),
        macs=macs,
        flops=2 * macs,
        other_ops=other_ops,
        activations=input_elems + activations,
        input_activations=input_elems,
        peak_activations=peak_row.peak_activations if peak_row else 0,
        peak_activations_layer=peak_row.name if peak_row else "",
        peak_live_activations=live,
        peak_live_layer=tr.ops[live_at].module if 0 <= live_at < len(tr.ops) else "",
        peak_live_bytes=live * act_bits / 8,
        model_size_bytes=total_bits / 8,
        bytes_moved=sum([r.bytes_moved for r in layers]),
        unused_params=sum(params[n][0] for n in unused),
        bit_ops=bit_ops,
    )


def _warn_uncounted(uncounted: dict[str, int], n_ops: int) -> None:
    if uncounted:
        listed = ", ".join(f"{k} x{v}" for k, v in sorted(uncounted.items()))
        warnings.warn(
            f"edgefit: no cost formula for {sum(uncounted.values())} of {n_ops} ops ({listed}); "
            "they are listed in Profile.uncounted and not counted",
            UncountedOpsWarning,
            stacklevel=4,
        )


def build_profile(
    tr: Trace,
    *,
    bits: int | Mapping[str, int] = 32,
    activation_bits: int | Mapping[str, int] | None = None,
    model_label: str | None = None,
) -> Profile:
    """Count a `Trace` into a `Profile` (see `edgefit.metrics.profile` for conventions)."""
    bits_of = _bits_resolver(bits)
    default_bits = bits if isinstance(bits, int) else int(bits.get("default", 32))
    if activation_bits is None:
        activation_bits = default_bits
    if isinstance(activation_bits, Mapping) and "default" not in activation_bits:
        activation_bits = {**activation_bits, "default": default_bits}
    act_of = _bits_resolver(activation_bits)
    act_bits = activation_bits if isinstance(activation_bits, int) else int(activation_bits["default"])
    _check_bits(act_bits, "activations")
    tally = _Tally(tr)
    for op in tr.ops:
        tally.add(op)
    tally.finish_pool_rows()
    uniform = isinstance(activation_bits, int) or len(set(activation_bits.values())) == 1
    layers = _layer_stats(tally, bits_of, act_of, act_bits, uniform)
    n_ops = len(tr.ops)
    _warn_uncounted(tally.uncounted, n_ops)
    return Profile(
        model=model_label or tr.model_name,
        input_shapes=tuple(s.shape for s in tr.inputs),
        bits=default_bits,
        activation_bits=act_bits,
        layers=tuple(layers),
        totals=_totals(tally, layers, bits_of, act_bits),
        uncounted=dict(sorted(tally.uncounted.items())),
        coverage=tally.n_counted / n_ops if n_ops else 1.0,
    )


def _peak_live(tr: Trace) -> tuple[int, int]:
    """Most activation elements alive at once, the op index where it happens.

    A storage is alive from the op that first writes it to the last op that
    reads it (model outputs: to the end; inputs: from the start).
    """
    span: dict[int, list[int]] = {}  # storage -> [first write, last read, largest value]
    for v in tr.values.values():
        key = v.storage
        start = v.producer if v.producer > 0 else 0
        s = span.get(key)
        if s is None:
            span[key] = [start, v.last_use, v.numel]
        else:
            if start < s[0]:
                s[0] = start
            if v.last_use > s[1]:
                s[1] = v.last_use
            if v.numel > s[2]:
                s[2] = v.numel
    n = len(tr.ops) + 1
    delta = [0] * (n + 1)
    for a, b, size in span.values():
        delta[a] += size
        delta[(b if b < n - 1 else n - 1) + 1] -= size
    alive = list(itertools.accumulate(delta[:n]))  # elements alive at each op
    best = max(alive, default=0)
    if best <= 0:
        best = best_at = 0
    else:
        best_at = alive.index(best)  # the first op where it happens
    return best, min(best_at, len(tr.ops) - 1)


def profile(
    model: nn.Module,
    example_inputs: Sequence | torch.Tensor | None = None,
    *,
    input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None,
    input_dtype: torch.dtype | str = torch.float32,
    bits: int | Mapping[str, int] = 32,
    activation_bits: int | Mapping[str, int] | None = None,
    mode: str | None = "eval",
    name: str | None = None,
) -> Profile:
    """Exact efficiency metrics of ``model`` without running it on data.

    Traces one forward pass on the meta device (weights are never read or
    copied; a model built on the meta device works too) and counts it.

    Args:
        model: any ``nn.Module``. It is left unchanged.
        example_inputs: forward arguments; only shapes and dtypes are used.
        input_shape: instead of ``example_inputs``: one shape or a list of shapes.
        input_dtype: dtype of inputs made from ``input_shape`` (``torch.long``
            for token ids).
        bits: weight bit width, or a mapping of layer-name patterns
            (``fnmatch``, e.g. ``"features.*"``) to bit widths with an optional
            ``"default"`` (32 if absent).
        activation_bits: activation bit width, or a mapping of layer-name
            patterns to widths like ``bits`` (its ``"default"``: the weight
            default). Each activation tensor is counted at the widest width
            of the rows that read it (a model output also at the default).
            A quantized model's real widths:
            `edgefit.compress.quantize.precision.model_widths`.
        mode: ``"eval"`` (default), ``"train"``, or ``None`` for the model's own flags.
        name: a label for the model in reports.

    Returns:
        A `Profile`.

    >>> import torch.nn as nn
    >>> p = profile(nn.Linear(4, 3), input_shape=(2, 4))
    >>> p.totals.macs, p.totals.flops, p.totals.params
    (24, 48, 15)
    """
    with gc_paused():
        tr = trace(model, example_inputs, input_shape=input_shape, input_dtype=input_dtype, mode=mode)
        result = build_profile(tr, bits=bits, activation_bits=activation_bits, model_label=name)
        # Freed by reference counting while the collector is paused, the trace's
        # thousands of objects never reach (and never trigger) a collection.
        del tr
    return result
