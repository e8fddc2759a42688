"""Per-layer sensitivity scan (Han 2015, Fig. 5): prune one layer at a time to
each sparsity, without retraining, and measure test accuracy.

``pick_sparsities`` turns the scan into per-layer targets: for each layer the
largest scanned sparsity whose accuracy stays within ``max_drop`` of the dense
model's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgefit._io import atomic_write_with
from edgefit.compress._layers import check_fraction, select_layers
from edgefit.compress.prune.magnitude import magnitude_mask
from edgefit.errors import ConfigError

DEFAULT_SPARSITIES = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99)


@dataclass
class SensitivityResult:
    """Accuracy of the model with one layer pruned.

    Attributes:
        baseline: accuracy of the unpruned model.
        sparsities: the scanned sparsities.
        accuracy: ``{layer: [accuracy at each sparsity]}``.
    """

    baseline: float
    sparsities: tuple[float, ...]
    accuracy: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "sparsities": list(self.sparsities), "accuracy": self.accuracy}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def sensitivity_scan(
    model: nn.Module,
    data,
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    layers: Sequence[str] | None = None,
) -> SensitivityResult:
    """Scan accuracy vs sparsity for each layer; the model is left unchanged."""
    from edgefit.data.train import evaluate

    for s in sparsities:
        check_fraction(s, "sparsity")
    if not sparsities:
        raise ConfigError("give at least one sparsity to scan")
    chosen = select_layers(model, layers)
    result = SensitivityResult(evaluate(model, data), tuple(float(s) for s in sparsities))
    for name, m in chosen.items():
        saved = m.weight.detach().clone()
        accs = []
        for s in result.sparsities:
            with torch.no_grad():
                m.weight.copy_(torch.where(magnitude_mask(saved, s), saved, torch.zeros(())))
            accs.append(evaluate(model, data))
        with torch.no_grad():
            m.weight.copy_(saved)
        result.accuracy[name] = accs
    return result


def pick_sparsities(result: SensitivityResult, max_drop: float = 0.01) -> dict[str, float]:
    """For each layer, the largest scanned sparsity with accuracy >= baseline - max_drop."""
    if not 0 <= max_drop < 1:
        raise ConfigError(f"max_drop must be in [0, 1), got {max_drop!r}")
    out = {}
    for name, accs in result.accuracy.items():
        ok = [s for s, a in zip(result.sparsities, accs, strict=True) if a >= result.baseline - max_drop]
        out[name] = max(ok) if ok else 0.0
    return out


def plot_sensitivity(result: SensitivityResult, path: str | os.PathLike, title: str = "") -> Path:
    """Accuracy vs sparsity, one line per layer, written atomically (PNG/SVG/PDF by suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase

    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise ConfigError(f"cannot write a plot as .{suffix}; use one of: {', '.join(sorted(formats))}")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    xs = [100 * s for s in result.sparsities]
    for name, accs in result.accuracy.items():
        ax.plot(xs, [100 * a for a in accs], marker="o", label=name)
    ax.axhline(100 * result.baseline, color="grey", ls="--", lw=1, label="dense")
    ax.set_xlabel("weights pruned (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or "Pruning sensitivity (one layer at a time, no retraining)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_write_with(path, lambda tmp: fig.savefig(tmp, format=suffix, dpi=120))
