"""Real latency and throughput on the host.

Latency is the median (and p10, p90, nearest rank) of ``runs`` timed forward passes
after ``warmup`` untimed ones, in eval mode under ``torch.inference_mode``.

On a shared host other jobs only ever add time, so the median of a few repeats
drifts with the load while a low quantile of many short repeats estimates the
*uncontended* latency and reproduces far better (why ``timeit`` reports the best
of several runs). The lookup table, its calibrations and the end-to-end
measurements it is judged against all use the 10th percentile
(`LatencyStats.p10_s`, `UNCONTENDED_QUANTILE`); the median stays beside it as what a
user sees under the current load.
Throughput over a batch-size sweep shows the trade-off of reference/001: larger
batches raise items per second and the latency of each batch.
"""

from __future__ import annotations

import ctypes
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from edgefit.errors import ConfigError

Timer = Callable[[], float]
T = TypeVar("T")
UNCONTENDED_QUANTILE = 0.1  # the quantile of short repeats that stands for uncontended latency

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_STEADY_BYTES = 1 << 30
_steady = False


def cpu_timer() -> float:
    """Seconds of CPU time of the calling thread (``time.thread_time``).

    With one torch thread every kernel runs on the calling thread, so this is the
    latency the work itself takes, without the time spent waiting for a core while
    other processes run (on a busy 2-core machine that wait was 35% of wall time).
    """
    return time.thread_time()


def default_timer() -> Timer:
    """The clock edgefit measures with: `cpu_timer` with one torch thread, else wall time.

    With several intra-op threads the calling thread's CPU time misses the work of
    the others, so wall time (``time.perf_counter``) is the only honest clock.
    """
    import torch

    return cpu_timer if torch.get_num_threads() == 1 else time.perf_counter


