"""Metrics: cost formulas per op, per-layer grouping, the `Profile`."""

from edgefit.metrics.counting import UncountedOpsWarning, build_profile, profile
from edgefit.metrics.formulas import Cost, formula_for, register_formula, registered_ops
from edgefit.metrics.profile import LayerStats, Profile, Totals

__all__ = [
    "Cost", "LayerStats", "Profile", "Totals", "UncountedOpsWarning", "build_profile",
    "formula_for", "profile", "register_formula", "registered_ops",
]
