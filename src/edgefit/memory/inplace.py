"""In-place execution: ops whose output may overwrite an input that dies there.

Two kinds, as TinyEngine (Lin et al., MCUNet, NeurIPS 2020) runs them on
microcontrollers:

* elementwise ops (batch norm at inference, activations, residual adds,
  clones): element ``i`` of the output depends only on element ``i`` of the
  inputs, so it can be written over an input of the same size;
* depthwise convolutions (one filter per channel, ``groups == in == out``
  channels): each output channel depends on one input channel, so it is
  computed into a one-channel scratch buffer and copied over its own input
  channel. The cost is that scratch buffer, alive during the op.

An input may be overwritten only when this op is its last reader (its whole
buffer, views and earlier in-place writes included, dies here) and it is not
a model output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgefit.trace.tracer import OpRecord, Trace

#: Ops whose output element i depends only on input element(s) i.
ELEMENTWISE_OPS = frozenset({
    "native_batch_norm", "_native_batch_norm_legit_no_training", "add", "sub", "mul", "div",
    "relu", "relu6", "hardtanh", "hardswish", "hardsigmoid", "sigmoid", "silu", "gelu", "tanh",
    "clamp", "clamp_min", "clamp_max", "leaky_relu", "elu", "mish", "neg", "clone", "_to_copy",
    "add_", "mul_", "relu_", "hardtanh_", "hardswish_", "silu_", "clamp_", "leaky_relu_",
})


@dataclass(frozen=True)
class InPlace:
    """One op planned in place.

    Attributes:
        op: op index.
        layer: the module that runs it.
        kind: ``"elementwise"`` or ``"depthwise"``.
        source: storage key of the input overwritten.
        target: storage key of the output that reuses it.
        scratch_numel: elements of the scratch buffer the op needs meanwhile.
        saved_bytes: bytes no longer allocated (the output's, less the scratch), set by the planner.
    """

    op: int
    layer: str
    kind: str
    source: int
    target: int
    scratch_numel: int = 0
    saved_bytes: int = 0


def is_depthwise(op: OpRecord) -> bool:
    """A 2-D depthwise convolution with one filter per channel (``groups == C_in == C_out``)."""
    if op.name != "convolution" or len(op.args) < 9 or op.args[6]:
        return False
    x, w, groups = op.args[0], op.args[1], op.args[8]
    return len(x.shape) == 4 and groups == x.shape[1] == w.shape[0] and groups > 1


def inplace_kind(op: OpRecord) -> str | None:
    """``"elementwise"``, ``"depthwise"`` or ``None`` when the op cannot run in place."""
    if op.view or not op.outputs or op.outputs[0].role != "activation":
        return None
    if op.name in ELEMENTWISE_OPS:
        return "elementwise"
    if is_depthwise(op):
        return "depthwise"
    return None


def find_inplace(
    tr: Trace, ends: dict[int, int], sizes: dict[int, int], outputs: set[int],
    kinds: frozenset = frozenset({"elementwise", "depthwise"}),
) -> list[InPlace]:
    """The ops that can overwrite an input, in execution order.

    Args:
        tr: the trace.
        ends: storage key -> last op index at which it is alive.
        sizes: storage key -> elements (a merged output may not outgrow its input).
        outputs: storage keys of model outputs (never overwritten).
        kinds: the kinds of in-place ops allowed.
    """
    found: list[InPlace] = []
    root: dict[int, int] = {}  # storage -> the storage whose memory it now uses

    def find(k: int) -> int:
        while k in root:
            k = root[k]
        return k

    group_end = dict(ends)
    for op in tr.ops:
        kind = inplace_kind(op)
        if kind not in kinds or op.inplace:
            continue
        target = tr.values[op.outputs[0].value].storage
        if tr.values[op.outputs[0].value].producer != op.index:
            continue
        for spec in op.inputs:
            if spec.role != "activation":
                continue
            source = tr.values[spec.value].storage
            src = find(source)
            if source == target or src in outputs or source in outputs:
                continue
            if group_end.get(src, -1) != op.index or sizes[target] > sizes[source]:
                continue
            if kind == "elementwise" and math.prod(spec.shape) != math.prod(op.outputs[0].shape):
                continue
            scratch = 0
            if kind == "depthwise":
                out = op.outputs[0].shape
                scratch = out[0] * out[2] * out[3]
            root[target] = src
            group_end[src] = max(group_end[src], ends[target])
            found.append(InPlace(op.index, op.module, kind, source, target, scratch))
            break
    return found
