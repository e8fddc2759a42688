"""Pareto dominance, the non-dominated front and the 2-D hypervolume."""

from __future__ import annotations

from collections.abc import Sequence

from edgefit.errors import ConfigError


def _signed(point: Sequence[float], directions: Sequence[str]) -> tuple[float, ...]:
    """Each value turned into a cost (smaller is better)."""
    return tuple(-v if d == "maximize" else v for v, d in zip(point, directions, strict=True))


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True when ``a`` is no worse than ``b`` everywhere and better somewhere.

    >>> dominates((0.9, 1.0), (0.8, 2.0), ("maximize", "minimize"))
    True
    """
    sa, sb = _signed(a, directions), _signed(b, directions)
    return all(x <= y for x, y in zip(sa, sb, strict=True)) and any(x < y for x, y in zip(sa, sb, strict=False))


def domination_counts(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """For each point, how many points dominate it (0: on the front)."""
    return [sum(dominates(q, p, directions) for q in points) for p in points]


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order (duplicates all kept).

    >>> pareto_front([(0.9, 3.0), (0.8, 1.0), (0.7, 2.0), (0.9, 3.0)], ("maximize", "minimize"))
    [0, 1, 3]
    """
    return [i for i, n in enumerate(domination_counts(points, directions)) if n == 0]


def hypervolume_2d(
    points: Sequence[Sequence[float]], directions: Sequence[str], reference: Sequence[float]
) -> float:
    """The area dominated by ``points`` and bounded by ``reference`` (two objectives).

    Points not strictly better than the reference in both objectives add nothing.

    >>> hypervolume_2d([(0.9, 2.0), (0.5, 1.0)], ("maximize", "minimize"), (0.0, 4.0))
    2.3
    """
    if len(directions) != 2:
        raise ConfigError(f"hypervolume_2d needs two objectives, got {len(directions)}")
    ref = _signed(reference, directions)
    costs = sorted(
        {c for c in (_signed(p, directions) for p in points) if c[0] < ref[0] and c[1] < ref[1]}
    )
    area, best_y = 0.0, ref[1]
    for x, y in costs:  # ascending first cost; each point adds the strip below the best y so far
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return round(area, 12)
