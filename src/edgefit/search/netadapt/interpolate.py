"""Interpolating the host latency lookup table for channel counts not yet measured (an option).

NetAdapt's proposals change one block's width, so every layer they touch differs
from a measured one in a single channel count (a conv's output or input channels,
a depthwise conv's channels and groups, a BatchNorm's features). `InterpolatingTable`
answers such a layer from the two nearest measured entries of the same layer that
differ from it in that one count, one below and one above, by linear interpolation:

    t(c) = t(c_lo) + (t(c_hi) - t(c_lo)) * (c - c_lo) / (c_hi - c_lo)

Anything else (no bracketing pair, two counts changed, a new kind of layer) is
measured and stored as before; interpolated values are never stored, so the table
keeps only measurements. Latency is not linear in channels everywhere (vector
widths, cache sizes): the option trades exactness for fewer measurements.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

_INT = re.compile(r"(?<![\w.])\d+(?![\w.])")


def split_key(key: str) -> tuple[str, tuple[int, ...]] | None:
    """A table key as (template with every integer replaced by ``#``, the integers in order).

    The integers are the shapes, attributes and the numbers of the module's
    ``extra_repr`` (channels, kernel, stride, groups...); the thread count is part
    of the template, so it never varies.

    >>> split_key('{"input_shapes": [[1, 16, 8, 8]], "module": "16, 32, kernel_size=(1, 1)", "threads": 1}')
    ('{"input_shapes": [[#, #, #, #]], "module": "#, #, kernel_size=(#, #)", "threads": 1}', (1, 16, 8, 8, 16, 32, 1, 1))
    """
    try:
        parsed = json.loads(key)
    except (json.JSONDecodeError, TypeError):
        return None
    if not isinstance(parsed, dict):
        return None
    numbers: list[int] = []

    def walk(value, name=""):
        if name in ("threads", "method", "dtype", "kind", "ops"):
            return value
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            numbers.append(value)
            return "#"
        if isinstance(value, str):
            def repl(m):
                numbers.append(int(m.group(0)))
                return "#"
            return _INT.sub(repl, value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in sorted(value.items())}
        return value

    template = walk(parsed)
    text = json.dumps(template, sort_keys=True, default=str).replace('"#"', "#")
    return text, tuple(numbers)


def one_count_apart(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[frozenset[int], int, int] | None:
    """Where ``a`` and ``b`` differ, if they differ in one channel count only: (positions, a's count, b's).

    >>> one_count_apart((1, 16, 8, 8, 16, 32), (1, 24, 8, 8, 24, 32))
    (frozenset({1, 4}), 16, 24)
    >>> one_count_apart((1, 16, 8, 8, 16, 32), (1, 24, 8, 8, 24, 48)) is None   # two counts changed
    True
    """
    if len(a) != len(b):
        return None
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if not diff or len({a[i] for i in diff}) != 1 or len({b[i] for i in diff}) != 1:
        return None
    return frozenset(diff), a[diff[0]], b[diff[0]]


class InterpolatingTable:
    """A `edgefit.measure.LatencyTable` that interpolates unmeasured channel counts (see the module).

    Everything else is the wrapped table's (``predict_latency(..., table=InterpolatingTable(t))``).
    ``interpolated`` counts the layers answered without measuring.
    """

    def __init__(self, table) -> None:
        self.table = table
        self.interpolated = 0
        self._index: dict[str, list[tuple[tuple[int, ...], float]]] | None = None

    def __getattr__(self, name):
        return getattr(self.table, name)

    def _entries(self) -> dict[str, list[tuple[tuple[int, ...], float]]]:
        if self._index is None:
            from edgefit._io import sqlite_connection

            self._index = {}
            with sqlite_connection(self.table.path, "latency table") as db:
                for key, seconds in db.execute("SELECT key, seconds FROM latency"):
                    self._add(key, float(seconds))
        return self._index

    def _add(self, key: str, seconds: float) -> None:
        split = split_key(key)
        if split is not None:
            self._index.setdefault(split[0], []).append((split[1], seconds))

    def estimate(self, key: str) -> float | None:
        """The interpolated seconds of ``key`` from two bracketing measured entries, or None."""
        split = split_key(key)
        if split is None:
            return None
        template, numbers = split
        below: dict[frozenset[int], tuple[int, float]] = {}
        above: dict[frozenset[int], tuple[int, float]] = {}
        for other, seconds in self._entries().get(template, ()):
            apart = one_count_apart(numbers, other)
            if apart is None:
                continue
            where, c, c_other = apart
            side = below if c_other < c else above
            best = side.get(where)
            if best is None or abs(c_other - c) < abs(best[0] - c):
                side[where] = (c_other, seconds)
        for where in sorted(set(below) & set(above), key=sorted):
            (c_lo, t_lo), (c_hi, t_hi) = below[where], above[where]
            c = numbers[min(where)]
            return t_lo + (t_hi - t_lo) * (c - c_lo) / (c_hi - c_lo)
        return None

    def lookup_or_measure(self, key: str, fn: Callable[[], object]) -> tuple[float, bool]:
        """The stored seconds, else an interpolation, else measured and stored; (seconds, not measured now)."""
        cached = self.table.get(key)
        if cached is not None:
            self.table.hits += 1
            return cached, True
        estimate = self.estimate(key)
        if estimate is not None:
            self.interpolated += 1
            return estimate, True
        seconds, cached = self.table.lookup_or_measure(key, fn)
        if self._index is not None:
            self._add(key, seconds)
        return seconds, cached
