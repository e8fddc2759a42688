"""Activation tensors with their lifetimes, from a `Trace`: what a memory planner plans.

One `Tensor` per storage the traced forward wrote (in-place writes share their
storage, views read it), alive from the op that first writes it to the last op
that reads it, both included; model inputs are alive from op 0, model outputs
to the end. This is the liveness behind ``Profile.totals.peak_live_activations``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgefit.errors import ConfigError
from edgefit.trace.tracer import Trace


@dataclass(frozen=True)
class Tensor:
    """One activation buffer to place in the arena.

    Attributes:
        key: a unique id (the traced storage).
        numel: elements of the storage.
        start: first op index at which it is alive.
        end: last op index at which it is alive (inclusive).
        layer: the module whose op wrote it (``"(input)"`` for model inputs).
        shape: the shape of its first write.
        producer: op index that wrote it, -1 for model inputs.
        is_output: a model output (alive to the end).
    """

    key: int
    numel: int
    start: int
    end: int
    layer: str
    shape: tuple[int, ...]
    producer: int = -1
    is_output: bool = False

    def nbytes(self, bits: int) -> int:
        """Size at ``bits`` per element, rounded up to whole bytes."""
        return math.ceil(self.numel * bits / 8)


def tensors_from_trace(tr: Trace) -> list[Tensor]:
    """Every activation storage of ``tr`` with its lifetime, in order of first write.

    >>> import torch.nn as nn
    >>> from edgefit.trace import trace
    >>> ts = tensors_from_trace(trace(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), input_shape=(1, 4)))
    >>> [(t.layer, t.numel, t.start, t.end) for t in ts]
    [('(input)', 4, 0, 0), ('0', 8, 0, 1), ('1', 8, 1, 2)]
    """
    shapes: dict[int, tuple[int, ...]] = {s.value: tuple(s.shape) for s in tr.inputs if s.role == "activation"}
    for op in tr.ops:
        for s in op.outputs:
            if s.role == "activation" and s.value not in shapes:
                shapes[s.value] = tuple(s.shape)
    found: dict[int, dict] = {}
    for vid, v in tr.values.items():
        start = max(v.producer, 0)
        t = found.get(v.storage)
        if t is None:
            layer = tr.ops[v.producer].module if v.producer >= 0 else "(input)"
            found[v.storage] = {
                "key": v.storage, "numel": v.numel, "start": start, "end": v.last_use, "layer": layer,
                "shape": shapes.get(vid, (v.numel,)), "producer": v.producer, "is_output": v.is_output,
            }
        else:
            t["numel"] = max(t["numel"], v.numel)
            t["start"] = min(t["start"], start)
            t["end"] = max(t["end"], v.last_use)
            t["is_output"] = t["is_output"] or v.is_output
    last = len(tr.ops)
    out = [Tensor(**{**t, "end": min(max(t["end"], t["start"]), last)}) for t in found.values()]
    return sorted(out, key=lambda t: (t.start, t.producer))


def live_bytes_per_op(tensors, sizes: dict[int, int], n_steps: int) -> list[int]:
    """Bytes alive at each op index ``0 .. n_steps - 1`` (``sizes``: key -> bytes)."""
    delta = [0] * (n_steps + 1)
    for t in tensors:
        a, b = t.start, min(t.end, n_steps - 1)
        delta[a] += sizes[t.key]
        delta[b + 1] -= sizes[t.key]
    out, cur = [], 0
    for i in range(n_steps):
        cur += delta[i]
        out.append(cur)
    return out


def check_bits(bits, what: str = "activation bits") -> int:
    """Validate a bit width (1..64)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 64:
        raise ConfigError(f"{what} must be an integer from 1 to 64, got {bits!r}")
    return bits


__all__ = ["Tensor", "check_bits", "live_bytes_per_op", "tensors_from_trace"]
