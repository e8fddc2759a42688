"""A searched network's host latency: the lookup table's prediction and interval beside a measurement.

NetAdapt and the architecture search price candidates from the per-layer lookup
table; their final networks are also timed end to end once, after every trial has
finished (nothing else of the run loads the host then), so a user sees whether the
prediction held: ``measured_in_interval`` says whether the measured uncontended
latency (the 10th percentile of the timing runs, what the table predicts; the median
under load is kept beside it) lies in the host correction's interval (`edgefit.measure.predict_latency` with
``correction=True``: calibrated once per host on random zoo-block networks).
"""

from __future__ import annotations

from collections.abc import Sequence


def host_latency_check(
    model,
    input_shape: Sequence[int],
    *,
    table=None,
    budget_s: float | None = None,
    budget_on_table: bool = False,
    confidence: float = 0.9,
    runs: int = 20,
) -> dict:
    """Predict ``model``'s host latency from the table (with its interval) and measure it end to end.

    Args:
        model: the network (put in eval mode).
        input_shape: its input, batch included.
        table: the `edgefit.measure.LatencyTable` the run priced with (default: the cache dir's).
        budget_s: a latency budget to judge (the prediction's ``budget_met`` at ``confidence``,
            and the measurement against it).
        budget_on_table: ``budget_s`` is in the table's own seconds (e.g. 50% of an
            uncorrected sum): it is scaled by the host correction's factor first, so it
            is judged in the same seconds as the prediction and the measurement
            (the original is kept as ``budget_table_s``).
        confidence: two-sided confidence of the interval.
        runs: end-to-end timing runs.

    Returns:
        ``predicted_s``, ``table_s``, ``low_s``, ``high_s``, ``confidence``, ``regime``,
        ``measured_s`` (the uncontended latency, the 10th percentile of the timing runs: what the
        table predicts and the interval speaks of), ``measured_median_s`` (under the load of the
        moment), ``measured_in_interval`` and, with ``budget_s``, ``budget_s``, ``budget_met``
        (predicted, at ``confidence``) and ``measured_within_budget`` (uncontended).
    """
    from edgefit.measure import predict_latency

    pred = predict_latency(model, input_shape=tuple(input_shape), table=table, measure=True, runs=runs,
                           correction=True, confidence=confidence)
    out = {
        "predicted_s": pred.seconds,
        "table_s": pred.table_seconds,
        "low_s": pred.low_s,
        "high_s": pred.high_s,
        "confidence": confidence,
        "regime": pred.regime,
        "measured_s": pred.measured.p10_s,
        "measured_median_s": pred.measured.median_s,
        "measured_in_interval": pred.measured_in_interval,
    }
    if budget_s is not None:
        if budget_on_table and pred.table_seconds:
            out["budget_table_s"] = budget_s
            budget_s = budget_s * pred.seconds / pred.table_seconds
        out.update(budget_s=budget_s, budget_met=pred.budget_met(budget_s, confidence),
                   measured_within_budget=pred.measured.p10_s <= budget_s)
    return out


def check_markdown(check: dict) -> str:
    """One sentence: predicted with its interval, measured, inside or outside.

    >>> check_markdown({"predicted_s": 0.002, "low_s": 0.0018, "high_s": 0.0023, "confidence": 0.9,
    ...                 "measured_s": 0.0021, "measured_in_interval": True})
    'host latency: predicted 2.000 ms [1.800-2.300] (90% interval), measured 2.100 ms: inside the interval'
    """
    inside = "inside" if check["measured_in_interval"] else "outside"
    text = (f"host latency: predicted {1e3 * check['predicted_s']:.3f} ms [{1e3 * check['low_s']:.3f}-"
            f"{1e3 * check['high_s']:.3f}] ({100 * check['confidence']:.0f}% interval), measured"
            f" {1e3 * check['measured_s']:.3f} ms: {inside} the interval")
    if "measured_median_s" in check:
        text += f" (median under load {1e3 * check['measured_median_s']:.3f} ms)"
    if "budget_s" in check:
        text += (f"; budget {1e3 * check['budget_s']:.3f} ms: {'met' if check['budget_met'] else 'not met'} by the"
                 f" prediction at {100 * check['confidence']:.0f}%,"
                 f" {'met' if check['measured_within_budget'] else 'not met'} by the measurement")
    return text
