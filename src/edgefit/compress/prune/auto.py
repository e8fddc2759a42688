"""Per-group sensitivity, automatic per-group ratios for a target, and
energy-aware pruning.

* `group_sensitivity`: accuracy after removing a fraction of one dependency group's
  channels (coupled layers are scanned together, never one layer of a residual
  stream alone), no fine-tuning: the pruning sensitivity analysis of reference/003
  done per group.
* `model_cost`: what a target is measured in: ``"macs"``, ``"params"``,
  ``"latency"`` / ``"energy"`` on a named device (edgefit's roofline and energy
  model), or ``"lut"``: host latency predicted from the measured lookup table.
* ``prune_(model, AutoChannelConfig(target=0.5, cost="macs"))``: per-group ratios
  chosen so the pruned model costs at most ``target`` of the original: uniform,
  or (with a sensitivity scan) the less sensitive groups pruned harder.
* ``prune_(model, EnergyAwareConfig(target=0.5, device="eyeriss"), data=...)``:
  energy-aware pruning (Yang et al., CVPR 2017; reference/003): estimate each
  group's energy on the device, prune the most energy-hungry group first, fine-tune
  locally, repeat until the energy target is met. The energy source is a parameter:
  any ``callable(model, input_shape) -> {layer: joules}``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from edgefit.compress.prune.channel import _n_keep, channel_importance, keep_top, prune_groups_
from edgefit.compress.prune.groups import ChannelGroups, channel_groups
from edgefit.errors import ConfigError

COSTS = ("macs", "params", "latency", "energy", "lut")


def _check_target(v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        raise ConfigError(f"target must be the fraction of the cost to keep, in (0, 1), got {v!r}")


def model_cost(model: nn.Module, input_shape: Sequence[int], cost: str = "macs", *,
               device: str | None = None, table=None) -> float:
    """One number for ``model`` at ``input_shape``: MACs, params, seconds or joules.

    >>> from edgefit.zoo import create
    >>> model_cost(create("lenet5_digits"), (1, 1, 8, 8), "macs")
    537000.0
    """
    from edgefit.metrics import profile

    if cost not in COSTS:
        raise ConfigError(f"cost must be one of {COSTS}, got {cost!r}")
    p = profile(model, input_shape=tuple(input_shape))
    if cost == "macs":
        return float(p.totals.macs)
    if cost == "params":
        return float(p.totals.params)
    if cost == "lut":
        from edgefit.measure import predict_latency

        return float(predict_latency(model, p, input_shape=tuple(input_shape), table=table, measure=False).seconds)
    if device is None:
        raise ConfigError(f"cost {cost!r} needs a device (e.g. jetson_nano)")
    from edgefit.hardware import estimate

    est = estimate(p, device)
    return float(est.totals.seconds if cost == "latency" else est.totals.joules)


def layer_energy(model: nn.Module, input_shape: Sequence[int], device: str) -> dict[str, float]:
    """``{layer: joules}`` from edgefit's hardware energy model (the default energy source)."""
    from edgefit.hardware import estimate
    from edgefit.metrics import profile

    est = estimate(profile(model, input_shape=tuple(input_shape)), device)
    return {row.name: float(row.joules) for row in est.layers}


def _keep_for(model, groups, ratios: Mapping[str, float], importance: str, round_to: int = 1,
              ) -> dict[str, torch.Tensor]:
    scores = channel_importance(model, ChannelGroups({n: groups[n] for n in ratios}), importance)
    out = {}
    for n, r in ratios.items():
        g = groups[n]
        nb = 1 if g.blocks is None else int(g.blocks.max()) + 1
        out[n] = keep_top(scores[n], _n_keep(g.width, r, round_to, nb), g.blocks)
    return out


def pruned_copy(model: nn.Module, groups: ChannelGroups, ratios: Mapping[str, float],
                importance: str = "l2", round_to: int = 1) -> nn.Module:
    """A pruned deep copy of ``model`` (the original is untouched)."""
    m = copy.deepcopy(model)
    prune_groups_(m, _keep_for(m, groups, ratios, importance, round_to), groups=groups)
    return m


