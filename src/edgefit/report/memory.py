"""Text and pictures of a memory plan: the step-by-step peaks, the per-layer picture, the verdict.

Typical use: ``print("\\n".join(plan_lines(device_plan)))`` and
``save_figure(memory_figure(plan), "memory.png")``.
"""

from __future__ import annotations

from edgefit.report.plots import _figure
from edgefit.units import format_bytes


def _shape(shapes) -> str:
    return ", ".join("x".join(str(d) for d in s) for s in shapes)


def step_lines(mp) -> list[str]:
    """One line per plan step: live peak (lower bound), planned arena, extra MACs."""
    labels = {"estimate": "lectures' estimate (in + out of one layer)", "arena": "live peak -> greedy arena"}
    rows = [("step", "live peak", "arena", "extra MACs")]
    for s in mp.steps:
        label = labels.get(s.name, f"+ {s.detail}")
        arena = "" if s.arena_bytes is None else format_bytes(s.arena_bytes)
        extra = f"+{s.extra_macs / mp.macs:.1%}" if s.extra_macs and mp.macs else ""
        rows.append((label, format_bytes(s.lower_bound_bytes), arena, extra))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["  " + "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in rows]


def plan_lines(dp) -> list[str]:
    """The `edgefit plan` report of an `edgefit.hardware.mcu.DevicePlan`."""
    mp = dp.memory
    lines = [
        f"{mp.model} ({_shape(mp.input_shapes)}) on {dp.device.display_name}: weights {mp.bits}-bit, "
        f"activations {mp.activation_bits}-bit, {mp.macs:,} MACs",
        f"today:  {dp.before.message}",
        "memory, step by step:",
        *step_lines(mp),
        f"  arena within {mp.arena.overhead:.1%} of its lower bound; final peak at {mp.peak_layer}",
    ]
    if mp.patch is not None:
        p = mp.patch
        lines.append(f"  patches: {p.patches}x{p.patches} tiles of {mp.patch.split.label}'s output "
                     f"({len(p.tiles)} patches, stage {p.stage_macs:,} MACs, halo +{p.extra_macs:,} MACs, "
                     f"best of {p.candidates} settings)")
    lines += [f"  note: {n}" for n in mp.notes]
    lines.append(f"imbalance: {mp.imbalance()}")
    lines.append(f"plan:   {dp.fit.message}")
    if dp.advice:
        lines.append("still does not fit:")
        lines += [f"  {a}" for a in dp.advice]
    return lines


def layer_table(mp) -> str:
    """The picture of reference/000 as a table: per layer in + out, live and weight bytes."""
    saved = mp.inplace_savings()
    rows = [("layer", "kind", "in+out", "live", "weights", "in-place saves")]
    for r in mp.layers:
        rows.append((r.name or "(root)", r.kind, format_bytes(r.input_output_bytes), format_bytes(r.live_bytes),
                     format_bytes(r.weight_bytes) if r.weight_bytes else "", format_bytes(saved[r.name])
                     if saved.get(r.name) else ""))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    fmt = lambda r: "  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(r))  # noqa: E731
    return "\n".join([fmt(rows[0]), fmt(["-" * x for x in w]), *(fmt(r) for r in rows[1:])])


def memory_figure(mp, *, capacity_bytes: float | None = None, capacity_label: str = "SRAM"):
    """Per-layer activation (in + out and live) and weight memory, as in reference/000.

    Args:
        mp: an `edgefit.memory.MemoryPlan`.
        capacity_bytes: a device's activation RAM, drawn as a line.
        capacity_label: its label.
    """
    fig, (ax_a, ax_w) = _figure(max(8.0, 0.18 * len(mp.layers)), 6.0, rows=2)
    idx = list(range(len(mp.layers)))
    kb = 1024.0
    ax_a.bar(idx, [r.input_output_bytes / kb for r in mp.layers], color="tab:blue", label="input + output")
    ax_a.plot(idx, [r.live_bytes / kb for r in mp.layers], color="tab:red", marker=".", label="live (all tensors)")
    ax_a.axhline(mp.arena_bytes / kb, color="tab:green", linestyle="--", label="planned arena")
    if capacity_bytes:
        ax_a.axhline(capacity_bytes / kb, color="black", linestyle=":", label=capacity_label)
    ax_a.set_ylabel(f"activations (KB, {mp.activation_bits}-bit)")
    ax_a.set_title(f"{mp.model}: {mp.imbalance()}", fontsize=8, wrap=True)
    ax_a.legend(fontsize=8)
    ax_w.bar(idx, [r.weight_bytes / kb for r in mp.layers], color="tab:orange")
    ax_w.set_ylabel(f"weights (KB, {mp.bits}-bit)")
    ax_w.set_xticks(idx, [r.name for r in mp.layers], rotation=90, fontsize=5)
    for ax in (ax_a, ax_w):
        ax.grid(True, axis="y", alpha=0.3)
    return fig
