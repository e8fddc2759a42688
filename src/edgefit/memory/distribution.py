"""The picture of reference/000: activation and weight memory per layer, and its imbalance.

Per layer: the largest input + output of one of its ops (the lectures' count),
the bytes alive while it runs (liveness, residual branches included) and its
weights. Layers are grouped into blocks (the children of the model's main
containers, e.g. ``features.3``) to state how unevenly the memory is spread:
in MobileNetV2 a few early blocks need several times what the rest needs.
"""

from __future__ import annotations

from edgefit.memory.graph import live_bytes_per_op
from edgefit.metrics.profile import Profile
from edgefit.trace.tracer import Trace


def _blocks(names: list[str]) -> dict[str, str]:
    seconds: dict[str, set[str]] = {}
    for n in names:
        parts = n.split(".")
        if len(parts) > 1:
            seconds.setdefault(parts[0], set()).add(parts[1])
    out = {}
    for n in names:
        parts = n.split(".")
        if not n:
            out[n] = "(root)"
        elif len(parts) > 1 and len(seconds.get(parts[0], ())) > 1:
            out[n] = f"{parts[0]}.{parts[1]}"
        else:
            out[n] = parts[0]
    return out


def layer_memory(tr: Trace, profile: Profile, state) -> list:
    """`LayerMemory` rows for the layers that compute or hold weights, in execution order."""
    from edgefit.memory.plan import LayerMemory

    sizes = {k: t.nbytes(state.bits) for k, t in state.tensors.items()}
    live = live_bytes_per_op(state.tensors.values(), sizes, len(tr.ops) + 1)
    by_layer: dict[str, int] = {}
    for op in tr.ops:
        by_layer[op.module] = max(by_layer.get(op.module, 0), live[op.index])
    rows = [r for r in profile.layers if r.macs or r.params or r.peak_activations]
    blocks = _blocks([r.name for r in rows])
    bits = profile.activation_bits
    return [
        LayerMemory(r.name, r.kind, r.peak_activations * bits / 8, by_layer.get(r.name, 0), r.weight_bytes, blocks[r.name])
        for r in rows
    ]


def block_peaks(layers) -> list[tuple[str, int, float]]:
    """(block, most live bytes in it, its weight bytes) in execution order."""
    out: dict[str, list] = {}
    for r in layers:
        b = out.setdefault(r.block, [0, 0.0])
        b[0] = max(b[0], r.live_bytes)
        b[1] += r.weight_bytes
    return [(k, v[0], v[1]) for k, v in out.items()]


def imbalance_statement(layers, bits: int = 8) -> str:
    """How unevenly the activation memory is spread over blocks, in one sentence.

    ``K`` is the smallest number of leading blocks that holds every block
    needing more than half of the peak.
    """
    from edgefit.units import format_bytes

    blocks = block_peaks(layers)
    if not blocks:
        return "no layers"
    peak = max(b[1] for b in blocks)
    total_w = sum(b[2] for b in blocks) or 1.0
    k = 1 + max(i for i, b in enumerate(blocks) if b[1] > peak / 2)
    n = len(blocks)
    at = max(blocks, key=lambda b: b[1])[0]
    if k == n:
        return (f"memory is not front-loaded: block {blocks[-1][0]} ({n} of {n}) still needs "
                f"{blocks[-1][1] / peak:.0%} of the {format_bytes(peak)} peak")
    rest = max(b[1] for b in blocks[k:])
    w_share = sum(b[2] for b in blocks[:k]) / total_w
    return (
        f"the first {k} of {n} blocks (to {blocks[k - 1][0]}) hold {w_share:.1%} of the weights but need "
        f"more than half of the {format_bytes(peak)} peak (at {at}); the other {n - k} need at most "
        f"{format_bytes(rest)} ({rest / peak:.0%} of it)"
    )
