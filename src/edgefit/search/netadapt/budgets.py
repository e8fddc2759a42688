"""Budgets: ``resource=value[@device]`` with units, absolute or a share of the start.

Resources (units in the stored value):

| name | unit | how it is obtained |
| --- | --- | --- |
| ``latency`` | seconds | on ``host``: the sum of the measured per-layer lookup table (`edgefit.measure.LatencyTable`); on a named device: the roofline estimate (`edgefit.hardware.estimate`) |
| ``energy`` | joules | the device model's energy estimate (a named device; the host has no energy table) |
| ``macs`` | MACs | the exact profile |
| ``params`` | parameters | the exact profile |
| ``model_size`` | bytes | parameters x bit width / 8 |
| ``peak_activations`` | bytes | peak live activations x activation bit width / 8 (what a device's RAM must hold) |

>>> parse_budget("latency=50%")
Budget(resource='latency', value=0.5, relative=True, device=None)
>>> parse_budget("energy=2mJ@jetson_orin_nano")
Budget(resource='energy', value=0.002, relative=False, device='jetson_orin_nano')
>>> parse_budget("peak_activations=320KB").value    # KB = 1024 bytes, as device RAM is quoted
327680.0
>>> parse_budget("macs=0.37G").value
370000000.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgefit.errors import ConfigError, close_names

RESOURCES = ("latency", "energy", "macs", "params", "model_size", "peak_activations")
DEVICE_RESOURCES = ("latency", "energy")  # the only ones that depend on a device
UNITS = {
    "latency": {"s": 1.0, "ms": 1e-3, "us": 1e-6},
    "energy": {"j": 1.0, "mj": 1e-3, "uj": 1e-6, "nj": 1e-9},
    "macs": {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9},
    "params": {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9},
    "model_size": {"b": 1.0, "kb": 1024.0, "mb": 1024.0**2, "gb": 1024.0**3},
    "peak_activations": {"b": 1.0, "kb": 1024.0, "mb": 1024.0**2, "gb": 1024.0**3},
}
_VALUE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z%]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """One resource budget.

    Attributes:
        resource: one of `RESOURCES`.
        value: the budget in the resource's unit, or a share of the starting value.
        relative: ``value`` is a share (0.5 = 50% of the unadapted network).
        device: where ``latency``/``energy`` are taken (``None``: the run's device).
    """

    resource: str
    value: float
    relative: bool = False
    device: str | None = None

    def __post_init__(self) -> None:
        if self.resource not in RESOURCES:
            raise ConfigError(
                f"unknown resource {self.resource!r} (known: {', '.join(RESOURCES)})."
                f"{close_names(self.resource, RESOURCES)}"
            )
        if not self.value > 0:
            raise ConfigError(f"budget {self.resource}={self.value!r}: must be above zero")
        if self.relative and self.value >= 1:
            raise ConfigError(
                f"budget {self.resource}={100 * self.value:g}%: must be below 100% of the current value"
            )
        if self.device is not None and self.resource not in DEVICE_RESOURCES:
            raise ConfigError(f"budget {self.resource}: only latency and energy take @device")

    def target(self, start: float) -> float:
        """The absolute budget for a network whose resource starts at ``start``.

        Raises:
            ConfigError: an absolute budget is not below ``start``.
        """
        if self.relative:
            return self.value * start
        if self.value >= start:
            raise ConfigError(
                f"budget {self.resource}={self.value:g} is not below the current value {start:g}: nothing to adapt"
            )
        return self.value

    def label(self, default_device: str = "host") -> str:
        """``latency@host``, ``macs``: the column name of this resource."""
        if self.resource in DEVICE_RESOURCES:
            return f"{self.resource}@{self.device or default_device}"
        return self.resource


def parse_budget(text: str) -> Budget:
    """``"latency=50%"``, ``"latency=20ms@jetson_nano"``, ``"macs=0.37G"`` -> `Budget`.

    Raises:
        ConfigError: unknown resource, unit or a value that is not a positive number.
    """
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not rest.strip():
        raise ConfigError(f"budget {text!r}: write resource=value, e.g. latency=50% or macs=0.37G")
    value_text, _, device = rest.partition("@")
    if name not in RESOURCES:
        Budget(name, 1.0)  # raises the unknown-resource message
    if value_text.strip().startswith("-"):
        raise ConfigError(f"budget {text!r}: must be above zero")
    match = _VALUE.match(value_text)
    if not match:
        raise ConfigError(f"budget {text!r}: {value_text.strip()!r} is not a number with a unit")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit == "%":
        return Budget(name, number / 100, relative=True, device=device.strip() or None)
    units = UNITS[name]
    if unit not in units:
        known = ", ".join(u or "(none)" for u in units)
        raise ConfigError(f"budget {text!r}: unit {unit!r} is not one of {known} or %")
    return Budget(name, number * units[unit], relative=False, device=device.strip() or None)