@dataclass
class GroupSensitivity:
    """Accuracy after pruning each group alone.

    Attributes:
        ratios: the fractions of channels removed.
        baseline: accuracy of the unpruned model.
        scores: ``{group: accuracy at each ratio}``.
    """

    ratios: tuple[float, ...]
    baseline: float
    scores: dict[str, list[float]] = field(default_factory=dict)

    def drop(self, group: str, ratio: float) -> float:
        """Accuracy drop at ``ratio`` (linear between scanned ratios)."""
        xs = (0.0, *self.ratios)
        ys = (0.0, *(self.baseline - a for a in self.scores[group]))
        for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
            if ratio <= x1:
                return y0 + (y1 - y0) * (ratio - x0) / (x1 - x0)
        return ys[-1]


def group_sensitivity(model: nn.Module, groups: ChannelGroups, evaluate: Callable[[nn.Module], float], *,
                      ratios: Sequence[float] = (0.25, 0.5, 0.75), importance: str = "l2",
                      on_group: Callable[[str], None] | None = None) -> GroupSensitivity:
    """Scan every group at ``ratios`` (each alone, no fine-tuning)."""
    res = GroupSensitivity(tuple(ratios), float(evaluate(model)))
    for name in groups:
        res.scores[name] = [float(evaluate(pruned_copy(model, groups, {name: r}, importance))) for r in ratios]
        if on_group is not None:
            on_group(name)
    return res


@dataclass(frozen=True)
class AutoChannelConfig:
    """Pick per-group ratios to meet a cost target, then prune.

    Attributes:
        target: keep at most this fraction of the cost (0.5 = half the MACs).
        cost: ``"macs"``, ``"params"``, ``"latency"``, ``"energy"`` (need ``device``) or ``"lut"``.
        device: device name for ``latency``/``energy``.
        importance: channel ranking inside each group (``"l1"``, ``"l2"``, ``"bn_scale"``, ``"random"``).
        max_ratio: no group loses more than this fraction of its channels.
        input_shape: example input (batch 1).
        round_to: kept widths rounded to a multiple of this (vector-friendly kernels).
    """

    target: float = 0.5
    cost: str = "macs"
    device: str | None = None
    importance: str = "l2"
    max_ratio: float = 0.9
    input_shape: tuple[int, ...] | None = None
    round_to: int = 1

    def __post_init__(self) -> None:
        _check_target(self.target)
        if self.cost not in COSTS:
            raise ConfigError(f"cost must be one of {COSTS}, got {self.cost!r}")
        if self.cost in ("latency", "energy") and not self.device:
            raise ConfigError(f"cost {self.cost!r} needs a device")
        if self.importance not in ("l1", "l2", "bn_scale", "random"):
            raise ConfigError(f"importance must be l1, l2, bn_scale or random here, got {self.importance!r}")
        if not 0 < self.max_ratio < 1:
            raise ConfigError(f"max_ratio must be in (0, 1), got {self.max_ratio!r}")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))


def pick_group_ratios(model: nn.Module, groups: ChannelGroups, config: AutoChannelConfig,
                      sensitivity: GroupSensitivity | None = None) -> tuple[dict[str, float], float]:
    """``({group: ratio}, cost fraction reached)``: the smallest pruning meeting ``config.target``.

    Bisection on one knob ``s`` in [0, 1]: uniform ``ratio = s * max_ratio``, or with a
    sensitivity scan, each group's largest ratio whose accuracy drop is at most
    ``s`` times the largest drop seen.

    Raises:
        ConfigError: the target cannot be met even at ``max_ratio`` everywhere.
    """
    shape = config.input_shape or groups.input_shapes[0]
    base = model_cost(model, shape, config.cost, device=config.device)
    grid = [i / 100 for i in range(0, int(config.max_ratio * 100) + 1)]
    worst = max((sensitivity.baseline - min(v) for v in sensitivity.scores.values()), default=0.0) if sensitivity else 0

    def ratios_at(s: float) -> dict[str, float]:
        if sensitivity is None or worst <= 0:
            return {n: s * config.max_ratio for n in groups}
        return {n: max([r for r in grid if sensitivity.drop(n, r) <= s * worst] or [0.0]) for n in groups}

    def frac(s: float) -> float:
        return model_cost(pruned_copy(model, groups, ratios_at(s), config.importance, config.round_to), shape, config.cost,
                          device=config.device) / base

    hi_frac = frac(1.0)
    if hi_frac > config.target:
        raise ConfigError(f"cannot reach {config.target:.0%} of the {config.cost}: at most {config.max_ratio:.0%} "
                          f"of each group gives {hi_frac:.1%}")
    lo, hi = 0.0, 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        if frac(mid) <= config.target:
            hi = mid
        else:
            lo = mid
    return ratios_at(hi), frac(hi)