def steady_allocator() -> bool:
    """Stop glibc's malloc from handing activation memory back to the OS; True if applied.

    By default glibc serves large blocks with fresh ``mmap`` pages and trims the heap
    whenever its free top grows past a threshold that it raises as the process frees
    bigger blocks. A network's activations then land on freshly faulted (zeroed)
    pages on some passes and not on others, depending on what the process ran before:
    MobileNetV2 took ~4,000-5,000 page faults per forward pass and ~1.9x the CPU time of a
    pass without them, and ResNet-50 took 0 faults in a fresh process but ~1,200 per pass
    after MobileNetV2 had run in it. Pinning both thresholds (``mallopt``; the
    process keeps its peak memory, as PyTorch's recommended jemalloc/tcmalloc
    setups do) makes latency a property of the model. Process-wide and permanent;
    a no-op returning False off glibc.
    """
    global _steady
    if _steady:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, _STEADY_BYTES)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, _STEADY_BYTES)
        )
    except (OSError, AttributeError):
        return False
    _steady = ok
    return ok


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from ``/proc/stat``; None where unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def machine_busy(window_s: float = 0.05) -> float | None:
    """Share of all CPUs busy over ``window_s`` while this thread sleeps (Linux); None elsewhere.

    The calling thread sleeps through the window, so the busy share is other work:
    0.5 on a 2-CPU machine means one other process runs flat out.
    """
    before = _cpu_ticks()
    if before is None:
        return None
    time.sleep(window_s)
    after = _cpu_ticks()
    if after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def wait_until_quiet(
    *, below: float = 0.15, window_s: float = 0.05, max_wait_s: float = 2.0
) -> bool:
    """Sleep until other processes use less than ``below`` of the CPUs; False if ``max_wait_s`` ran out.

    On a small shared machine a co-running process slows this one's kernels down
    by up to ~1.5x *in CPU time* (shared core resources, caches, memory
    bandwidth), so the CPU clock alone does not make a timing independent of other
    jobs. Timing only in quiet moments does; pass this as ``gate`` to
    `edgefit.measure.LatencyTable` and call it before end-to-end samples. True at
    once where ``/proc/stat`` is unavailable.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = machine_busy(window_s)
        if busy is None or busy < below:
            return True
        if time.monotonic() >= deadline:
            return False


class SpeedGate:
    """Time only while the core runs at full speed: a reference kernel as a speedometer.

    On a virtual machine the physical core is shared with tenants that
    ``/proc/stat`` cannot see. While one of them runs, this process's kernels
    take longer *in CPU time*: on the 2-vCPU machine the benchmarks run on,
    ResNet-50 alternated between ~84 ms and ~113 ms per pass in episodes of
    1-5 s, with the same model, input and clock. A small fixed convolution (the
    *canary*, ~0.2 ms) slows down in step (0.59 ms -> 0.87 ms for three calls in the same
    run), so it tells the fast episodes from the slow ones.

    Calling the gate waits (after `wait_until_quiet`, for this VM's own CPUs) until the canary
    runs within ``tolerance`` of the fastest it has run in this process, polling
    every ``poll_s``, for at most ``max_wait_s``; it returns False if that ran out.
    `steady` checks once without waiting: call it after a measurement and
    measure again if it is False (the episode changed under the measurement).
    The predictor and the end-to-end measurement both time behind the same gate,
    so both describe the host running alone.

    Args:
        tolerance: the canary's allowed slowdown over its best (1.12: its own
            spread within one episode is about +-5%).
        max_wait_s: the longest one call waits.
        quiet: also wait for this VM's CPUs to be idle (`wait_until_quiet`).
        canary: a zero-argument callable returning the canary's seconds (tests
            pass a fake one); default: `conv_canary`.
        max_total_wait_s: bounds all waits together: once this much time was spent
            waiting, the gate stops waiting (each call returns at once, False when the
            host is slow), so a table build on a host that is never quiet ends in
            bounded time; its entries are still retaken when the host slowed down
            under them. None: no bound.
    """

    def __init__(
        self,
        *,
        tolerance: float = 1.12,
        max_wait_s: float = 3.0,
        poll_s: float = 0.0,
        quiet: bool = True,
        canary: Callable[[], float] | None = None,
        max_total_wait_s: float | None = None,
    ) -> None:
        if tolerance < 1.0 or max_wait_s < 0 or poll_s < 0 or (max_total_wait_s or 0) < 0:
            raise ConfigError(
                f"need tolerance >= 1 and non-negative waits, got {tolerance}, {max_wait_s}, {poll_s}"
            )
        self.tolerance, self.max_wait_s, self.poll_s, self.quiet = (
            tolerance,
            max_wait_s,
            poll_s,
            quiet,
        )
        self.canary = canary if canary is not None else conv_canary()
        self.best = math.inf
        self.calls = self.timeouts = self.rejected = 0
        self.max_total_wait_s = max_total_wait_s
        self.waited_s = 0.0

    def read(self) -> float:
        """One canary reading (seconds); the best reading so far is kept as the reference."""
        s = self.canary()
        self.best = min(self.best, s)
        return s

    def steady(self) -> bool:
        """True if the canary runs within ``tolerance`` of its best right now (no waiting)."""
        ok = self.read() <= self.tolerance * self.best
        if not ok:
            self.rejected += 1
        return ok

    def __call__(self) -> bool:
        self.calls += 1
        start = time.monotonic()
        try:
            return self._wait(start)
        finally:
            self.waited_s += time.monotonic() - start

    def _wait(self, start: float) -> bool:
        max_wait = self.max_wait_s
        if self.max_total_wait_s is not None:
            max_wait = max(0.0, min(max_wait, self.max_total_wait_s - self.waited_s))
        deadline = start + max_wait
        if self.quiet and max_wait > 0:
            wait_until_quiet(max_wait_s=max_wait)
        if self.best == math.inf:  # first use: a few readings spread out to find the fast speed
            for _ in range(5):
                self.read()
                time.sleep(self.poll_s)
        while self.read() > self.tolerance * self.best:
            if time.monotonic() >= deadline:
                self.timeouts += 1
                return False
            time.sleep(self.poll_s)
        return True


def conv_canary(calls: int = 5, warm: int = 3) -> Callable[[], float]:
    """A canary for `SpeedGate`: the median CPU time of ``calls`` 3x3 convolutions (32 channels, 28x28).

    ``warm`` untimed calls come first: after a sleep the core's caches and
    predictors hold other work, and a cold first call takes 1.5-3x as long, which
    says nothing about the speed the core runs at.
    """
    import torch

    with torch.inference_mode(False):
        conv = torch.nn.Conv2d(32, 32, 3, padding=1).eval()
        x = torch.randn(1, 32, 28, 28)

    def run() -> float:
        samples = []
        with torch.no_grad():
            for _ in range(warm):
                conv(x)
            for _ in range(calls):
                t0 = cpu_timer()
                conv(x)
                samples.append(cpu_timer() - t0)
        return statistics.median(samples)

    run()  # untimed: kernel selection
    return run


@dataclass(frozen=True)
class LatencyStats:
    """Timings of one workload, in seconds per call.

    Attributes:
        median_s: median over the runs.
        p90_s: 90th percentile (nearest rank).
        mean_s, min_s: the mean and the fastest run.
        runs: how many timed runs.
        samples: every timed run.
        p10_s: 10th percentile (nearest rank): the uncontended latency the lookup
            table stores and predicts (other jobs on the host only add time).
    """

    median_s: float
    p90_s: float
    mean_s: float
    min_s: float
    runs: int
    samples: tuple[float, ...]
    p10_s: float = math.nan

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> LatencyStats:
        if not samples:
            raise ConfigError("no timing samples")
        ordered = sorted(samples)
        return cls(
            median_s=statistics.median(ordered),
            p90_s=nearest_rank(ordered, 0.9),
            mean_s=statistics.fmean(ordered),
            min_s=ordered[0],
            runs=len(ordered),
            samples=tuple(samples),
            p10_s=nearest_rank(ordered, UNCONTENDED_QUANTILE),
        )

    def to_dict(self) -> dict:
        return {
            "median_s": self.median_s,
            "p90_s": self.p90_s,
            "mean_s": self.mean_s,
            "min_s": self.min_s,
            "p10_s": self.p10_s,
            "runs": self.runs,
        }


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted ``ordered`` by nearest rank (an observed value).

    >>> nearest_rank([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], 0.1)
    2
    >>> nearest_rank([5.0], 0.1), nearest_rank([1, 2, 3], 0.9)
    (5.0, 3)
    """
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def behind_gate(
    measure: Callable[[], T],
    wait: Callable[[], object] | None,
    steady: Callable[[], bool] | None = None,
    *,
    retakes: int = 2,
    pick: Callable[[T, T], T] | None = None,
) -> tuple[T, int]:
    """``measure()`` after ``wait()``, again while ``steady()`` says the host slowed down under it.

    The one retake rule for every gated measurement (`time_callable`, the table's
    entries, the benchmark's end-to-end blocks): wait, measure, check; after
    ``retakes`` repeats the kept result is returned. Returns (result, repeats taken).
    ``wait``/``steady`` may be None (no waiting, no check). ``pick(kept, new)``
    chooses which of two takes to keep (default: the newest); `faster` keeps the take
    with the lower 10th percentile: other jobs only add time, so the faster take is
    the better estimate of the uncontended latency.

    >>> checks = iter([False, True])
    >>> behind_gate(lambda: "m", None, lambda: next(checks))
    ('m', 1)
    >>> takes = iter([3.0, 2.0, 4.0])
    >>> behind_gate(lambda: next(takes), None, lambda: False, pick=min)
    (2.0, 2)
    """
    kept = None
    for taken in range(max(0, retakes) + 1):
        if wait is not None:
            wait()
        result = measure()
        kept = result if taken == 0 or pick is None else pick(kept, result)
        if steady is None or taken == retakes or steady():
            return kept, taken
    raise AssertionError("unreachable")  # pragma: no cover


