"""The benchmarks' timing lock, held only around the parts that time (training runs outside it), and
any other file lock they take (``path``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal

LOCK = "/tmp/edgefit-bench.lock"


@contextlib.contextmanager
def bench_lock(wait_seconds: float | None = None, path: str | os.PathLike = LOCK):
    """Hold ``path`` (the lock ``flock /tmp/edgefit-bench.lock <command>`` takes) for the ``with`` block.

    Waits in the kernel's queue like ``flock`` does; with ``wait_seconds`` an alarm ends the wait.

    Raises:
        TimeoutError: another benchmark held it for all of ``wait_seconds``.
    """
    def expired(signum, frame):
        raise TimeoutError(f"{path} stayed held for {wait_seconds:.0f} s")

    with open(path, "a") as fh:
        if wait_seconds:
            previous = signal.signal(signal.SIGALRM, expired)
            signal.setitimer(signal.ITIMER_REAL, wait_seconds)
            try:
                fcntl.flock(fh, fcntl.LOCK_EX)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
        else:
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
