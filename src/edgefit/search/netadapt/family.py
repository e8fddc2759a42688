"""The family of networks a run kept: a table (Markdown, JSON) and a plot of score against each resource."""

from __future__ import annotations

import json
from pathlib import Path

from edgefit._io import atomic_write
from edgefit.search.netadapt.journal import FINAL, Journal, Member

UNITS = {"latency": ("ms", 1e3), "energy": ("mJ", 1e3), "macs": ("M", 1e-6), "params": ("k", 1e-3),
         "model_size": ("KiB", 1 / 1024), "peak_activations": ("KiB", 1 / 1024)}


def column(label: str) -> tuple[str, float]:
    """``("latency@host [ms]", 1e3)``: a resource's column title and scale."""
    unit, scale = UNITS[label.split("@")[0]]
    return f"{label} [{unit}]", scale


def final_label(long_term_epochs: int | None = None) -> str:
    """The final network's row name, saying whether it was fine-tuned long.

    >>> final_label(20), final_label(0), final_label()
    ('final (long fine-tune, 20 epochs)', 'final (no long fine-tune)', 'final (long fine-tune)')
    """
    if long_term_epochs is None:  # a journal from before the setting was recorded
        return "final (long fine-tune)"
    if not long_term_epochs:
        return "final (no long fine-tune)"
    return f"final (long fine-tune, {long_term_epochs:g} epoch{'' if long_term_epochs == 1 else 's'})"


def family_markdown(members: list[Member], score_name: str = "val accuracy", long_term_epochs: int | None = None) -> str:
    """One row per network: iteration, shrunken block, every resource, score, test accuracy."""
    labels = list(members[0].resources)
    heads = ["network", "block shrunk", *(column(k)[0] for k in labels), score_name, "test accuracy", "proposals"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for m in members:
        name = final_label(long_term_epochs) if m.iteration == FINAL else str(m.iteration)
        vals = [f"{m.resources[k] * column(k)[1]:.4g}" for k in labels]
        acc = "-" if m.test_accuracy is None else f"{100 * m.test_accuracy:.2f}%"
        score = "-" if m.score is None else (f"{100 * m.score:.2f}%" if "accuracy" in score_name else f"{m.score:.4f}")
        lines.append("| " + " | ".join([name, m.block or "-", *vals, score, acc, str(m.proposals)]) + " |")
    return "\n".join(lines) + "\n"


def family_sections(members: list[Member], score_name: str = "val accuracy") -> list[dict]:
    """The family as report sections (plain data): score against each resource.

    ``edgefit report MODEL --section family/family.sections.json`` puts them on the page.
    """
    scored = [m for m in members if m.score is not None]
    sections = []
    for k in (list(scored[0].resources) if scored else []):
        title, scale = column(k)
        points = [["final" if m.iteration == FINAL else f"iteration {m.iteration}",
                   m.resources[k] * scale, m.score] for m in scored]
        sections.append({"type": "scatter", "title": f"NetAdapt family: {score_name} against {k}",
                         "x_label": title, "y_label": score_name, "points": points,
                         "note": "every network the run kept; the line joins the best trade-offs"})
    return sections


def write_family(output_dir: str | Path, score_name: str = "val accuracy", plot: bool = True) -> list[Path]:
    """Write ``family.md``, ``family.json``, ``family.sections.json`` (for ``edgefit report --section``)
    and (with matplotlib) ``family.png`` into ``output_dir``."""
    journal = Journal(output_dir)
    members = journal.members()
    check = journal.meta("host_latency")
    rows = [m.to_dict() for m in members]
    text = family_markdown(members, score_name, journal.meta("long_term_epochs"))
    if check is not None:  # the final network's measured host latency beside the table's prediction
        from edgefit.search.host_check import check_markdown

        rows[-1]["host_latency"] = check
        text += f"\nFinal network, {check_markdown(check)}.\n"
    out = Path(output_dir)
    paths = [atomic_write(out / "family.md", text),
             atomic_write(out / "family.json", json.dumps(rows, indent=2)),
             atomic_write(out / "family.sections.json",
                          json.dumps(family_sections(members, score_name), indent=2))]
    if plot:
        paths.append(plot_family(members, out / "family.png", score_name))
    return paths


def plot_family(members: list[Member], path: Path, score_name: str = "val accuracy") -> Path:
    """Score against each resource, one panel per resource, iterations joined in order."""
    from edgefit.report.plots import _figure, save_figure

    labels = list(members[0].resources)
    fig, axes = _figure(5.0, 2.6 * len(labels), rows=len(labels))
    steps = [m for m in members if m.iteration != FINAL]
    finals = [m for m in members if m.iteration == FINAL]
    for ax, k in zip(axes, labels, strict=False):
        title, scale = column(k)
        ax.plot([m.resources[k] * scale for m in steps], [m.score for m in steps], "o-", label="after short fine-tune")
        if finals:
            ax.plot([finals[0].resources[k] * scale], [finals[0].score], "r*", markersize=12, label="final")
        ax.set_xlabel(title)
        ax.set_ylabel(score_name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)
