"""Timing two or more runtimes of one model in interleaved rounds."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from edgefit.errors import ConfigError


def time_side_by_side(fns: dict[str, Callable[[], object]], *, runs: int, warmup: int,
                      on_step: Callable[[], None] | None = None) -> dict[str, dict]:
    """Median and p90 seconds per call of each function, ``runs`` rounds that call each once in turn.

    Interleaving makes a busy host slow every function alike. ``on_step`` is
    called after every call (warm-up included): ``len(fns) * (runs + warmup)`` times.

    Raises:
        ConfigError: ``runs`` < 1 or ``warmup`` < 0.
    """
    from edgefit.measure.latency import LatencyStats

    if runs < 1 or warmup < 0:
        raise ConfigError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    step = on_step or (lambda: None)
    for f in fns.values():
        for _ in range(warmup):
            f()
            step()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            samples[k].append(time.perf_counter() - t)
            step()
    stats = {k: LatencyStats.from_samples(v) for k, v in samples.items()}
    return {k: {"median_s": s.median_s, "p90_s": s.p90_s} for k, s in stats.items()}


def timing_calibration(input_shape: tuple[int, ...]) -> np.ndarray:
    """16 seeded standard-normal inputs of ``input_shape``: calibration fine for timing, not for accuracy."""
    return np.random.default_rng(0).standard_normal((16, *tuple(input_shape)[1:])).astype(np.float32)


def time_batches(fns_for: Callable[[np.ndarray], dict[str, Callable[[], object]]], input_shape: tuple[int, ...],
                 batches, *, runs: int, warmup: int, on_step: Callable[[], None] | None = None) -> list[dict]:
    """One row per batch size: the functions ``fns_for(x)`` timed side by side
    (:func:`time_side_by_side`) on one seeded standard-normal batch ``x``, with
    ``speedup`` = fp32 / int8 median seconds where both were timed.
    """
    out = []
    for b in batches:
        x = np.random.default_rng(1).standard_normal((b, *tuple(input_shape)[1:])).astype(np.float32)
        row = {"batch": b, **time_side_by_side(fns_for(x), runs=runs, warmup=warmup, on_step=on_step)}
        if "fp32" in row and "int8" in row:
            row["speedup"] = row["fp32"]["median_s"] / row["int8"]["median_s"]
        out.append(row)
    return out
