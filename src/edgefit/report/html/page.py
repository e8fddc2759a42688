"""Render the report page from collected results, and `html_report`, the one call that does it all.

Layout: summary cards per model (every number tagged counted / measured /
estimated), a side-by-side table with ratios when models are compared, one
section per device (roofline of every layer of every model, per-layer time and
energy bars), a sortable and filterable per-layer table per model, then the
model's own sections (Deep Compression stages, sensitivity curves) and any
``extra_sections``, and what was not counted or measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from edgefit.errors import ConfigError
from edgefit.report.html import sections as sec
from edgefit.report.html.collect import (
    DEFAULT_DEVICES,
    ModelResult,
    ReportModel,
    check_output,
    check_same_inputs,
    collect,
    load_report_model,
    ratio,
)
from edgefit.report.html.svg import BOUND_COLORS, bars_svg, esc, roofline_svg
from edgefit.units import format_bytes, human_joules, human_seconds, si


@dataclass(frozen=True)
class HtmlReport:
    """What `html_report` produced.

    Attributes:
        html: the page.
        path: where it was written (None when no output was given).
        results: one `ModelResult` per model, in page order.
        seconds: wall time to build the page.
    """

    html: str
    path: Path | None
    results: tuple[ModelResult, ...]
    seconds: float

    @property
    def bytes(self) -> int:
        return len(self.html.encode())


def html_report(
    models: Sequence[str | os.PathLike | ReportModel],
    output: str | os.PathLike | None = None,
    *,
    devices: Sequence = DEFAULT_DEVICES,
    dataset: str | None = None,
    input_shape=None,
    measure: bool = True,
    sensitivity: bool = False,
    extra_sections: Sequence = (),
    title: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> HtmlReport:
    """One self-contained HTML page of ``models`` on ``devices``, written atomically.

    Args:
        models: the first is the baseline; others are compared with it. Each is a
            `ReportModel` or a MODEL argument (see `load_report_model`).
        output: the ``.html`` file to write (None: only return the page).
        devices: device names, files or `Device` objects.
        dataset: ``"digits"`` or a ``.npz``: accuracy of the models with trained weights.
        input_shape: example input shapes for MODEL arguments that need them.
        measure: time each model on this host (latency at batch 1, throughput).
        sensitivity: also scan per-layer pruning sensitivity of trained,
            uncompressed models (needs ``dataset``).
        extra_sections: `TableSection` / `CurvesSection` / `ScatterSection` data
            (a Pareto front, a NetAdapt family...) shown after the built-in sections.
        title: the page title.
        on_step: called with a short description before each step (progress bars).

    Raises:
        ConfigError: no models, models with different inputs, an unwritable output.
        DeviceError: an unknown device.
    """
    from edgefit.hardware import get_device

    t0 = time.perf_counter()
    if not models:
        raise ConfigError("give at least one model for the report")
    target = check_output(output) if output is not None else None
    devs = [get_device(d) for d in devices]
    entries = [m if isinstance(m, ReportModel) else load_report_model(m, input_shape=input_shape, materialize=measure)
               for m in models]
    check_same_inputs(entries)
    data = _dataset(dataset)
    if sensitivity:
        _add_sensitivity(entries, data)
    results = tuple(collect(e, devs, data=data, measure=measure, on_step=on_step) for e in entries)
    if on_step:
        on_step("render the page")
    page = render_page(results, devs, extra_sections=extra_sections, title=title)
    if target is not None:
        from edgefit._io import atomic_write

        atomic_write(target, page)
    return HtmlReport(page, target, results, time.perf_counter() - t0)


def _dataset(name):
    if name is None:
        return None
    from edgefit.data import load_dataset

    return load_dataset(name)


def _add_sensitivity(entries: list[ReportModel], data) -> None:
    from edgefit.compress.prune import sensitivity_scan

    if data is None:
        raise ConfigError("the sensitivity scan needs a dataset (--dataset digits)")
    for e in entries:
        if e.trained and e.stages is None:
            e.sections = (*e.sections, sec.sensitivity_section(sensitivity_scan(e.model, data), e.label))


# ---------------------------------------------------------------- the page


def _asset(name: str) -> str:
    return resources.files("edgefit.report.html").joinpath(name).read_text(encoding="utf-8")


def render_page(results: Sequence[ModelResult], devices: Sequence, *, extra_sections=(), title=None) -> str:
    """The complete HTML document (styles and script inline, charts as inline SVG)."""
    from edgefit import __version__

    sec._COUNTER["n"] = 0
    title = title or "edgefit report: " + " vs ".join(r.entry.label for r in results)
    parts = [f"<h1>{esc(title)}</h1>", _subtitle(results, devices), _legend(), _cards(results, devices)]
    if len(results) > 1:
        parts.append(_comparison(results, devices))
    parts += [_device_section(results, d) for d in devices]
    parts += [_layer_section(i, r, devices) for i, r in enumerate(results)]
    for r in results:
        parts += _model_sections(r)
    parts += [sec.render_section(s) for s in extra_sections]
    parts.append(_missing(results))
    return Template(_asset("template.html")).substitute(
        title=esc(title), generator=esc(f"edgefit {__version__}"), css=_asset("page.css"),
        js=_asset("page.js"), body="\n".join(parts))


def _subtitle(results, devices) -> str:
    shapes = "; ".join("x".join(map(str, s)) for s in results[0].entry.input_shapes)
    devs = ", ".join(d.display_name for d in devices) or "none"
    return (f'<p class="sub">input {esc(shapes)} ({esc(results[0].entry.input_dtype)}); devices: {esc(devs)}; '
            f"host measurements taken on a machine shared with other work, so they vary between runs</p>")


def _legend() -> str:
    return ('<p class="note legend"><span><span class="tag counted">counted</span> exact, from one traced '
            'forward pass</span><span><span class="tag measured">measured</span> timed on this host, read from '
            'disk or evaluated on data</span><span><span class="tag estimated">estimated</span> the device '
            'model: roofline time, 45 nm energy table, memory fit</span></p>')


def _metric(i: int, key: str, label: str, value, text: str, kind: str) -> str:
    v = f' data-v="{value!r}"' if value is not None else ""
    return (f'<div class="metric" data-model="{i}" data-metric="{esc(key)}"{v}><span class="k">{esc(label)}</span>'
            f'<span class="v">{esc(text)}</span><span class="tag {kind}">{kind}</span></div>')


def _cards(results, devices) -> str:
    cards = [_card(i, r, devices) for i, r in enumerate(results)]
    return '<h2>Summary</h2><div class="cards">' + "".join(cards) + "</div>"


def _card(i: int, r: ModelResult, devices) -> str:
    t = r.profile.totals
    m = [_metric(i, "params", "parameters", t.params, f"{t.params:,}", "counted"),
         _metric(i, "model_size_bytes", f"weights at {_bits(r)}", t.model_size_bytes, format_bytes(t.model_size_bytes),
                 "counted"),
         _metric(i, "macs", "MACs", t.macs, f"{t.macs:,}", "counted"),
         _metric(i, "flops", "FLOPs (2 x MACs)", t.flops, si(t.flops, compact=True), "counted"),
         _metric(i, "peak_activations", f"peak activations (at {t.peak_activations_layer or 'input'})",
                 t.peak_activations, f"{t.peak_activations:,}", "counted")]
    if r.file_bytes is not None:
        m.append(_metric(i, "file_bytes", f"bytes on disk ({r.entry.file_path.name})", r.file_bytes,
                         f"{r.file_bytes:,} B", "measured"))
    if r.latency is not None:
        lat = r.latency
        m.append(_metric(i, "host_latency_s", f"host latency, 1 thread, batch 1 (median of {lat.runs}, p90 "
                         f"{human_seconds(lat.p90_s)})", lat.median_s, human_seconds(lat.median_s), "measured"))
        batch, ips = r.throughput
        m.append(_metric(i, "host_throughput", f"host throughput, 1 thread, batch {batch}", ips, f"{ips:,.1f} /s",
                         "measured"))
    if r.accuracy is not None:
        m.append(_metric(i, "accuracy", f"test accuracy ({r.dataset})", r.accuracy, f"{100 * r.accuracy:.2f}%",
                         "measured"))
    m += [_device_metrics(i, r.estimates[d.name], d) for d in devices]
    desc = f'<p class="note">{esc(r.entry.description)}</p>' if r.entry.description else ""
    return f'<div class="card" data-model="{i}"><h3>{esc(r.entry.label)}</h3>{desc}{"".join(m)}</div>'


def _bits(r: ModelResult) -> str:
    bits = r.entry.bits
    if isinstance(bits, int):
        return f"{bits} bits"
    widths = sorted({b for k, b in bits.items() if k != "default"})
    return "/".join(map(str, widths)) + " bits (codebooks)" if widths else f"{bits.get('default', 32)} bits"


def _device_metrics(i: int, est, device) -> str:
    t, d = est.totals, device.name
    fit_cls = "fit-yes" if t.fits else "fit-no"
    rows = [_metric(i, f"seconds@{d}", f"latency ({est.precision}, roofline)", t.seconds,
                    human_seconds(t.seconds), "estimated"),
            _metric(i, f"joules@{d}", f"energy ({100 * t.data_share:.0f}% moving data)", t.joules,
                    human_joules(t.joules), "estimated"),
            _metric(i, f"data_share@{d}", "energy share moving data", t.data_share, f"{100 * t.data_share:.1f}%",
                    "estimated"),
            _metric(i, f"throughput@{d}", f"max throughput (batch {t.saturation_batch})",
                    t.max_throughput_per_s, f"{t.max_throughput_per_s:,.1f} /s", "estimated")]
    verdict = (f'<div class="metric {fit_cls}" data-model="{i}" data-metric="fits@{esc(d)}" data-v="{t.fits!r}">'
               f'<span class="k">{esc(t.fit_message)}</span><span class="tag estimated">estimated</span></div>')
    return (f'<div class="device"><span class="name">{esc(device.display_name)}</span>'
            f'{"".join(rows)}{verdict}</div>')


# ---------------------------------------------------------------- comparison, devices, layers


def _comparison_rows(r: ModelResult, devices) -> list[tuple[str, float | None, Callable]]:
    t = r.profile.totals
    rows = [("bytes on disk", r.file_bytes, lambda v: f"{v:,.0f} B"),
            ("parameters", t.params, lambda v: f"{v:,.0f}"),
            ("weights at bit width (bytes)", t.model_size_bytes, format_bytes),
            ("MACs", t.macs, lambda v: f"{v:,.0f}"),
            ("peak activations", t.peak_activations, lambda v: f"{v:,.0f}"),
            ("host latency (s)", r.latency.median_s if r.latency else None, human_seconds),
            ("host throughput (/s)", r.throughput[1] if r.throughput else None, lambda v: f"{v:,.1f}"),
            ("test accuracy", r.accuracy, lambda v: f"{100 * v:.2f}%")]
    for d in devices:
        e = r.estimates[d.name].totals
        rows += [(f"latency on {d.display_name} (s)", e.seconds, human_seconds),
                 (f"energy on {d.display_name} (J)", e.joules, human_joules)]
    return rows


def _comparison(results, devices) -> str:
    base = _comparison_rows(results[0], devices)
    others = [_comparison_rows(r, devices) for r in results[1:]]
    head = "<th>metric</th>" + "".join(f"<th>{esc(r.entry.label)}{' (baseline)' if not k else ''}</th>"
                                       for k, r in enumerate(results))
    head += "".join(f"<th>{esc(r.entry.label)} / baseline</th>" for r in results[1:])
    body = []
    for k, (name, v0, fmt) in enumerate(base):
        cells = [f"<td>{esc(name)}</td>", _valcell(v0, fmt)] + [_valcell(o[k][1], fmt) for o in others]
        cells += [_valcell(ratio(o[k][1], v0), lambda x: f"{x:.3g}x") for o in others]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<h2>Side by side</h2><div class="wide"><table class="compare" id="compare"><thead><tr>{head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>')


def _valcell(v, fmt) -> str:
    if v is None:
        return '<td class="n na">not measured</td>'
    return f'<td class="n" data-v="{v!r}">{esc(fmt(v))}</td>'


def _device_section(results, device) -> str:
    ests = [(r.entry.label, r.estimates[device.name]) for r in results]
    e0 = ests[0][1]
    head = (f'<h2>{esc(device.display_name)}</h2><p class="note">estimated at {esc(e0.precision)}: peak '
            f"{e0.peak_ops_per_s:.3g} op/s, bandwidth {device.bandwidth_bytes_per_s:.3g} B/s, ridge "
            f"{e0.ridge_point:.3g} op/B. Points: blue memory-bound, red compute-bound; "
            + ", ".join(f"{esc(label)} {_SHAPES[k % 3]}" for k, (label, _) in enumerate(ests)) + "</p>")
    charts = [f'<div class="chartbox">{roofline_svg(ests, f"roofline on {device.display_name}")}</div>']
    for label, est in ests:
        charts.append(f"<h3>Per-layer time and energy of {esc(label)} on {esc(device.display_name)}</h3>"
                      f'<div class="chartbox">{_bars(label, est)}</div>')
    return "<section class=\"device-section\">" + head + "".join(charts) + "</section>"


_SHAPES = ("circles", "open squares", "diamonds")


def _bars(label: str, est) -> str:
    rows = [r for r in est.layers if r.seconds > 0 or r.joules > 0]
    names = [r.name or "(root)" for r in rows]
    time_colors = [BOUND_COLORS[r.bound] for r in rows]
    return bars_svg(names, [("time (roofline)", [r.seconds for r in rows], human_seconds, time_colors),
                            ("energy", [r.joules for r in rows], human_joules, ["#9467bd"] * len(rows))],
                    f"per-layer time and energy of {label}")


def _layer_section(i: int, r: ModelResult, devices) -> str:
    cols = ["layer", "kind", "input", "output", "params", "MACs", "activations", "intensity (FLOP/B)"]
    for d in devices:
        cols += [f"bound {d.name}", f"time {d.name}", f"energy {d.name}"]
    rows = [_layer_row(k, r, devices) for k in range(len(r.profile.layers))]
    table_id = f"layers-{i}"
    return (f"<h2>Layers of {esc(r.entry.label)}</h2>"
            f'<input class="filter" type="search" placeholder="filter layers" data-table="{table_id}">'
            f'<div class="scroll">{sec.table_html(cols, (), table_id, raw_rows=rows)}</div>'
            f'<p class="note">every traced row; params, MACs and activations counted, time and energy '
            f"estimated per device</p>")


def _shape(s) -> str:
    return "x".join(map(str, s)) if s else "-"


def _layer_row(k: int, r: ModelResult, devices) -> str:
    row = r.profile.layers[k]
    cells = [f'<td data-v="{esc(row.name or "(root)")}">{esc(row.name or "(root)")}</td>', f"<td>{esc(row.kind)}</td>",
             f"<td>{esc('; '.join(_shape(s) for s in row.input_shapes))}</td>", f"<td>{esc(_shape(row.output_shape))}</td>",
             sec.cell(row.params), sec.cell(row.macs), sec.cell(row.activations), sec.cell(row.intensity)]
    for d in devices:
        e = r.estimates[d.name].layers[k]
        cells += [f"<td>{esc(e.bound)}</td>", _valcell(e.seconds, human_seconds), _valcell(e.joules, human_joules)]
    return f'<tr data-layer="{esc(row.name)}">' + "".join(cells) + "</tr>"


def _model_sections(r: ModelResult) -> list[str]:
    out = []
    if r.entry.stages is not None:
        out.append(sec.render_section(sec.compression_section(r.entry.stages, r.entry.label)))
    out += [sec.render_section(s) for s in r.entry.sections]
    return out


def _missing(results) -> str:
    items = []
    for r in results:
        label = r.entry.label
        items += [f"{label}: {m}" for m in r.not_measured]
        if r.profile.uncounted:
            ops = ", ".join(f"{k} x{v}" for k, v in sorted(r.profile.uncounted.items()))
            items.append(f"{label}: ops with no cost formula (coverage {100 * r.profile.coverage:.1f}%): {ops}")
        items += [f"{label} on {e.device.display_name}: {n}" for e in r.estimates.values() for n in e.notes]
        if r.entry.stages is not None:
            items.append(f"{label}: MACs are counted dense; sparse execution is not modelled")
    lis = "".join(f"<li>{esc(x)}</li>" for x in items) or "<li>nothing: every figure above was counted</li>"
    return f'<h2>Not counted or not measured</h2><ul class="missing">{lis}</ul>'
