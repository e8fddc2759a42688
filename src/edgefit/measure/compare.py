"""A model measured on this host beside the hardware model's estimate for the host.

`bench_model` is what ``edgefit bench`` runs: end-to-end latency (median, p90), a
throughput sweep over batch sizes, and the roofline estimate of the same profile on
the measured ``host`` device, so the two can be read side by side
(`edgefit.report.bench_lines` writes them as text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgefit.errors import ConfigError
from edgefit.measure.latency import (
    LatencyStats,
    ThroughputPoint,
    measure_latency,
    random_inputs,
    throughput_sweep,
)


@dataclass(frozen=True)
class BenchResult:
    """Measured latency and throughput with the estimate they are compared to.

    Attributes:
        model: the profile's model label.
        latency: end-to-end latency at the example input.
        sweep: one point per batch size (empty for models with several inputs).
        estimate: the `edgefit.hardware.Estimate` of the profile on the host.
        threads: torch threads used.
        warmup: untimed runs before the latency runs.
    """

    model: str
    latency: LatencyStats
    sweep: tuple[ThroughputPoint, ...]
    estimate: object
    threads: int
    warmup: int

    @property
    def measured_over_estimate(self) -> float:
        """Measured median latency over the roofline estimate (1.0: the estimate is exact)."""
        return self.latency.median_s / self.estimate.totals.seconds

    def to_dict(self) -> dict:
        est = self.estimate
        return {
            "model": self.model,
            "latency": self.latency.to_dict(),
            "throughput": [
                {"batch": p.batch, **p.latency.to_dict(), "items_per_s": p.items_per_s} for p in self.sweep
            ],
            "estimate": {
                "seconds": est.totals.seconds,
                "serial_seconds": est.totals.serial_seconds,
                "throughput_per_s": {str(p.batch): est.throughput(p.batch) for p in self.sweep},
            },
        }


def bench_model(
    model,
    profile,
    shapes: Sequence[Sequence[int]],
    *,
    input_dtype: str = "float32",
    runs: int = 30,
    warmup: int = 5,
    batch_sizes: Sequence[int] = (1, 2, 4, 8),
    sweep_runs: int = 5,
    on_step: Callable[[], None] | None = None,
    on_sweep_step: Callable[[], None] | None = None,
) -> BenchResult:
    """Measure ``model`` on this host and estimate ``profile`` on the measured host device.

    Args:
        model: the model with real weights.
        profile: its `edgefit.metrics.Profile` at ``shapes``.
        shapes: example input shapes (batch 1).
        input_dtype: dtype of the random inputs.
        runs: timed latency runs.
        warmup: untimed runs first.
        batch_sizes: the throughput sweep (only for single-input models).
        sweep_runs: timed runs per batch size.
        on_step: called after each latency run (progress bars).
        on_sweep_step: called after each sweep run.

    Raises:
        ConfigError: the model has no real weights, or a count is out of range.
    """
    import torch

    from edgefit.hardware import estimate, get_device

    if runs < 1 or warmup < 0 or sweep_runs < 1:
        raise ConfigError("runs and sweep runs must be >= 1 and warmup >= 0")
    if any(p.is_meta for p in model.parameters()):
        raise ConfigError("the model has no real weights (built on meta); cannot measure it")
    est = estimate(profile, get_device("host"))
    lat = measure_latency(model, random_inputs(shapes, input_dtype), warmup=warmup, runs=runs, on_step=on_step)
    sweep = ()
    if len(shapes) == 1:
        sweep = tuple(throughput_sweep(model, shapes[0], batch_sizes, input_dtype=input_dtype, warmup=1,
                                       runs=sweep_runs, on_step=on_sweep_step))
    return BenchResult(profile.model, lat, sweep, est, torch.get_num_threads(), warmup)
