"""Inline SVG charts for the HTML report: no scripts, no external references.

Every chart is a plain string of SVG markup with a ``data-chart`` attribute and
one element per plotted item (``<circle>`` or ``<rect>`` with a ``<title>``
tooltip), so a browser test can count what was drawn. Every label passes
through `esc`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
BOUND_COLORS = {"memory": "#1f77b4", "compute": "#d62728"}


def esc(text: object) -> str:
    """Text safe inside an HTML/SVG element or a quoted attribute.

    >>> esc('<script>alert("x")</script>')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    """
    return escape(str(text), quote=True)


def num(x: float) -> str:
    """A coordinate, short: ``12.5`` not ``12.500000001``."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _log_ticks(lo: float, hi: float) -> list[float]:
    return [10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def _lin_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _sci(v: float) -> str:
    return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


class Axes:
    """A plot box of ``width`` x ``height`` pixels with linear or log x/y scales."""

    def __init__(self, x_range, y_range, *, log_x=False, log_y=False, width=640, height=360):
        self.log_x, self.log_y = log_x, log_y
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.width, self.height = width, height
        self.left, self.right, self.top, self.bottom = 70, 16, 14, 44

    def _f(self, v, lo, hi, log):
        if log:
            v, lo, hi = math.log10(max(v, 1e-300)), math.log10(lo), math.log10(hi)
        return 0.0 if hi == lo else (v - lo) / (hi - lo)

    def x(self, v: float) -> float:
        return self.left + self._f(v, self.x0, self.x1, self.log_x) * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        plot_h = self.height - self.top - self.bottom
        return self.top + (1 - self._f(v, self.y0, self.y1, self.log_y)) * plot_h

    def frame(self, x_label: str, y_label: str, fmt_x=_sci, fmt_y=_sci) -> list[str]:
        """Axes lines, ticks with grid lines, and the two axis labels."""
        out = []
        bx, by = self.height - self.bottom, self.left
        xt = _log_ticks(self.x0, self.x1) if self.log_x else _lin_ticks(self.x0, self.x1)
        yt = _log_ticks(self.y0, self.y1) if self.log_y else _lin_ticks(self.y0, self.y1)
        for t in xt:
            if self.x0 <= t <= self.x1:
                px = num(self.x(t))
                out.append(f'<line class="grid" x1="{px}" y1="{self.top}" x2="{px}" y2="{bx}"/>'
                           f'<text x="{px}" y="{bx + 16}" text-anchor="middle">{esc(fmt_x(t))}</text>')
        for t in yt:
            if self.y0 <= t <= self.y1:
                py = num(self.y(t))
                out.append(f'<line class="grid" x1="{by}" y1="{py}" x2="{self.width - self.right}" y2="{py}"/>'
                           f'<text x="{by - 6}" y="{py}" text-anchor="end" dominant-baseline="middle">'
                           f"{esc(fmt_y(t))}</text>")
        out.append(f'<line class="axis" x1="{by}" y1="{bx}" x2="{self.width - self.right}" y2="{bx}"/>'
                   f'<line class="axis" x1="{by}" y1="{self.top}" x2="{by}" y2="{bx}"/>')
        out.append(f'<text x="{num((self.left + self.width - self.right) / 2)}" y="{self.height - 6}" '
                   f'text-anchor="middle" class="label">{esc(x_label)}</text>')
        out.append(f'<text transform="translate(14 {num((self.top + bx) / 2)}) rotate(-90)" '
                   f'text-anchor="middle" class="label">{esc(y_label)}</text>')
        return out

    def svg(self, kind: str, body: list[str], title: str) -> str:
        return (f'<svg class="chart" data-chart="{esc(kind)}" '
                f'viewBox="0 0 {self.width} {self.height}" width="{self.width}" height="{self.height}" '
                f'role="img" aria-label="{esc(title)}">{"".join(body)}</svg>')


def _span(values: Sequence[float], log: bool, pad: float = 0.05) -> tuple[float, float]:
    vals = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
    if not vals:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if log:
        return lo / 2, hi * 2
    if hi == lo:
        return lo - 1, hi + 1
    d = (hi - lo) * pad
    return lo - d, hi + d


def roofline_svg(series: Sequence[tuple[str, object]], title: str) -> str:
    """The roof of one device with every layer of each (label, `Estimate`) as a point.

    The roof is min(peak, intensity x bandwidth) (reference/001); points are
    colored by bound, shaped per model (circle, square, diamond...), and layers
    without arithmetic or bytes (views) cannot sit on a log axis: the caller
    lists them.
    """
    est0 = series[0][1]
    peak, bw = est0.peak_ops_per_s, est0.device.bandwidth_bytes_per_s
    ridge = peak / bw
    pts = [(label, r) for label, est in series for r in est.layers if plottable(r)]
    xs = [r.intensity for _, r in pts] + [ridge / 10, ridge * 10]
    x_lo, x_hi = _span(xs, True)
    ys = [r.ops / r.seconds for _, r in pts if r.seconds > 0] + [peak]
    y_lo = min(min(ys), x_lo * bw) / 2
    ax = Axes((x_lo, x_hi), (y_lo, peak * 2), log_x=True, log_y=True)
    body = ax.frame("operational intensity (op/B)", "performance (op/s)")
    roof = [(x_lo, x_lo * bw), (ridge, peak), (x_hi, peak)]
    body.append('<polyline class="roof" points="' + " ".join(f"{num(ax.x(a))},{num(ax.y(b))}" for a, b in roof) + '"/>')
    body.append(f'<text x="{num(ax.x(ridge))}" y="{num(ax.y(peak) - 4)}" class="note">ridge {ridge:.3g} op/B</text>')
    labels = [label for label, _ in series]
    for label, r in pts:
        k = labels.index(label)
        cx, cy = num(ax.x(r.intensity)), num(ax.y(r.ops / r.seconds if r.seconds > 0 else peak))
        tip = f"{label}: {r.name} ({r.kind}), {r.intensity:.3g} op/B, {r.bound}-bound"
        body.append(_marker(k, cx, cy, BOUND_COLORS.get(r.bound, "#555"), tip))
    return ax.svg("roofline", body, title)


def plottable(row) -> bool:
    """A layer with arithmetic and bytes: it has a place on a log-log roofline."""
    return row.ops > 0 and row.bytes > 0 and math.isfinite(row.intensity)


def _marker(k: int, cx: str, cy: str, color: str, tip: str) -> str:
    t = f"<title>{esc(tip)}</title>"
    if k % 3 == 0:
        return f'<circle class="pt" cx="{cx}" cy="{cy}" r="4" fill="{color}">{t}</circle>'
    if k % 3 == 1:
        return (f'<rect class="pt" x="{num(float(cx) - 4)}" y="{num(float(cy) - 4)}" width="8" height="8" '
                f'fill="none" stroke="{color}" stroke-width="1.5">{t}</rect>')
    return (f'<rect class="pt" x="{num(float(cx) - 3.5)}" y="{num(float(cy) - 3.5)}" width="7" height="7" '
            f'fill="{color}" transform="rotate(45 {cx} {cy})">{t}</rect>')


def bars_svg(
    names: Sequence[str],
    panels: Sequence[tuple[str, Sequence[float], Callable[[float], str], Sequence[str]]],
    title: str,
) -> str:
    """Horizontal bars, one row per layer, one panel per quantity.

    Args:
        names: layer names, top to bottom.
        panels: (heading, values, formatter, colors) per panel, e.g. time and energy.
        title: the chart's accessible name.
    """
    row_h, name_w, panel_w, head = 14, 190, 300, 22
    width = name_w + panel_w * len(panels) + 16
    height = head + row_h * len(names) + 8
    body = []
    for i, name in enumerate(names):
        y = head + i * row_h
        short = name if len(name) <= 30 else "\u2026" + name[-29:]
        body.append(f'<text x="{name_w - 6}" y="{y + 10}" text-anchor="end">{esc(short)}</text>')
    for p, (heading, values, fmt, colors) in enumerate(panels):
        x0 = name_w + p * panel_w
        body.append(f'<text x="{x0}" y="14" class="label">{esc(heading)}</text>')
        top = max(values, default=0) or 1.0
        for i, (name, v) in enumerate(zip(names, values, strict=True)):
            w = max(0.0, v / top * (panel_w - 80))
            y = head + i * row_h
            body.append(f'<rect class="bar" x="{x0}" y="{y + 2}" width="{num(w)}" height="{row_h - 4}" '
                        f'fill="{colors[i]}"><title>{esc(name)}: {esc(fmt(v))}</title></rect>'
                        f'<text x="{num(x0 + w + 3)}" y="{y + 10}" class="value">{esc(fmt(v))}</text>')
    return (f'<svg class="chart" data-chart="bars" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{esc(title)}">{"".join(body)}</svg>')


def lines_svg(series, x_label: str, y_label: str, title: str, *, log_x=False, percent_x=False,
              percent_y=False) -> str:
    """One polyline with point markers per series ``{name: [(x, y), ...]}``."""
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    ax = Axes(_span(xs, log_x, 0.02), _span(ys, False), log_x=log_x)
    pct = lambda v: f"{100 * v:.0f}%"  # noqa: E731
    body = ax.frame(x_label, y_label, pct if percent_x else (_sci if log_x else _short),
                    pct if percent_y else _short)
    for k, (name, pts) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        body.append(f'<polyline class="line" stroke="{color}" points="'
                    + " ".join(f"{num(ax.x(x))},{num(ax.y(y))}" for x, y in pts) + '"/>')
        for x, y in pts:
            tip = f"{name}: {_short(x)}, {_short(y)}"
            body.append(_marker(0, num(ax.x(x)), num(ax.y(y)), color, tip))
    body.append(_legend(list(series), ax))
    return ax.svg("lines", body, title)


def scatter_svg(points, x_label: str, y_label: str, title: str, *, log_x=False, front=True) -> str:
    """Labelled points ``[(label, x, y)]``; with ``front``, the Pareto front (lower x, higher y) joined."""
    ax = Axes(_span([p[1] for p in points], log_x), _span([p[2] for p in points], False), log_x=log_x)
    body = ax.frame(x_label, y_label, _sci if log_x else _short, _short)
    if front:
        best, line = -math.inf, []
        for _, x, y in sorted(points, key=lambda p: (p[1], -p[2])):
            if y > best:
                best = y
                line.append((x, y))
        body.append('<polyline class="line front" stroke="#2ca02c" points="'
                    + " ".join(f"{num(ax.x(x))},{num(ax.y(y))}" for x, y in line) + '"/>')
    for label, x, y in points:
        body.append(_marker(0, num(ax.x(x)), num(ax.y(y)), PALETTE[0], f"{label}: {_short(x)}, {_short(y)}"))
    return ax.svg("scatter", body, title)


def _short(v: float) -> str:
    return f"{v:.3g}"


def _legend(names: list[str], ax: Axes) -> str:
    out = []
    for k, name in enumerate(names):
        y = ax.top + 6 + 14 * k
        x = ax.width - ax.right - 150
        out.append(f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
                   f'<text x="{x + 14}" y="{y + 1}">{esc(name)}</text>')
    return "".join(out)
