"""edgefit.measure: real latency and throughput on the host, host calibration, latency lookup tables."""

from __future__ import annotations

from edgefit.measure.calibrate import cache_dir, calibrate_host, host_device
from edgefit.measure.compare import BenchResult, bench_model
from edgefit.measure.correction import HostCorrection, fit_correction
from edgefit.measure.drift import DriftCheck, check_drift
from edgefit.measure.features import FeatureCorrection
from edgefit.measure.latency import (
    LatencyStats,
    SpeedGate,
    ThroughputPoint,
    behind_gate,
    conv_canary,
    cpu_timer,
    default_timer,
    faster,
    machine_busy,
    measure_latency,
    random_inputs,
    steady_allocator,
    throughput_sweep,
    time_callable,
    time_passes,
    wait_until_quiet,
)
from edgefit.measure.lut import (
    LatencyTable,
    LayerPrediction,
    Prediction,
    host_correction,
    layer_key,
    predict_latency,
)

__all__ = [
    "BenchResult",
    "bench_model",
    "LatencyStats",
    "LatencyTable",
    "LayerPrediction",
    "Prediction",
    "SpeedGate",
    "behind_gate",
    "ThroughputPoint",
    "cache_dir",
    "calibrate_host",
    "conv_canary",
    "cpu_timer",
    "default_timer",
    "host_correction",
    "host_device",
    "HostCorrection",
    "FeatureCorrection",
    "DriftCheck",
    "check_drift",
    "fit_correction",
    "faster",
    "layer_key",
    "machine_busy",
    "measure_latency",
    "predict_latency",
    "random_inputs",
    "steady_allocator",
    "throughput_sweep",
    "time_callable",
    "time_passes",
    "wait_until_quiet",
]
