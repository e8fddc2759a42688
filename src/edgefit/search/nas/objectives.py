"""Objectives and hard constraints, and the approximate metrics that score them.

An objective is a metric name with an optional ``@device``:

========================  ==========  =========================================================
spec                      direction   how it is obtained (no measurement per sample)
========================  ==========  =========================================================
``accuracy``              maximize    validation accuracy after a short training (`EvalConfig`)
``latency@host``          minimize    seconds, summed from the host latency lookup table
                                      (`edgefit.measure.lut.predict_latency`, ``measure=False``)
``latency@DEVICE``        minimize    seconds, roofline estimate on a named device
``energy@DEVICE``         minimize    joules, the device's energy model
``size``                  minimize    model size in bytes at 32-bit weights
``peak_memory``           minimize    peak live activation bytes (liveness pass)
``macs`` / ``params``     minimize    exact counts from `edgefit.profile`
========================  ==========  =========================================================

A constraint is ``fits@DEVICE`` (weights fit storage and activations fit RAM) or
``METRIC<=VALUE`` with an optional unit (``latency@host<=2ms``, ``size<=64KB``,
``energy@stm32f746<=1mJ``; KB = 1024 bytes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgefit.errors import ConfigError, close_names

METRICS = {
    "accuracy": "maximize",
    "latency": "minimize",
    "energy": "minimize",
    "size": "minimize",
    "peak_memory": "minimize",
    "macs": "minimize",
    "params": "minimize",
}
_NEEDS_DEVICE = {"latency", "energy"}
_UNITS = {
    "": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6,
    "b": 1.0, "kb": 1024.0, "mb": 1024.0**2, "gb": 1024.0**3,
    "j": 1.0, "mj": 1e-3, "uj": 1e-6,
    "k": 1e3, "m": 1e6, "g": 1e9,
}
_METRIC_UNITS = {  # the units each cost may be bounded in ("" = its base unit)
    "latency": {"", "s", "ms", "us"},
    "energy": {"", "j", "mj", "uj"},
    "size": {"", "b", "kb", "mb", "gb"},
    "peak_memory": {"", "b", "kb", "mb", "gb"},
    "macs": {"", "k", "m", "g"},
    "params": {"", "k", "m", "g"},
}
_CONSTRAINT = re.compile(r"^\s*([a-z_]+(?:@[\w.\-/]+)?)\s*<=\s*([0-9.eE+\-]+)\s*([a-zA-Z]*)\s*$")


@dataclass(frozen=True)
class Objective:
    """One metric to optimize: ``metric`` (e.g. ``latency``), ``device`` (``host``, a device name or ``""``).

    >>> Objective.parse("latency@host").direction
    'minimize'
    """

    metric: str
    device: str = ""

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(
                f"unknown objective {self.metric!r}; choose from {sorted(METRICS)}.{close_names(self.metric, METRICS)}"
            )
        if self.metric in _NEEDS_DEVICE and not self.device:
            raise ConfigError(f"objective {self.metric!r} needs a device: {self.metric}@host or {self.metric}@DEVICE")
        if self.metric == "energy" and self.device == "host":
            raise ConfigError("energy@host is not modelled; name a device, e.g. energy@jetson_nano")
        if self.device and self.device != "host":
            from edgefit.hardware import get_device

            get_device(self.device)  # raises DeviceError with the close names

    @classmethod
    def parse(cls, text: str) -> Objective:
        metric, _, device = str(text).strip().partition("@")
        return cls(metric.strip(), device.strip())

    @property
    def key(self) -> str:
        return f"{self.metric}@{self.device}" if self.device else self.metric

    @property
    def direction(self) -> str:
        return METRICS[self.metric]


@dataclass(frozen=True)
class Constraint:
    """A hard constraint: ``fits@DEVICE``, or ``objective <= limit``.

    >>> Constraint.parse("latency@host<=2ms").limit
    0.002
    >>> Constraint.parse("fits@stm32f746").device
    'stm32f746'
    """

    text: str
    device: str = ""
    objective: Objective | None = None
    limit: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Constraint:
        text = str(text).strip()
        if text.startswith("fits@"):
            device = text[5:]
            from edgefit.hardware import get_device

            get_device(device)
            return cls(text, device=device)
        m = _CONSTRAINT.match(text)
        if not m or m.group(3).lower() not in _UNITS:
            raise ConfigError(
                f"constraint {text!r}: write fits@DEVICE or METRIC<=VALUE, e.g. latency@host<=2ms or size<=64KB"
            )
        objective = Objective.parse(m.group(1))
        if objective.direction != "minimize":
            raise ConfigError(f"constraint {text!r}: only costs take an upper bound, not {objective.metric}")
        unit = m.group(3).lower()
        if unit not in _METRIC_UNITS[objective.metric]:
            allowed = ", ".join(u for u in sorted(_METRIC_UNITS[objective.metric]) if u)
            raise ConfigError(f"constraint {text!r}: {objective.metric} is not measured in {m.group(3)!r}; use {allowed}")
        try:
            limit = float(m.group(2)) * _UNITS[m.group(3).lower()]
        except ValueError:
            raise ConfigError(f"constraint {text!r}: {m.group(2)!r} is not a number") from None
        return cls(text, objective=objective, limit=limit)

    @property
    def key(self) -> str:
        return f"fits@{self.device}" if self.objective is None else self.objective.key

    def violation(self, metrics: dict) -> float:
        """How far ``metrics`` are outside the constraint (<= 0: met). ``fits`` gives 1 or 0."""
        if self.objective is None:
            return 0.0 if metrics[self.key] else 1.0
        return (metrics[self.key] - self.limit) / self.limit if self.limit else metrics[self.key]


def cheap_keys(objectives, constraints) -> list[str]:
    """The metric keys that need no training, for these objectives and constraints."""
    keys = [o.key for o in objectives if o.metric != "accuracy"]
    keys += [c.key for c in constraints]
    return list(dict.fromkeys(keys))


def compute_metrics(model, input_shape, keys, *, latency_table=None) -> dict:
    """The cheap metrics ``keys`` of ``model``: one exact profile, device estimates, the host LUT.

    Returns:
        key -> value (bytes, seconds, joules, counts; ``fits@D`` -> bool), plus
        ``"uncounted"``: ops with no cost formula (never silently zero).
    """
    from edgefit.hardware import estimate
    from edgefit.metrics import profile as make_profile

    prof = make_profile(model, input_shape=tuple(input_shape))
    out: dict = {"uncounted": dict(prof.uncounted)}
    estimates: dict = {}

    def est(device):
        if device not in estimates:
            estimates[device] = estimate(prof, device)
        return estimates[device]

    for key in keys:
        metric, _, device = key.partition("@")
        if metric == "fits":
            out[key] = bool(est(device).fit.fits)
        elif metric == "latency" and device == "host":
            from edgefit.measure.lut import predict_latency

            pred = predict_latency(model, prof, table=latency_table, measure=False)
            if pred.unpredicted:
                out.setdefault("unpredicted", list(pred.unpredicted))
            out[key] = float(pred.seconds)
        elif metric == "latency":
            out[key] = float(est(device).totals.seconds)
        elif metric == "energy":
            out[key] = float(est(device).totals.joules)
        elif metric == "size":
            out[key] = float(prof.totals.model_size_bytes)
        elif metric == "peak_memory":
            out[key] = float(prof.totals.peak_live_bytes)
        elif metric in ("macs", "params"):
            out[key] = int(getattr(prof.totals, metric))
    return out