def prune_auto_(model: nn.Module, config: AutoChannelConfig, *, example_inputs=None,
                sensitivity: GroupSensitivity | None = None, groups: ChannelGroups | None = None,
                ) -> dict[str, torch.Tensor]:
    """Prune to the target in place; return ``{group: kept indices}``."""
    if groups is None:
        groups = channel_groups(model, example_inputs, input_shape=config.input_shape)
    ratios, _ = pick_group_ratios(model, groups, config, sensitivity)
    ratios = {n: r for n, r in ratios.items() if r > 0}
    keep = _keep_for(model, groups, ratios, config.importance, config.round_to)
    prune_groups_(model, keep, groups=groups)
    return keep


@dataclass(frozen=True)
class EnergyAwareConfig:
    """Energy-aware pruning (Yang et al. 2017).

    Attributes:
        target: stop once the estimated energy is at most this fraction of the start.
        device: the device whose energy model orders the groups.
        step: fraction of a group's channels removed per step.
        finetune_epochs: local fine-tuning epochs after each step (needs ``data``).
        lr: fine-tuning learning rate.
        importance: channel ranking inside a group.
        input_shape: example input (batch 1).
        max_ratio: no group loses more than this fraction of its channels.
    """

    target: float = 0.5
    device: str = "eyeriss"
    step: float = 0.25
    finetune_epochs: int = 1
    lr: float = 1e-3
    importance: str = "l2"
    input_shape: tuple[int, ...] | None = None
    max_ratio: float = 0.9

    def __post_init__(self) -> None:
        _check_target(self.target)
        if not 0 < self.step < 1:
            raise ConfigError(f"step must be in (0, 1), got {self.step!r}")
        if isinstance(self.finetune_epochs, bool) or not isinstance(self.finetune_epochs, int) or self.finetune_epochs < 0:
            raise ConfigError(f"finetune_epochs must be an integer >= 0, got {self.finetune_epochs!r}")
        if not 0 < self.max_ratio < 1:
            raise ConfigError(f"max_ratio must be in (0, 1), got {self.max_ratio!r}")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))


def _group_energy(groups: ChannelGroups, energy: Mapping[str, float]) -> dict[str, float]:
    """Energy a group drives: its producers' layers plus its consumers' (both shrink with it)."""
    return {n: sum(energy.get(m, 0.0) for m in set(g.producers) | set(g.consumers)) for n, g in groups.items()}


def prune_energy_aware_(model: nn.Module, config: EnergyAwareConfig, *, data=None, example_inputs=None,
                        energy_source: Callable[[nn.Module, Sequence[int]], Mapping[str, float]] | None = None,
                        on_step: Callable[[str, float], None] | None = None) -> list[tuple[str, float]]:
    """Prune the most energy-hungry group first until the energy target is met.

    Returns:
        ``[(group pruned, energy fraction after the step)]`` in order.
    """
    from edgefit.data import TrainConfig, train

    shape = config.input_shape
    if shape is None:
        if example_inputs is None:
            raise ConfigError("energy-aware pruning needs an example input or input_shape")
        x = example_inputs[0] if isinstance(example_inputs, (tuple, list)) else example_inputs
        shape = (1, *x.shape[1:])
    source = energy_source or (lambda m, s: layer_energy(m, s, config.device))
    start = sum(source(model, shape).values())
    removed: dict[str, float] = {}
    history: list[tuple[str, float]] = []
    while True:
        energy = source(model, shape)
        frac = sum(energy.values()) / start
        if frac <= config.target:
            return history
        groups = channel_groups(model, input_shape=shape)
        per = _group_energy(groups, energy)
        todo = [n for n in sorted(per, key=per.get, reverse=True) if removed.get(n, 0.0) < config.max_ratio
                and groups[n].width > 1]
        if not todo:
            raise ConfigError(f"energy-aware pruning stalled at {frac:.1%} of the energy (every group at its limit)")
        name = todo[0]
        step = min(config.step, 1 - (1 - config.max_ratio) / max(1e-9, 1 - removed.get(name, 0.0)))
        keep = _keep_for(model, groups, {name: step}, config.importance)
        prune_groups_(model, keep, groups=groups)
        removed[name] = 1 - (1 - removed.get(name, 0.0)) * (1 - step)
        if data is not None and config.finetune_epochs:
            train(model, data, TrainConfig(epochs=config.finetune_epochs, lr=config.lr))
        history.append((name, sum(source(model, shape).values()) / start))
        if on_step is not None:
            on_step(name, history[-1][1])
