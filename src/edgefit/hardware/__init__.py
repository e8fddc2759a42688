"""edgefit.hardware: devices as data, roofline, latency, energy and memory fit.

>>> from edgefit.hardware import get_device, roofline
>>> get_device("stm32f746").display_name
'STM32F746'
>>> round(roofline(57.8e6, 24.5e6, peak_ops_per_s=4608e9, bandwidth_bytes_per_s=96e9).seconds * 1e6)
255
"""

from __future__ import annotations

from edgefit.hardware.device import (
    PRECISION_BITS,
    Device,
    EnergyTable,
    device_from_dict,
    get_device,
    list_devices,
    load_device_file,
)
from edgefit.hardware.estimate import (
    Estimate,
    EstimateTotals,
    Fallback,
    Fit,
    LayerEstimate,
    RooflinePoint,
    check_memory_fit,
    estimate,
    format_bytes,
    precision_for_widths,
    roofline,
    runs_at,
)

__all__ = [
    "PRECISION_BITS",
    "Device",
    "EnergyTable",
    "Estimate",
    "EstimateTotals",
    "Fallback",
    "Fit",
    "LayerEstimate",
    "RooflinePoint",
    "check_memory_fit",
    "device_from_dict",
    "estimate",
    "format_bytes",
    "get_device",
    "list_devices",
    "load_device_file",
    "precision_for_widths",
    "roofline",
    "runs_at",
]