def faster(kept, new):
    """Of two takes of one measurement, the one with the lower 10th percentile (`behind_gate`'s ``pick``).

    Takes are `LatencyStats` or lists of per-call samples.

    >>> faster([3.0, 4.0], [2.5, 9.0]), faster([1.0], [2.0])
    ([2.5, 9.0], [1.0])
    """

    def p10(take) -> float:
        if isinstance(take, LatencyStats):
            return take.p10_s
        return nearest_rank(sorted(take), UNCONTENDED_QUANTILE)

    return new if p10(new) < p10(kept) else kept


def time_callable(
    fn: Callable[[], object],
    *,
    warmup: int = 3,
    runs: int = 20,
    timer: Timer = time.perf_counter,
    min_sample_s: float = 0.0,
    on_step: Callable[[], None] | None = None,
    gate: SpeedGate | None = None,
    retakes: int = 2,
) -> LatencyStats:
    """Time ``fn``: ``warmup`` untimed calls, then ``runs`` samples.

    With ``min_sample_s`` > 0, each sample loops ``fn`` enough times to last about
    that long (the per-call time is the loop time divided by the count), which
    keeps timer resolution and call jitter out of microsecond-scale layers.
    With a `SpeedGate`, the whole measurement (warm-up included) waits for the
    gate first and is taken again, at most ``retakes`` times, when the gate finds
    the host slowed down by its end (`behind_gate`); the faster take is kept. Nothing else runs between the
    samples: a canary between them would change the state each sample starts from.
    """
    if warmup < 0 or runs < 1:
        raise ConfigError(f"need warmup >= 0 and runs >= 1, got warmup={warmup}, runs={runs}")

    def measure() -> list[float]:
        for _ in range(warmup):
            fn()
        inner = 1
        if min_sample_s > 0:
            t0 = timer()
            fn()
            first = timer() - t0
            inner = 1 if first <= 0 else max(1, min(1000, int(min_sample_s / first)))
        samples = []
        for _ in range(runs):
            t0 = timer()
            for _ in range(inner):
                fn()
            samples.append((timer() - t0) / inner)
            if on_step is not None:
                on_step()
        return samples

    samples, _ = behind_gate(
        measure, gate, gate.steady if gate is not None else None, retakes=retakes, pick=faster
    )
    return LatencyStats.from_samples(samples)


