"""The benchmarks' timing lock, held only around the parts that time (training runs outside it)."""

from __future__ import annotations

import contextlib
import fcntl

LOCK = "/tmp/edgefit-bench.lock"


@contextlib.contextmanager
def bench_lock(path: str = LOCK):
    """Hold ``path`` (the lock ``flock /tmp/edgefit-bench.lock <command>`` takes) for the ``with`` block."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
