"""Tables of a `Profile` and an `Estimate`: plain text (like the lectures' tables),
Markdown, CSV and JSON.

Rows that neither hold parameters nor compute nor produce a counted activation
(ReLU, Dropout, Flatten...) are hidden unless ``all_layers`` is set: the
lectures' tables omit them too. Their work still counts in the totals.

>>> import edgefit
>>> from edgefit.zoo import create
>>> p = edgefit.profile(create("lenet5"), input_shape=(1, 1, 32, 32))
>>> print(profile_table(p).splitlines()[0])
LeNet5: input 1x1x32x32
>>> render_profile(p, "csv").splitlines()[1].split(",")[:6]
['features.0', 'Conv2d', '1x6x28x28', '156', '150', '117600']
"""

from __future__ import annotations

import csv
import io
import json

from edgefit.units import format_bytes, human_joules, human_seconds, si

CSV_FIELDS = (
    "name", "kind", "output_shape", "params", "params_without_bias", "macs", "flops", "other_ops",
    "activations", "input_elements", "output_elements", "peak_activations", "weight_bytes",
    "bytes_moved", "intensity", "bits", "activation_bits", "bit_ops", "calls",
)


def _shape(shape) -> str:
    if shape is None:
        return "-"
    dims = list(shape[1:]) if len(shape) > 1 else list(shape)
    return "\u00d7".join(str(d) for d in dims) if dims else "scalar"


def _visible(profile, all_layers: bool):
    for i, row in enumerate(profile.layers):
        if all_layers or row.params or row.macs or row.activations:
            yield i, row


def _columns(profile, estimate, all_layers):
    headers = ["Layer", "Kind", "Output", "Params", "MACs", "Activations"]
    est_rows = list(estimate.layers) if estimate is not None else None
    if est_rows is not None:
        headers += ["At", "FLOP/B", "Bound", "Time", "Energy"]
    body = [["(input)", "", _shape(profile.input_shapes[0]) if profile.input_shapes else "-", "", "", f"{profile.totals.input_activations:,}"]]
    if est_rows is not None:
        body[0] += ["", "", "", "", ""]
    for i, row in _visible(profile, all_layers):
        cells = [
            row.name or "(root)",
            row.kind,
            _shape(row.output_shape),
            f"{row.params_without_bias:,}" if row.params else "",
            f"{row.macs:,}" if row.macs else "",
            f"{row.activations:,}" if row.activations else "",
        ]
        if est_rows is not None:
            e = est_rows[i]
            cells += [e.precision, f"{e.intensity:.3g}", e.bound, human_seconds(e.seconds), human_joules(e.joules)]
        body.append(cells)
    t = profile.totals
    total = ["Total", "", "", f"{t.params_without_bias:,}", f"{t.macs:,}", f"{t.activations:,}"]
    if est_rows is not None:
        total += ["", "", "", human_seconds(estimate.totals.seconds), human_joules(estimate.totals.joules)]
    return headers, body, total


def _summary(profile, estimate=None) -> list[str]:
    t = profile.totals
    lines = [
        f"parameters: {t.params:,} ({t.params_without_bias:,} without bias)"
        + (f", {t.unused_params:,} never used by the forward" if t.unused_params else ""),
        f"model size: {format_bytes(t.model_size_bytes)} ({t.model_size_bytes:,.0f} bytes at {_widths(profile)})",
        f"MACs: {t.macs:,} ({si(t.macs, compact=True)}); FLOPs = 2 x MACs = {t.flops:,}; other ops (bias, elementwise, norm, pooling, softmax): {t.other_ops:,}",
        f"activations: {t.activations:,} in total (input included); peak {t.peak_activations:,} "
        f"(input + output of {t.peak_activations_layer or '(root)'}); peak live {t.peak_live_activations:,} "
        f"= {format_bytes(t.peak_live_bytes)} at {profile.activation_bits}-bit (at {t.peak_live_layer or '(root)'})",
    ]
    if profile.uncounted:
        listed = ", ".join(f"{k} x{v}" for k, v in profile.uncounted.items())
        lines.append(f"uncounted ops (no formula, not counted): {listed}; coverage {profile.coverage:.1%} of ops")
    else:
        lines.append("uncounted ops: none (every traced op has a formula)")
    if estimate is not None:
        tt = estimate.totals
        lines.append(f"device estimate: {human_seconds(tt.seconds)}, {human_joules(tt.joules)}; {tt.fit_message}")
        lines += [f"note: {n}" for n in estimate.notes]
    if t.bit_ops:
        lines.append(f"binary layers: {t.bit_ops:,} XNOR + popcount bit operations (2 per binary MAC)")
    return lines


def _widths(profile) -> str:
    """``32-bit weights``, or the per-layer widths of a quantized model."""
    widths = sorted({r.bits for r in profile.layers if r.params}, reverse=True)
    if len(widths) <= 1:
        return f"{widths[0] if widths else profile.bits}-bit weights"
    return f"per-layer weight widths {'/'.join(map(str, widths))} bits"


