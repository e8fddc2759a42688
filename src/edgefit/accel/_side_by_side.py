"""Timing two or more runtimes of one model in interleaved rounds."""

from __future__ import annotations

import time
from collections.abc import Callable

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