def time_passes(
    fn: Callable[[], object],
    *,
    timer: Timer,
    warm_s: float = 0.02,
    block_s: float = 0.01,
    min_runs: int = 3,
    wall: list[float] | None = None,
) -> list[float]:
    """Single calls of ``fn`` back to back, each timed: one end-to-end block.

    ``fn`` first runs untimed for ``warm_s`` (kernel selection, caches, branch
    predictors warm for this model), then at least ``min_runs`` and enough calls to
    fill ``block_s``, at most 1000. Each call's ``wall`` clock time is appended
    when given. The one way edgefit times a whole network end to end: the host
    correction's calibration networks and the benchmark's ground truth both use it.
    """
    warm_until = timer() + warm_s
    start = timer()
    fn()
    passes = 1
    while timer() < warm_until:
        fn()
        passes += 1
    per_call = max(1e-9, (timer() - start) / passes)
    runs = max(int(min_runs), min(1000, math.ceil(block_s / per_call)))
    samples = []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), timer()
        fn()
        samples.append(timer() - c0)
        if wall is not None:
            wall.append(time.perf_counter() - w0)
    return samples


def random_inputs(shapes: Sequence[Sequence[int]], dtype: str = "float32", *, vocab: int = 100):
    """Random example tensors of ``shapes`` (token ids in [0, vocab) for ``int64``)."""
    import torch

    if dtype == "int64":
        return tuple(torch.randint(0, vocab, tuple(s)) for s in shapes)
    return tuple(torch.randn(*s, dtype=getattr(torch, dtype)) for s in shapes)


def measure_latency(
    model,
    example_inputs: Sequence,
    *,
    warmup: int = 5,
    runs: int = 30,
    timer: Timer = time.perf_counter,
    on_step: Callable[[], None] | None = None,
    gate: SpeedGate | None = None,
) -> LatencyStats:
    """End-to-end latency of ``model(*example_inputs)`` on the host (eval mode, no grad).

    ``gate``: take the measurement behind a `SpeedGate` (see `time_callable`).
    """
    import torch

    model.eval()
    with torch.inference_mode():
        return time_callable(
            lambda: model(*example_inputs),
            warmup=warmup,
            runs=runs,
            timer=timer,
            on_step=on_step,
            gate=gate,
        )


@dataclass(frozen=True)
class ThroughputPoint:
    """One batch size of a sweep: latency of the batch and items per second."""

    batch: int
    latency: LatencyStats

    @property
    def items_per_s(self) -> float:
        return self.batch / self.latency.median_s if self.latency.median_s > 0 else math.inf


def throughput_sweep(
    model,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 2, 4, 8, 16),
    *,
    input_dtype: str = "float32",
    warmup: int = 2,
    runs: int = 10,
    timer: Timer = time.perf_counter,
    on_step: Callable[[], None] | None = None,
) -> list[ThroughputPoint]:
    """Latency and throughput at each batch size (the first dimension of ``input_shape`` is replaced)."""
    points = []
    for batch in batch_sizes:
        if int(batch) < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {batch}")
        shape = (int(batch), *tuple(input_shape)[1:])
        inputs = random_inputs([shape], input_dtype)
        stats = measure_latency(
            model, inputs, warmup=warmup, runs=runs, timer=timer, on_step=on_step
        )
        points.append(ThroughputPoint(int(batch), stats))
    return points
