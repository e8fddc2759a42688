"""Executors: run independent trials serially, in a local process pool, or on Ray.

All three share one method, ``map(fn, items) -> list`` (results in the order of
``items``); ``fn`` must be a module-level function and ``items`` picklable. They
only carry work between processes this run started (or the user's own Ray
cluster): nothing is loaded from files.

* `SerialExecutor`: in this process, one after the other.
* `ProcessExecutor`: a ``concurrent.futures`` pool of ``workers`` spawned
  processes, started on first use and kept for the whole run.
* `RayExecutor`: Ray tasks; ``ray.init()`` starts a local Ray in-process with
  ``workers`` CPUs unless one is running, or ``address="ray://..."``/``"auto"``
  joins a running cluster, so more machines fan out without code changes.

``map`` returns only when every trial is done, so a caller that measures
latency between two ``map`` calls measures on a host its trials no longer load.

>>> SerialExecutor().map(abs, [-1, 2, -3])
[1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edgefit.errors import ConfigError

EXECUTORS = ("serial", "process", "ray")


class SerialExecutor:
    """Trials one after the other in this process."""

    workers = 1

    def map(self, fn: Callable, items: Iterable) -> list:
        return [fn(x) for x in items]

    def close(self) -> None:
        pass


class ProcessExecutor:
    """A local pool of ``workers`` spawned processes (each trial runs with one torch thread)."""

    def __init__(self, workers: int = 2) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool = None

    def map(self, fn: Callable, items: Iterable) -> list:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return list(self._pool.map(fn, items))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class RayExecutor:
    """Ray tasks of one CPU each; a local Ray with ``workers`` CPUs, or the cluster at ``address``."""

    def __init__(self, workers: int = 2, address: str | None = None) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers, self.address = workers, address
        self._started = False

    def _init(self):
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray executor needs Ray: pip install 'edgefit[search]'") from None
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.workers, **kwargs)
            self._started = True
        return ray

    def map(self, fn: Callable, items: Iterable) -> list:
        ray = self._init()
        remote = ray.remote(num_cpus=1)(_apply)
        return ray.get([remote.remote(fn, x) for x in items])

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _apply(fn: Callable, item):
    """``fn(item)``: one Ray task (any picklable callable, builtins included)."""
    return fn(item)


@dataclass(frozen=True)
class ExecutorConfig:
    """Which executor: ``kind`` in `EXECUTORS`, ``workers``, and a Ray ``address`` (None: start one)."""

    kind: str = "process"
    workers: int = 1
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.kind!r} (known: {', '.join(EXECUTORS)})")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigError(f"workers must be an integer >= 1, got {self.workers!r}")
        if self.address and self.kind != "ray":
            raise ConfigError("an address is only for the ray executor")


def make_executor(config: ExecutorConfig):
    """The executor ``config`` names (one worker in a pool runs serially in this process)."""
    if config.kind == "ray":
        return RayExecutor(config.workers, config.address)
    if config.kind == "serial" or config.workers == 1:
        return SerialExecutor()
    return ProcessExecutor(config.workers)
