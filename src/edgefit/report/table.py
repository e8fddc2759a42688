"""Tables of a `Profile`: plain text (like the lectures' tables), Markdown and CSV.

Rows that neither hold parameters nor compute nor produce a counted activation
(ReLU, Dropout, Flatten...) are hidden unless ``all_layers`` is set: the
lectures' tables omit them too. Their work still counts in the totals.
"""

from __future__ import annotations

import csv
import io

CSV_FIELDS = (
    "name", "kind", "output_shape", "params", "params_without_bias", "macs", "flops", "other_ops",
    "activations", "input_elements", "output_elements", "peak_activations", "weight_bytes",
    "bytes_moved", "intensity", "bits", "calls",
)


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{suffix}{unit}"
    return f"{n:.4g}{unit}" if isinstance(n, float) else f"{n}{unit}"


def human_bytes(n: float) -> str:
    for factor, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= factor:
            return f"{n / factor:.3g} {suffix}"
    return f"{n:.0f} B"


def human_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.3g} us"
    return f"{s * 1e9:.3g} ns"


def human_joules(j: float) -> str:
    for factor, suffix in ((1, "J"), (1e-3, "mJ"), (1e-6, "uJ"), (1e-9, "nJ")):
        if j >= factor:
            return f"{j / factor:.3g} {suffix}"
    return f"{j * 1e12:.3g} pJ"


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
        headers += ["FLOP/B", "Bound", "Time", "Energy"]
    body = [["(input)", "", _shape(profile.input_shapes[0]) if profile.input_shapes else "-", "", "", f"{profile.totals.input_activations:,}"]]
    if est_rows is not None:
        body[0] += ["", "", "", ""]
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
            cells += [f"{e.intensity:.3g}", e.bound, human_seconds(e.seconds), human_joules(e.joules)]
        body.append(cells)
    t = profile.totals
    total = ["Total", "", "", f"{t.params_without_bias:,}", f"{t.macs:,}", f"{t.activations:,}"]
    if est_rows is not None:
        total += ["", "", human_seconds(estimate.totals.seconds), human_joules(estimate.totals.joules)]
    return headers, body, total


def _summary(profile, estimate=None) -> list[str]:
    t = profile.totals
    lines = [
        f"parameters: {t.params:,} ({t.params_without_bias:,} without bias)"
        + (f", {t.unused_params:,} never used by the forward" if t.unused_params else ""),
        f"model size: {human_bytes(t.model_size_bytes)} ({t.model_size_bytes:,.0f} bytes at {profile.bits}-bit weights)",
        f"MACs: {t.macs:,} ({human(t.macs)}); FLOPs = 2 x MACs = {t.flops:,}; other ops (bias, elementwise, norm, pooling, softmax): {t.other_ops:,}",
        f"activations: {t.activations:,} in total (input included); peak {t.peak_activations:,} "
        f"(input + output of {t.peak_activations_layer or '(root)'}); peak live {t.peak_live_activations:,} "
        f"= {human_bytes(t.peak_live_bytes)} at {profile.activation_bits}-bit (at {t.peak_live_layer or '(root)'})",
    ]
    if profile.uncounted:
        listed = ", ".join(f"{k} x{v}" for k, v in profile.uncounted.items())
        lines.append(f"uncounted ops (no formula, not counted): {listed}; coverage {profile.coverage:.1%} of ops")
    else:
        lines.append("uncounted ops: none (every traced op has a formula)")
    if estimate is not None:
        tt = estimate.totals
        lines.append(f"device estimate: {human_seconds(tt.seconds)}, {human_joules(tt.joules)}; {tt.fit_message}")
    return lines


def profile_table(profile, *, all_layers: bool = False, estimate=None) -> str:
    """Plain-text table with right-aligned numbers, totals and a summary."""
    headers, body, total = _columns(profile, estimate, all_layers)
    widths = [max(len(r[c]) for r in [headers, *body, total]) for c in range(len(headers))]
    left = {0, 1, 2, 7} if estimate is not None else {0, 1, 2}

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
        fields += ["bound", "seconds", "joules"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for i, row in enumerate(profile.layers):
        d = row.to_dict()
        d["output_shape"] = "x".join(map(str, row.output_shape)) if row.output_shape else ""
        if estimate is not None:
            e = estimate.layers[i]
            d.update(bound=e.bound, seconds=e.seconds, joules=e.joules)
        w.writerow([d[f] for f in fields])
    return buf.getvalue()
