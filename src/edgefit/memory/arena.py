"""One tensor arena for every activation: offsets from lifetimes, as deployment runtimes plan it.

TensorFlow Lite Micro's ``GreedyMemoryPlanner`` places buffers largest first,
each at the lowest offset where it overlaps no already placed buffer whose
lifetime overlaps its own. edgefit runs that greedy placement over several
orders (by size, by size x lifetime, by lifetime, by first use, by last use)
and keeps the smallest arena; when that is still above the lower bound it also tries seeded
random orders (largest first, each size scaled by a random factor), which
reach the bound where the fixed orders miss it (DenseNet-121 in place,
MobileNet v1 and AlexNet with patches). The lower bound of any plan is the
most bytes alive at once.

>>> bufs = [Buffer("a", 4, 0, 1), Buffer("b", 2, 1, 2), Buffer("c", 4, 2, 3)]
>>> arena = plan_arena(bufs)
>>> arena.size_bytes, arena.lower_bound_bytes, arena.offsets
(6, 6, {'a': 0, 'b': 4, 'c': 0})
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edgefit.errors import EdgefitError


class PlanError(EdgefitError):
    """A memory plan is invalid or cannot meet what was asked of it."""


@dataclass(frozen=True)
class Buffer:
    """A block of bytes alive from op ``start`` to op ``end`` (both included).

    Attributes:
        name: unique name.
        size_bytes: bytes.
        start: first op index at which it is alive.
        end: last op index at which it is alive.
        layer: the layer that writes it (for reports).
    """

    name: str
    size_bytes: int
    start: int
    end: int
    layer: str = ""


@dataclass(frozen=True)
class Arena:
    """Offsets for every buffer in one arena.

    Attributes:
        buffers: the planned buffers.
        offsets: buffer name -> byte offset.
        size_bytes: the arena (highest offset + size).
        lower_bound_bytes: most bytes alive at once; no plan can be smaller.
        peak_step: op index where the live bytes peak.
        order: the placement order that gave this plan.
    """

    buffers: tuple[Buffer, ...]
    offsets: dict[str, int] = field(repr=False)
    size_bytes: int
    lower_bound_bytes: int
    peak_step: int
    order: str

    @property
    def overhead(self) -> float:
        """Arena over the lower bound, minus one (0.0 = optimal)."""
        return self.size_bytes / self.lower_bound_bytes - 1 if self.lower_bound_bytes else 0.0


def live_profile(buffers: Sequence[Buffer]) -> np.ndarray:
    """Bytes alive at each op index."""
    if not buffers:
        return np.zeros(1, dtype=np.int64)
    n = max(b.end for b in buffers) + 2
    delta = np.zeros(n, dtype=np.int64)
    for b in buffers:
        delta[b.start] += b.size_bytes
        delta[b.end + 1] -= b.size_bytes
    return np.cumsum(delta)[:-1]


_ORDERS = {
    "size": lambda b: (-b.size_bytes, b.start),
    "size x lifetime": lambda b: (-b.size_bytes * (b.end - b.start + 1), b.start),
    "lifetime": lambda b: (-(b.end - b.start), -b.size_bytes),
    "first use": lambda b: (b.start, -b.size_bytes),
    "last use": lambda b: (b.end, -b.size_bytes),
}


def _greedy(buffers: Sequence[Buffer]) -> tuple[np.ndarray, int]:
    """Place in the given order, each at the lowest offset free for its whole lifetime."""
    n = len(buffers)
    starts = np.array([b.start for b in buffers], dtype=np.int64)
    ends = np.array([b.end for b in buffers], dtype=np.int64)
    sizes = np.array([b.size_bytes for b in buffers], dtype=np.int64)
    offsets = np.zeros(n, dtype=np.int64)
    for i in range(n):
        clash = (starts[:i] <= ends[i]) & (starts[i] <= ends[:i]) & (sizes[:i] > 0)
        idx = np.nonzero(clash)[0]
        offset = 0
        if idx.size and sizes[i] > 0:
            lo = offsets[idx]
            hi = lo + sizes[idx]
            for j in np.argsort(lo, kind="stable"):
                if offset + sizes[i] <= lo[j]:
                    break
                offset = max(offset, int(hi[j]))
        offsets[i] = offset
    top = int((offsets + sizes).max()) if n else 0
    return offsets, top


def _jittered(buffers: Sequence[Buffer], seed: int) -> list[Buffer]:
    """Largest first, each size scaled by a seeded log-normal factor (sigma 0.5)."""
    rng = random.Random(seed)
    return sorted(buffers, key=lambda b: -b.size_bytes * math.exp(rng.gauss(0.0, 0.5)))


def plan_arena(buffers: Sequence[Buffer], orders: Sequence[str] | None = None, *, tries: int = 32) -> Arena:
    """Greedy arena plan over several placement orders; the smallest wins.

    Args:
        buffers: buffers with unique names.
        orders: placement orders to try (default: all of ``size``,
            ``size x lifetime``, ``lifetime``, ``first use``, ``last use``); ``["size"]`` alone
            is TensorFlow Lite Micro's greedy planner.
        tries: seeded random orders tried while the arena is above the bound
            (only when ``orders`` is not given).

    Returns:
        The `Arena`, validated (no two buffers alive at once share a byte).
    """
    names = [b.name for b in buffers]
    if len(set(names)) != len(names):
        raise PlanError("buffer names must be unique")
    live = live_profile(buffers)
    best = None
    for order in orders or list(_ORDERS):
        if order not in _ORDERS:
            raise PlanError(f"unknown placement order {order!r} (known: {', '.join(_ORDERS)})")
        ranked = sorted(buffers, key=_ORDERS[order])
        offsets, top = _greedy(ranked)
        if best is None or top < best[0]:
            best = (top, order, {b.name: int(o) for b, o in zip(ranked, offsets, strict=True)})
    bound = int(live.max()) if len(buffers) else 0
    for seed in range(tries if orders is None else 0):
        if best is None or best[0] <= bound:
            break
        ranked = _jittered(buffers, seed)
        offsets, top = _greedy(ranked)
        if top < best[0]:
            best = (top, f"random #{seed}", {b.name: int(o) for b, o in zip(ranked, offsets, strict=True)})
    top, order, placed = best if best else (0, "size", {})
    offsets = {b.name: placed[b.name] for b in buffers}
    arena = Arena(
        buffers=tuple(buffers), offsets=offsets, size_bytes=top,
        lower_bound_bytes=int(live.max()), peak_step=int(live.argmax()), order=order,
    )
    validate_arena(arena)
    return arena


def overlapping_pairs(arena: Arena) -> list[tuple[str, str]]:
    """Pairs of buffers alive at the same time that share bytes (empty for a valid plan)."""
    bufs = [b for b in arena.buffers if b.size_bytes > 0]
    starts = np.array([b.start for b in bufs], dtype=np.int64)
    ends = np.array([b.end for b in bufs], dtype=np.int64)
    lo = np.array([arena.offsets[b.name] for b in bufs], dtype=np.int64)
    hi = lo + np.array([b.size_bytes for b in bufs], dtype=np.int64)
    bad = []
    for i in range(len(bufs)):
        j = np.nonzero((starts[i + 1:] <= ends[i]) & (starts[i] <= ends[i + 1:])
                       & (lo[i + 1:] < hi[i]) & (lo[i] < hi[i + 1:]))[0]
        bad += [(bufs[i].name, bufs[i + 1 + k].name) for k in j]
    return bad


def validate_arena(arena: Arena) -> None:
    """Raise `PlanError` if two live buffers overlap or a buffer leaves the arena."""
    bad = overlapping_pairs(arena)
    if bad:
        a, b = bad[0]
        raise PlanError(f"invalid arena plan: {a} and {b} are alive at once and overlap ({len(bad)} pairs)")
    for b in arena.buffers:
        if arena.offsets[b.name] < 0 or arena.offsets[b.name] + b.size_bytes > arena.size_bytes:
            raise PlanError(f"invalid arena plan: {b.name} lies outside the {arena.size_bytes}-byte arena")
