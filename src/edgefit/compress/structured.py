"""Structured shrinking end to end: prune or factorize, fine-tune (optionally
distilling from the original), count before/after with the profiler, report.

What ``edgefit prune`` and ``edgefit factorize`` call; a Python user calls the
same functions:

>>> from edgefit.zoo import create
>>> from edgefit.compress.prune import ChannelConfig
>>> r = shrink(create("lenet5_digits"), ChannelConfig(ratio=0.5), input_shape=(1, 1, 8, 8))
>>> r.macs_before, r.macs_after
(537000, 143500)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from edgefit.errors import ConfigError


@dataclass
class ShrinkResult:
    """Before/after figures of one structured shrink.

    Attributes:
        model: the shrunk model (fine-tuned when asked).
        technique: the config's class name.
        input_shape: the example input (batch 1).
        macs_before, macs_after, params_before, params_after: from the profiler.
        accuracy_before: test accuracy of the input model (None without data).
        accuracy_pruned: right after shrinking, before fine-tuning.
        accuracy_after: after fine-tuning.
        widths: ``{group or layer: (before, after)}``.
        unprunable: ``{group: reason}`` (channel pruning).
        skipped: ``{layer: reason}`` (factorization).
    """

    model: nn.Module
    technique: str
    input_shape: tuple[int, ...]
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    accuracy_before: float | None = None
    accuracy_pruned: float | None = None
    accuracy_after: float | None = None
    widths: dict[str, tuple[int, int]] = field(default_factory=dict)
    unprunable: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "model"}

    def render(self) -> str:
        """A short plain-text report."""
        def pct(a):
            return "-" if a is None else f"{100 * a:.2f}%"

        lines = [
            f"{self.technique}: MACs {self.macs_before:,} -> {self.macs_after:,} "
            f"({self.macs_before / max(1, self.macs_after):.2f}x fewer), params {self.params_before:,} -> "
            f"{self.params_after:,} ({self.params_before / max(1, self.params_after):.2f}x fewer)",
            f"accuracy: before {pct(self.accuracy_before)}, after shrinking {pct(self.accuracy_pruned)}, "
            f"after fine-tuning {pct(self.accuracy_after)}",
        ]
        changed = {k: v for k, v in self.widths.items() if v[0] != v[1]}
        if changed:
            lines.append("widths: " + ", ".join(f"{k} {a}->{b}" for k, (a, b) in changed.items()))
        for what, d in (("not prunable", self.unprunable), ("left alone", self.skipped)):
            for k, v in d.items():
                lines.append(f"{what}: {k}: {v}")
        return "\n".join(lines)


def _counts(model: nn.Module, shape) -> tuple[int, int]:
    from edgefit.metrics import profile

    p = profile(model, input_shape=tuple(shape))
    return int(p.totals.macs), int(p.totals.params)


def _apply(model, config, shape, data):
    from edgefit.compress.factorize import FactorizeConfig, factorize_
    from edgefit.compress.prune import channel_groups, prune_
    from edgefit.compress.prune.auto import EnergyAwareConfig

    if isinstance(config, FactorizeConfig):
        res = factorize_(model, config)
        return {k: (0, r) for k, r in res.ranks.items()}, {}, res.skipped
    groups = channel_groups(model, input_shape=shape)
    widths = {n: g.width for n, g in groups.items()}
    kwargs = {}
    if isinstance(config, EnergyAwareConfig):
        kwargs["data"] = data
    elif getattr(config, "importance", None) in ("taylor", "fmap"):
        if data is None:
            raise ConfigError(f"importance {config.importance!r} needs a dataset")
        x, y = torch.from_numpy(data.x_train[:256]), torch.from_numpy(data.y_train[:256])
        kwargs["data"] = (x, y)
    if not isinstance(config, EnergyAwareConfig):
        kwargs["groups"] = groups
    kept = prune_(model, config, **kwargs)
    after = {n: g.width for n, g in channel_groups(model, input_shape=shape).items()}
    if isinstance(kept, dict):
        after.update({n: int(k.numel()) for n, k in kept.items()})
    return {n: (w, after.get(n, w)) for n, w in widths.items()}, dict(groups.unprunable), {}


def shrink(model: nn.Module, config, *, input_shape: Sequence[int], data=None, finetune_epochs: int = 0,
           lr: float = 1e-3, seed: int = 0, distill: bool = False, temperature: float = 4.0, alpha: float = 0.9,
           on_epoch: Callable[[int, float, float], None] | None = None) -> ShrinkResult:
    """Shrink ``model`` in place with ``config`` (any prune_ config or a FactorizeConfig), then fine-tune.

    Args:
        model: the trained model.
        config: ``ChannelConfig``, ``AutoChannelConfig``, ``EnergyAwareConfig`` or ``FactorizeConfig``.
        input_shape: example input (batch 1).
        data: an `ArrayDataset` for accuracy and fine-tuning (optional).
        finetune_epochs: fine-tuning epochs after shrinking (needs ``data``).
        lr, seed: fine-tuning learning rate and seed.
        distill: fine-tune by distillation from a copy of the unshrunk model.
        temperature, alpha: distillation options.
        on_epoch: progress callback ``(epoch, loss, test accuracy)``.
    """
    from edgefit.data import TrainConfig, evaluate, train

    if finetune_epochs and data is None:
        raise ConfigError("fine-tuning needs a dataset")
    shape = tuple(input_shape)
    macs0, params0 = _counts(model, shape)
    acc0 = evaluate(model, data) if data is not None else None
    teacher = copy.deepcopy(model).eval() if distill else None
    widths, unprunable, skipped = _apply(model, config, shape, data)
    macs1, params1 = _counts(model, shape)
    acc_p = evaluate(model, data) if data is not None else None
    acc1 = acc_p
    if finetune_epochs:
        if teacher is not None:
            from edgefit.compress.distill import DistillConfig, distill_

            distill_(model, teacher, data, DistillConfig(temperature=temperature, alpha=alpha, epochs=finetune_epochs,
                                                         lr=lr, seed=seed), on_epoch=on_epoch)
        else:
            train(model, data, TrainConfig(epochs=finetune_epochs, lr=lr, seed=seed), on_epoch=on_epoch)
        acc1 = evaluate(model, data)
    return ShrinkResult(model.eval(), type(config).__name__, shape, macs0, macs1, params0, params1, acc0, acc_p,
                        acc1, widths, unprunable, skipped)


def compare_latency(models: Sequence[nn.Module], example_inputs: Sequence[torch.Tensor], *, rounds: int = 5,
                    runs: int = 20, threads: int = 1) -> list[tuple[float, float, float]]:
    """Measured host latency of each model, side by side: ``[(median, min, max) seconds]``.

    The models are timed in alternation (``rounds`` rounds of ``runs`` calls each, one
    torch thread) so that a change in the host's load hits all of them alike; the
    median is over the rounds' medians, min/max show the spread.
    """
    import statistics

    from edgefit.data import torch_threads
    from edgefit.measure import measure_latency

    per: list[list[float]] = [[] for _ in models]
    with torch_threads(threads):
        for _ in range(rounds):
            for i, m in enumerate(models):
                per[i].append(measure_latency(m, example_inputs, warmup=3, runs=runs).median_s)
    return [(statistics.median(v), min(v), max(v)) for v in per]