def profile_table(profile, *, all_layers: bool = False, estimate=None) -> str:
    """Plain-text table with right-aligned numbers, totals and a summary."""
    headers, body, total = _columns(profile, estimate, all_layers)
    widths = [max(len(r[c]) for r in [headers, *body, total]) for c in range(len(headers))]
    left = {0, 1, 2, 6, 8} if estimate is not None else {0, 1, 2}

    def fmt(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    rule = "-" * len(fmt(headers))
    out = [f"{profile.model}: input {', '.join('x'.join(map(str, s)) for s in profile.input_shapes)}", fmt(headers), rule]
    out += [fmt(r) for r in body]
    out += [rule, fmt(total), ""]
    out += _summary(profile, estimate)
    return "\n".join(out)


def profile_markdown(profile, *, all_layers: bool = False, estimate=None) -> str:
    headers, body, total = _columns(profile, estimate, all_layers)
    align = ["---" if i in (0, 1, 2) else "---:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines.append("| " + " | ".join(f"**{c}**" if c else "" for c in total) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in _summary(profile, estimate)) + "\n"


def profile_csv(profile, estimate=None) -> str:
    buf = io.StringIO()
    fields = list(CSV_FIELDS)
    if estimate is not None:
        fields += ["precision", "bound", "seconds", "joules"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for i, row in enumerate(profile.layers):
        d = row.to_dict()
        d["output_shape"] = "x".join(map(str, row.output_shape)) if row.output_shape else ""
        if estimate is not None:
            e = estimate.layers[i]
            d.update(precision=e.precision, bound=e.bound, seconds=e.seconds, joules=e.joules)
        w.writerow([d[f] for f in fields])
    return buf.getvalue()


def profile_dict(profile, estimate=None) -> dict:
    """The profile's dict, with the estimate's per-layer and total figures merged in."""
    data = profile.to_dict()
    if estimate is not None:
        ed = estimate.to_dict()
        data["device"] = ed.get("device")
        for row, extra in zip(data["layers"], ed["layers"], strict=True):
            row.update({k: v for k, v in extra.items() if k != "name"})
        data["totals"].update(ed["totals"])
    return data


FORMATS = ("table", "json", "csv", "markdown")


def render_profile(profile, fmt: str = "table", *, all_layers: bool = False, estimate=None) -> str:
    """A profile (and optional estimate) as ``table``, ``json``, ``csv`` or ``markdown`` text."""
    if fmt == "json":
        return json.dumps(profile_dict(profile, estimate), indent=2, default=str)
    if fmt == "csv":
        return profile_csv(profile, estimate)
    if fmt == "markdown":
        return profile_markdown(profile, all_layers=all_layers, estimate=estimate)
    if fmt == "table":
        return profile_table(profile, all_layers=all_layers, estimate=estimate)
    from edgefit.errors import ConfigError

    raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def estimate_summary(est) -> list[str]:
    """A few lines: latency by both models, energy and its data share, bounds, saturation, fit."""
    t = est.totals
    dev = est.device
    lines = [
        f"{est.model} on {dev.display_name} at {_precisions(est)}: peak {si(est.peak_ops_per_s, 'op/s')}, "
        f"bandwidth {si(dev.bandwidth_bytes_per_s, 'B/s')}, ridge {est.ridge_point:.3g} op/B",
        f"  latency (roofline):               {human_seconds(t.seconds)}  "
        f"({t.memory_bound_layers} memory-bound, {t.compute_bound_layers} compute-bound layers)",
        f"  latency (T_compute + T_data):     {human_seconds(t.serial_seconds)}  "
        f"(= {human_seconds(t.compute_seconds)} + {human_seconds(t.data_seconds)})",
        f"  energy (45 nm-style model):       {human_joules(t.joules)}, {t.data_share:.0%} spent moving data",
        f"  throughput saturates at batch {t.saturation_batch}: {t.max_throughput_per_s:.3g} inferences/s",
        f"  memory: {t.fit_message}",
    ]
    lines += [f"  note: {n}" for n in est.notes]
    return lines


def _precisions(est) -> str:
    """``int8``, or ``int8 (most work; per layer: fp32 x2, int8 x5, binary x1)`` when layers differ."""
    counts: dict[str, int] = {}
    for r in est.layers:
        counts[r.precision or est.precision] = counts.get(r.precision or est.precision, 0) + 1
    if len(counts) <= 1:
        return est.precision
    return f"{est.precision} (most work; per layer: {', '.join(f'{p} x{n}' for p, n in counts.items())})"


def estimate_table(est, *, top: int | None = None) -> str:
    """Per-layer roofline table of an `Estimate`; ``top``: only the slowest layers."""
    rows = list(est.layers)
    if top:
        rows = sorted(rows, key=lambda r: r.seconds, reverse=True)[:top]
    header = ("layer", "kind", "at", "op/B", "bound", "attainable", "time", "energy", "data%")
    body = [
        (
            r.name or "(root)",
            r.kind,
            r.precision or est.precision,
            "inf" if r.intensity == float("inf") else f"{r.intensity:.3g}",
            r.bound,
            si(r.attainable_ops_per_s, "op/s"),
            human_seconds(r.seconds),
            human_joules(r.joules),
            f"{r.data_share:.0%}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]

    def fmt(cells) -> str:
        return "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(b) for b in body)])


def bench_lines(result) -> list[str]:
    """A `edgefit.measure.BenchResult` as text: measured latency beside the estimate, the sweep."""
    est, lat = result.estimate, result.latency
    lines = [
        f"{result.model} on {est.device.display_name}, {result.threads} threads",
        f"  measured latency: median {human_seconds(lat.median_s)}, p90 {human_seconds(lat.p90_s)} "
        f"over {lat.runs} runs ({result.warmup} warm-up)",
        f"  estimated:        roofline {human_seconds(est.totals.seconds)}, "
        f"T_compute + T_data {human_seconds(est.totals.serial_seconds)}",
        f"  measured / roofline estimate: {result.measured_over_estimate:.2f}x",
    ]
    if result.sweep:
        lines.append("\n  batch  latency (median)  throughput (items/s)  estimated (items/s)")
        lines += [
            f"  {p.batch:5d}  {human_seconds(p.latency.median_s):>16}  {p.items_per_s:20.1f}  "
            f"{est.throughput(p.batch):19.1f}"
            for p in result.sweep
        ]
        lines.append("  (bigger batches: more items per second, but each batch waits longer: latency vs throughput)")
    return lines
