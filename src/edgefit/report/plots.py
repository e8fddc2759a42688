"""Pictures of an `Estimate`: the device roofline with every layer, and per-layer time and energy bars.

Figures are built on matplotlib's Agg canvas (no display, no global pyplot state)
and written atomically; the format follows the file suffix (``.png``, ``.svg``, ``.pdf``).

>>> import tempfile
>>> import edgefit
>>> from edgefit.zoo import create
>>> est = edgefit.estimate(edgefit.profile(create("lenet5"), input_shape=(1, 1, 32, 32)), "jetson_nano")
>>> path = save_figure(roofline_figure(est), Path(tempfile.mkdtemp()) / "roofline.png")
>>> path.read_bytes()[1:4]
b'PNG'
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from edgefit._io import atomic_write_with
from edgefit.errors import ConfigError

BOUND_COLORS = {"memory": "tab:blue", "compute": "tab:red"}
_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpg", ".jpeg": "jpg"}


def _figure(width: float, height: float, rows: int = 1):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is the 'plot' extra
        raise ConfigError("plots need matplotlib: pip install 'edgefit[plot]'") from exc
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def plotted_layers(est) -> list:
    """The layers a log-log roofline can show: some arithmetic and some bytes."""
    return [r for r in est.layers if r.ops > 0 and r.bytes > 0 and math.isfinite(r.intensity)]


def roofline_figure(est, *, label_points: bool = True):
    """The device's roof (min(peak, intensity x bandwidth)) with one labelled point per layer.

    Points are colored by bound (memory: blue, compute: red); layers without
    arithmetic (views, flatten) cannot sit on a log axis and are counted in the title.
    """
    fig, (ax,) = _figure(10, 6.5)
    peak = est.peak_ops_per_s
    bw = est.device.bandwidth_bytes_per_s
    ridge = peak / bw
    rows = plotted_layers(est)
    xs = [r.intensity for r in rows]
    lo = min([ridge / 100, *xs]) / 2
    hi = max([ridge * 100, *xs]) * 2
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(peak, x * bw) for x in grid], color="black", linewidth=2, label="roof")
    ax.axvline(ridge, color="gray", linestyle=":", linewidth=1)
    ax.annotate(
        f"ridge {ridge:.3g} op/B",
        (ridge, peak),
        textcoords="offset points",
        xytext=(4, -14),
        fontsize=8,
        color="gray",
    )
    for bound in ("memory", "compute"):
        sel = [r for r in rows if r.bound == bound]
        if sel:
            ax.scatter(
                [r.intensity for r in sel],
                [r.attainable_ops_per_s for r in sel],
                color=BOUND_COLORS[bound],
                s=22,
                zorder=3,
                label=f"{bound}-bound ({len(sel)})",
            )
    if label_points:
        for r in rows:
            ax.annotate(
                r.name or "(root)",
                (r.intensity, r.attainable_ops_per_s),
                fontsize=5,
                alpha=0.8,
                textcoords="offset points",
                xytext=(3, 2),
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (op/byte)")
    ax.set_ylabel(f"attainable performance (op/s, {est.precision})")
    hidden = len(est.layers) - len(rows)
    title = f"{est.model} on {est.device.display_name}: roofline, {len(rows)} layers"
    if hidden:
        title += f" ({hidden} without arithmetic not shown)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def layer_bars_figure(est, *, top: int | None = None):
    """Per-layer bars: roofline time (colored by bound) and energy split into compute / weights / activations."""
    rows = list(est.layers)
    if top is not None:
        rows = sorted(rows, key=lambda r: r.seconds, reverse=True)[:top]
        order = {id(r): i for i, r in enumerate(est.layers)}
        rows.sort(key=lambda r: order[id(r)])
    fig, (ax_t, ax_e) = _figure(max(8, 0.12 * len(rows) + 2), 7, rows=2)
    idx = list(range(len(rows)))
    names = [r.name or "(root)" for r in rows]
    ax_t.bar(idx, [r.seconds * 1e6 for r in rows], color=[BOUND_COLORS[r.bound] for r in rows])
    ax_t.set_ylabel("time (us)")
    ax_t.set_title(
        f"{est.model} on {est.device.display_name}: {est.totals.seconds * 1e3:.3g} ms, "
        f"{est.totals.joules * 1e3:.3g} mJ ({est.totals.data_share:.0%} moving data)",
        fontsize=10,
    )
    comp = [r.compute_joules * 1e6 for r in rows]
    wts = [r.weight_joules * 1e6 for r in rows]
    acts = [r.activation_joules * 1e6 for r in rows]
    ax_e.bar(idx, comp, color="tab:green", label="compute")
    ax_e.bar(idx, wts, bottom=comp, color="tab:orange", label="weights")
    ax_e.bar(
        idx,
        acts,
        bottom=[c + w for c, w in zip(comp, wts, strict=True)],
        color="tab:purple",
        label="activations",
    )
    ax_e.set_ylabel("energy (uJ)")
    ax_e.legend(fontsize=8)
    for ax in (ax_t, ax_e):
        ax.set_xticks(idx)
        ax.set_xticklabels(names, rotation=90, fontsize=5)
        ax.set_xlim(-0.6, len(rows) - 0.4)
    return fig


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write ``fig`` atomically; the format follows the suffix."""
    target = Path(path)
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"cannot write a plot to {target.name!r}: use a .png, .svg, .pdf or .jpg file"
        )
    try:
        return atomic_write_with(target, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))
    except OSError as exc:
        raise ConfigError(f"cannot write a plot to {target}: {exc.strerror or exc}") from None


def plot_roofline(est, path: str | os.PathLike, **kwargs) -> Path:
    """`roofline_figure` written to ``path``."""
    return save_figure(roofline_figure(est, **kwargs), path)


def plot_layer_bars(est, path: str | os.PathLike, **kwargs) -> Path:
    """`layer_bars_figure` written to ``path``."""
    return save_figure(layer_bars_figure(est, **kwargs), path)
