"""A stacked bar per dataflow of the energy by level (ALU, RF, array, buffer, DRAM),
normalized to RS, like the Eyeriss paper's figures."""

from __future__ import annotations

import os
from pathlib import Path

from edgefit.report.plots import _figure, save_figure

LEVEL_COLORS = {"alu": "tab:gray", "rf": "tab:green", "array": "tab:orange", "buffer": "tab:blue", "dram": "tab:red"}


def dataflow_energy_figure(report, kind: str | None = None):
    """Stacked bars: one per dataflow, segments by level, heights normalized to RS (or the first)."""
    fig, (ax,) = _figure(7, 4.5)
    dfs = report.config.dataflows
    ref = report.total("rs" if "rs" in dfs else dfs[0], kind)
    bottoms = [0.0] * len(dfs)
    for level, color in LEVEL_COLORS.items():
        heights = [report.breakdown(d, kind)[level] / ref for d in dfs]
        ax.bar([d.upper() for d in dfs], heights, bottom=bottoms, color=color, label=level)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    which = {"conv": "CONV layers", "fc": "FC layers"}.get(kind, "all CONV and FC layers")
    ax.set_ylabel("energy, normalized to RS" if "rs" in dfs else "energy, normalized")
    ax.set_title(f"{report.model}: {which}, batch {report.config.batch}")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def plot_dataflow_energy(report, path: str | os.PathLike, kind: str | None = None) -> Path:
    """Write `dataflow_energy_figure` to ``path`` (format from the suffix), atomically."""
    return save_figure(dataflow_energy_figure(report, kind), path)
