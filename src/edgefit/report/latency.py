"""Text of latency predictions and of the device list, as `edgefit predict` and `edgefit devices` print them.

The CLI only echoes these lines; a Python user gets the same text from the same calls.
"""

from __future__ import annotations

import time

from edgefit.units import format_bytes, human_seconds, si

DEVICE_HEADER = (
    "name",
    "device",
    "peak (per precision)",
    "bandwidth",
    "SRAM",
    "act. RAM",
    "weights",
    "power",
)
HOST_PLACEHOLDER = ("host", "this machine (measured on first use)", "-", "-", "-", "-", "-", "-")


def device_row(d) -> tuple[str, ...]:
    """One `Device` as the cells of `devices_table`."""
    peaks = ", ".join(f"{p} {si(rate, 'op/s')}" for p, rate in d.rates.items())
    return (
        d.name,
        d.display_name,
        peaks,
        si(d.bandwidth_bytes_per_s, "B/s"),
        format_bytes(d.sram_bytes),
        format_bytes(d.activation_ram_bytes),
        format_bytes(d.weight_storage_bytes),
        f"{d.power_watts:g} W" if d.power_watts else "-",
    )


def devices_table(devices, *, host_placeholder: bool = False) -> str:
    """The device list as aligned columns: peak per precision, bandwidth, memories, power.

    ``host_placeholder`` adds a row for the host that is measured on first use.

    >>> print(devices_table([], host_placeholder=True))
    name  device                                peak (per precision)  bandwidth  SRAM  act. RAM  weights  power
    host  this machine (measured on first use)  -                     -          -     -         -        -
    """
    body = [device_row(d) for d in devices]
    if host_placeholder:
        body.append(HOST_PLACEHOLDER)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(DEVICE_HEADER)]
    rows = [DEVICE_HEADER, *body]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _error(pred_s: float, measured_s: float) -> str:
    return f"{(pred_s - measured_s) / measured_s:+.1%}" if measured_s > 0 else "n/a"


def layer_lines(pred) -> list[str]:
    """One line per row of a `Prediction`: name, kind, predicted time or why unpredicted."""
    return [
        f"  {r.name or '(root)':40s} {r.kind:20s} "
        + (human_seconds(r.seconds) if r.seconds is not None else "unpredicted: " + r.reason)
        for r in pred.layers
    ]


def prediction_lines(
    pred,
    *,
    roofline_s: float | None = None,
    budget_s: float | None = None,
    threads: int | None = None,
) -> list[str]:
    """A `Prediction` as `edgefit predict` prints it: prediction, interval, measurement, budget.

    Latency is the uncontended latency (the 10th percentile of short repeats, what
    the table stores); the measured median under the current load is shown beside
    it. ``budget_s`` adds the verdict of `Prediction.budget_met` at the
    prediction's confidence.
    """
    m = pred.measured
    where = f" ({threads} threads)" if threads else ""
    err = f"   error {_error(pred.seconds, m.p10_s)}" if m is not None else ""
    lines = [
        f"{pred.model} on this host{where}",
        "  latency = uncontended latency: the 10th percentile of short repeats "
        "(other jobs only add time)",
        f"  predicted (lookup table): {human_seconds(pred.seconds)}{err}",
    ]
    if roofline_s is not None:
        roof_err = f"   error {_error(roofline_s, m.p10_s)}" if m is not None else ""
        lines.append(f"  roofline estimate:        {human_seconds(roofline_s)}{roof_err}")
    if pred.low_s is not None:
        lines.append(
            f"  {pred.confidence:.0%} interval:             {human_seconds(pred.low_s)} .. "
            f"{human_seconds(pred.high_s)}   (table sum {human_seconds(pred.table_seconds)} x "
            f"{pred.correction.factor:.3f}, {pred.regime}, {_how(pred.correction)}; upper end x "
            f"{pred.correction.load_ratio:.2f} for the load seen at calibration)"
        )
    if m is not None:
        lines.append(
            f"  measured ({m.runs} runs):      {human_seconds(m.p10_s)} uncontended (10th "
            f"percentile), median {human_seconds(m.median_s)} under the current load"
        )
    if budget_s is not None:
        met = pred.budget_met(budget_s, pred.confidence)
        lines.append(
            f"  budget {human_seconds(budget_s)} met with {pred.confidence:.0%} confidence: "
            f"{'yes' if met else 'no'}"
        )
    return lines


def _how(corr) -> str:
    """Which correction gave the factor and how its interval is formed."""
    if corr.model == "features":
        return "feature model, conformal interval"
    return "per-regime factor, t interval"


def host_state_lines(pred, table=None, *, now: float | None = None) -> list[str]:
    """How the host stood: the correction's calibration (age, canary, retakes), the gate, notes.

    ``table`` (the `LatencyTable` read) adds its gate and retake counts.
    """
    now = time.time() if now is None else now
    lines = []
    c = pred.correction
    if c is not None:
        canary = f", canary {c.canary_s * 1e6:.0f} us" if c.canary_s else ""
        lines.append(
            f"  host: {c.regime} correction from {len(c.networks)} random networks, "
            f"{(now - c.created) / 60:.0f} min old{canary}, {c.retakes} retakes when calibrated, "
            f"load x{c.load_ratio:.2f}"
        )
    if table is not None:
        lines.append(
            f"  host now: {table.gated - table.gate_timeouts} of {table.gated} gated measurements "
            f"at full speed, {table.retaken} retaken"
        )
        lines.append(
            f"  table: {pred.measured_configs} new layer configurations measured, "
            f"{pred.cached_configs} reused ({table.path})"
        )
    lines += [f"  note: {n}" for n in pred.notes]
    if pred.unpredicted:
        lines.append(
            f"  unpredicted rows ({len(pred.unpredicted)}): {', '.join(pred.unpredicted[:8])}"
        )
    return lines
