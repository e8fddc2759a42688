"""NetAdapt (Yang et al., ECCV 2018; reference/003): shrink one block per iteration to a falling target.

    max Acc(Net_i)  s.t.  Res_j(Net_i) <= Res_j(Net_{i-1}) - dR_{i,j},  j = 1..m

Per iteration: the per-resource target comes from the schedule
(`edgefit.search.netadapt.schedule`); every block yields one proposal, that
block shrunk by just enough channels (multiples of ``channel_step``) to meet
every target; each proposal is fine-tuned briefly and scored; the best one
(``selection="accuracy"``, the paper's rule, or ``"ratio"``, the reference
code's smallest score drop per resource drop) becomes the next network. The loop
ends when every budget is met; the last network is then fine-tuned long.
Resources fall every iteration, so the budgets are met when the loop ends.

Pricing proposals (where host latency is measured, layer by layer, into the
lookup table) runs in this process while no trial runs; then the proposals are
fine-tuned in parallel on the executor, whose ``map`` returns only when all are
done. Measurement and training never overlap.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgefit.errors import ConfigError
from edgefit.search.executor import ExecutorConfig, make_executor
from edgefit.search.netadapt.budgets import Budget, parse_budget
from edgefit.search.netadapt.journal import FINAL, Journal, Member
from edgefit.search.netadapt.schedule import DECAY, INITIAL, targets

SELECTIONS = ("accuracy", "ratio")
RELATIVE_TO = ("total", "reducible")


@dataclass(frozen=True)
class NetAdaptConfig:
    """How to adapt.

    Attributes:
        budgets: `Budget` s or strings such as ``"latency=50%"``, ``"macs=0.37G"``.
        initial_reduction: the first iteration cuts this share of the starting resource (2.5%).
        decay: each later iteration's cut is this times the previous one (0.96).
        short_term_epochs: fine-tuning of each proposal (below 1: one epoch over that share of the images).
        long_term_epochs: fine-tuning of the final network.
        selection: ``"accuracy"`` (keep the best score) or ``"ratio"`` (smallest
            score drop per drop of the first budget's resource).
        channel_step: proposals remove multiples of this many channels.
        max_iterations: stop (budget not met) after this many iterations.
        seed: seed of every fine-tune.
        device: where latency/energy budgets without ``@device`` are taken (``"host"``).
        bits: bit width of model size, peak activations and device estimates.
        executor: how proposals are fine-tuned (`edgefit.search.executor.ExecutorConfig`).
        relative_to: what a percentage budget and the schedule's cuts are shares of:
            ``"total"`` (the unadapted network's value, as published) or ``"reducible"``
            (its value above the floor, `resource_floor`: every block at ``channel_step``
            channels). ``latency=50%`` then means floor + 50% of (start - floor): for host
            latency on small inputs, where per-layer call overhead does not fall with channels.
        interpolate: price host latency with unmeasured channel counts interpolated from the
            lookup table (`edgefit.search.netadapt.interpolate`) instead of measured.
    """

    budgets: tuple = ()
    initial_reduction: float = INITIAL
    decay: float = DECAY
    short_term_epochs: float = 1
    long_term_epochs: int = 10
    selection: str = "accuracy"
    channel_step: int = 8
    max_iterations: int = 100
    seed: int = 0
    device: str = "host"
    bits: int = 32
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    relative_to: str = "total"
    interpolate: bool = False

    def __post_init__(self) -> None:
        if self.relative_to not in RELATIVE_TO:
            raise ConfigError(f"relative_to must be one of {RELATIVE_TO}, got {self.relative_to!r}")
        budgets = tuple(parse_budget(b) if isinstance(b, str) else b for b in self.budgets)
        if not budgets:
            raise ConfigError("give at least one budget, e.g. latency=50%")
        if not all(isinstance(b, Budget) for b in budgets):
            raise ConfigError("budgets must be Budget objects or strings such as 'latency=50%'")
        object.__setattr__(self, "budgets", budgets)
        labels = [b.label(self.device) for b in budgets]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"one budget per resource, got {', '.join(labels)}")
        if not 0 < self.initial_reduction < 1:
            raise ConfigError(f"initial_reduction must be in (0, 1), got {self.initial_reduction!r}")
        if not 0 < self.decay <= 1:
            raise ConfigError(f"decay must be in (0, 1], got {self.decay!r}")
        for name in ("short_term_epochs", "long_term_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.channel_step < 1 or self.max_iterations < 1:
            raise ConfigError("channel_step and max_iterations must be >= 1")

    @classmethod
    def from_options(
        cls,
        budgets: Sequence[str | Budget],
        *,
        workers: int = 1,
        executor: str | None = None,
        ray_address: str | None = None,
        **fields,
    ) -> NetAdaptConfig:
        """The config from command-line style options: the executor from ``workers``/``executor``/``ray_address``.

        ``executor`` defaults to ``ray`` when ``ray_address`` is given, else the local process pool.

        >>> cfg = NetAdaptConfig.from_options(["latency=50%"], workers=2, decay=0.9)
        >>> cfg.executor.kind, cfg.executor.workers, cfg.decay
        ('process', 2, 0.9)
        """
        kind = executor or ("ray" if ray_address else "process")
        return cls(budgets=tuple(budgets), executor=ExecutorConfig(kind, workers, ray_address), **fields)

    def fingerprint(self) -> dict:
        """The settings a resumed run must share (the executor may change)."""
        d = asdict(self)
        d.pop("executor")
        d.pop("long_term_epochs")
        for name, default in (("relative_to", "total"), ("interpolate", False)):
            if d[name] == default:  # runs from before the setting existed resume
                d.pop(name)
        d["budgets"] = [asdict(b) for b in self.budgets]
        return d


@dataclass
class AdaptResult:
    """What `netadapt` produced.

    Attributes:
        members: every network kept (iteration 0 = unadapted, then one per iteration, final last).
        start, targets: resources of the unadapted network and the budgets, by label.
        met: every budget is met by the final network.
        message: why the run stopped.
        model: the final network (fine-tuned), or the best one so far when the budget was not met.
        resumed_from: the iteration the run resumed after, or None.
        proposals: proposals scored by this call; wall_seconds: its wall time.
        how: how each resource was obtained.
        floor: resources with every block at its narrowest width (`resource_floor`),
            the least shrinking can reach; None for an adapter without widths.
        measured: for a final network under a host-latency budget, the lookup-table
            prediction beside an end-to-end measurement (`measure_final`).
    """

    members: list[Member]
    start: dict[str, float]
    targets: dict[str, float]
    met: bool
    message: str
    model: nn.Module
    output_dir: Path
    resumed_from: int | None = None
    proposals: int = 0
    iterations_run: int = 0
    wall_seconds: float = 0.0
    how: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    floor: dict[str, float] | None = None
    measured: dict | None = None

    @property
    def final(self) -> Member:
        return self.members[-1]


def short_term(task: tuple) -> tuple[float, dict]:
    """One trial (run by an executor): fine-tune a proposal, return (score, state dict)."""
    adapter, model, epochs, seed = task
    torch.set_num_threads(1)
    adapter.fine_tune(model, epochs, seed)
    return adapter.evaluate(model), {k: v.detach().clone() for k, v in model.state_dict().items()}


def state_hash(model: nn.Module) -> str:
    """SHA-256 of the model's tensors (names, shapes, values): which network a run started from."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).to(torch.float64).numpy().tobytes())
    return h.hexdigest()


def _pick(config: NetAdaptConfig, scored: list, current: Member, label: str):
    if config.selection == "accuracy":
        return max(scored, key=lambda s: s[1])
    def ratio(s):
        drop = current.resources[label] - s[0].resources[label]
        return (current.score - s[1]) / drop if drop > 0 else float("inf")
    return min(scored, key=ratio)


def _save(journal: Journal, model: nn.Module, member: Member) -> Member:
    from edgefit.data import save_weights

    save_weights(model, journal.dir / member.weights, metadata={"widths": member.widths, "iteration": member.iteration})
    journal.record(member)
    return member


def _name(i: int) -> str:
    return "final.safetensors" if i == FINAL else f"iter_{i:03d}.safetensors"


def netadapt(
    model: nn.Module,
    adapter,
    config: NetAdaptConfig,
    output_dir: str | Path,
    *,
    on_iteration: Callable[[Member, dict], None] | None = None,
    executor=None,
) -> AdaptResult:
    """Adapt ``model`` to ``config.budgets``; keep every iteration's network in ``output_dir``.

    Args:
        model: the unadapted network (left unchanged).
        adapter: a `NetworkAdapter` (e.g. `ConvnetAdapter`) that prices, shrinks, fine-tunes and scores.
        config: budgets, schedule and fine-tuning.
        output_dir: the family: ``iter_NNN.safetensors``, ``final.safetensors``,
            ``netadapt.sqlite`` (the state: the same call resumes), ``family.md``/``.json``.
        on_iteration: called with each new `Member` and ``{"targets": ..., "proposals": n}``.
        executor: overrides ``config.executor`` (anything with ``map``).

    Returns:
        An `AdaptResult`; ``met`` is False (with the reason in ``message``) when no
        block could shrink further or ``max_iterations`` ran out: the best network
        so far is still fine-tuned and kept.
    """
    from edgefit.data import load_weights_

    t0 = time.perf_counter()
    journal = Journal(output_dir)
    base_widths = adapter.get_network_def_from_model(model)
    labels = [b.label(config.device) for b in config.budgets]
    resumed = journal.start({**config.fingerprint(), "start_weights": state_hash(model), "widths": base_widths})
    members = journal.members()
    if members and members[0].iteration == 0:
        start = members[0].resources
    else:
        start = adapter.compute_resource(model)
    floor = resource_floor(adapter, model)
    offset = _offsets(config, floor, start, labels)
    final_targets = budget_targets(config, start, offset)
    current_model = model
    if not members:
        score = adapter.evaluate(model)
        current = _save(journal, model, Member(0, None, base_widths, start, score, _test(adapter, model), _name(0), 0, 0.0))
        members = [current]
        if on_iteration:
            on_iteration(current, {"targets": final_targets, "proposals": 0})
    else:
        current = [m for m in members if m.iteration != FINAL][-1]
        current_model = load_weights_(adapter.simplify_model_based_on_network_def(model, current.widths),
                                      journal.dir / current.weights)
    resumed_from = current.iteration if resumed else None
    done = [m for m in members if m.iteration == FINAL]
    if done:
        final_model = load_weights_(adapter.simplify_model_based_on_network_def(model, done[0].widths),
                                    journal.dir / done[0].weights)
        met = all(done[0].resources[k] <= v for k, v in final_targets.items())
        measured = journal.meta("host_latency")
        if measured is None and (measured := measure_final(adapter, final_model, final_targets)) is not None:
            journal.put_meta("host_latency", measured)  # killed after the final network was saved
        return AdaptResult(members, start, final_targets, met, journal.meta("message") or "", final_model,
                           journal.dir, resumed_from, wall_seconds=time.perf_counter() - t0,
                           how={k: _how(adapter, k) for k in labels}, measured=measured)
    unreachable = _unreachable(floor, final_targets)
    own = executor is None
    executor = make_executor(config.executor) if own else executor
    proposals_scored = iterations = 0
    message = ""
    try:
        while not all(current.resources[k] <= v for k, v in final_targets.items()):
            i = current.iteration
            if i >= config.max_iterations:
                message = f"budget not met after {config.max_iterations} iterations"
                break
            step = {
                k: targets(start[k] - offset[k], current.resources[k], final_targets[k], i,
                           initial=config.initial_reduction, decay=config.decay)
                for k in labels
            }
            with _pricing(adapter):  # a timing lock, once taken, is kept until every proposal is priced
                proposals = [
                    p for b in range(adapter.get_num_simplifiable_blocks())
                    if (p := adapter.simplify_network_def_based_on_constraint(current_model, b, step)) is not None
                ]
            if not proposals:
                message = ("budget cannot be met: no block can shrink enough to reach "
                           + ", ".join(f"{k} <= {v:.4g}" for k, v in step.items()) + "; kept the best network so far")
                break
            tasks = [(adapter, p.model, config.short_term_epochs, config.seed + i) for p in proposals]
            results = executor.map(short_term, tasks)
            scored = [(p, s, state) for p, (s, state) in zip(proposals, results, strict=False)]
            best, score, state = _pick(config, scored, current, labels[0])
            best.model.load_state_dict(state)
            current_model = best.model
            current = _save(journal, current_model, Member(
                i + 1, best.block, best.widths, best.resources, score, _test(adapter, current_model),
                _name(i + 1), len(proposals), time.perf_counter() - t0))
            members.append(current)
            proposals_scored += len(proposals)
            iterations += 1
            if on_iteration:
                on_iteration(current, {"targets": step, "proposals": len(proposals)})
    finally:
        if own:
            executor.close()
    met = all(current.resources[k] <= v for k, v in final_targets.items())
    message = message or f"budgets met after {current.iteration} iterations"
    if not met and unreachable:
        message += f"; {unreachable}"
    journal.put_meta("message", message)
    journal.put_meta("long_term_epochs", config.long_term_epochs)
    adapter.fine_tune(current_model, config.long_term_epochs, config.seed)
    final = _save(journal, current_model, Member(
        FINAL, None, current.widths, current.resources, adapter.evaluate(current_model),
        _test(adapter, current_model), _name(FINAL), 0, time.perf_counter() - t0))
    members.append(final)
    measured = measure_final(adapter, current_model, final_targets)
    if measured is not None:
        journal.put_meta("host_latency", measured)
    if on_iteration:
        on_iteration(final, {"targets": final_targets, "proposals": 0})
    return AdaptResult(members, start, final_targets, met, message, current_model, journal.dir, resumed_from,
                       proposals_scored, iterations, time.perf_counter() - t0,
                       how={k: _how(adapter, k) for k in labels},
                       notes=list(getattr(getattr(adapter, "meter", None), "notes", [])), floor=floor,
                       measured=measured)


def measure_final(adapter, model: nn.Module, final_targets: dict[str, float]) -> dict | None:
    """Under a host-latency budget: the final network's table prediction, interval and measured latency.

    Runs after every trial has returned (the executor is idle or closed), so the
    measurement shares the host with none of this run's training, and inside the
    meter's ``timing()`` (e.g. a lock shared with other benchmarks). A percentage budget,
    a share of the table's own sum, is scaled by the host correction's factor before it
    is compared with the corrected prediction and the measurement. None without a
    ``latency@host`` budget or an adapter whose meter has an ``input_shape``.
    """
    from edgefit.search.host_check import host_latency_check

    meter = getattr(adapter, "meter", None)
    if "latency@host" not in final_targets or not hasattr(meter, "input_shape"):
        return None
    relative = any(b.relative for b in getattr(meter, "budgets", ()) if b.label(meter.device) == "latency@host")
    # a % budget is a share of the table's own sum: judged after the same correction as the prediction
    with meter.timing() if hasattr(meter, "timing") else nullcontext():
        return host_latency_check(model, meter.input_shape, table=getattr(meter, "table", None),
                                  budget_s=final_targets["latency@host"], budget_on_table=relative)


def resource_floor(adapter, model: nn.Module) -> dict[str, float] | None:
    """Resources of ``model`` with every block at its narrowest proposal width (``adapter.channel_step``).

    No proposal goes below it, so a budget under the floor cannot be met: what does
    not fall with channels (per-layer call overhead, the input layer, the classifier)
    is all that is left. None when the adapter has no ``channel_step`` or widths.
    """
    step = getattr(adapter, "channel_step", None)
    widths = adapter.get_network_def_from_model(model)
    if step is None or not isinstance(widths, dict):
        return None
    narrow = {b: min(w, step) for b, w in widths.items()}
    return adapter.compute_resource(adapter.simplify_model_based_on_network_def(model, narrow))


def budget_targets(config: NetAdaptConfig, start: dict[str, float], offset: dict[str, float]) -> dict[str, float]:
    """Each budget as an absolute value: a share of ``start - offset`` above ``offset``, or the absolute value.

    >>> cfg = NetAdaptConfig(budgets=("macs=50%", "params=1k"))
    >>> budget_targets(cfg, {"macs": 100.0, "params": 5000.0}, {"macs": 20.0, "params": 0.0})
    {'macs': 60.0, 'params': 1000.0}
    """
    out = {}
    for b in config.budgets:
        k = b.label(config.device)
        out[k] = offset[k] + b.value * (start[k] - offset[k]) if b.relative else b.target(start[k])
    return out


def _offsets(config: NetAdaptConfig, floor, start: dict[str, float], labels) -> dict[str, float]:
    """What relative budgets and the schedule's cuts leave aside: 0, or the floor (``relative_to="reducible"``)."""
    if config.relative_to == "total":
        return dict.fromkeys(labels, 0.0)
    if floor is None:
        raise ConfigError("relative_to='reducible' needs an adapter with channel widths (a floor to measure from)")
    for k in labels:
        if not floor[k] < start[k]:
            raise ConfigError(f"{k}: nothing is reducible (the narrowest network needs {floor[k]:.4g},"
                              f" the unadapted one {start[k]:.4g})")
    return {k: floor[k] for k in labels}


def _unreachable(floor: dict[str, float] | None, final_targets: dict[str, float]) -> str:
    """Which budgets lie below the floor, in words ('' when none does)."""
    if not floor:
        return ""
    below = [f"{k} <= {v:.4g} is below {floor[k]:.4g}" for k, v in final_targets.items() if k in floor and floor[k] > v]
    if not below:
        return ""
    return "unreachable by shrinking: " + ", ".join(below) + " (every block at its narrowest width)"


def _pricing(adapter):
    """The meter's pricing phase (`ResourceMeter.pricing`), or nothing."""
    pricing = getattr(getattr(adapter, "meter", None), "pricing", None)
    return pricing() if pricing is not None else nullcontext()


def _test(adapter, model) -> float | None:
    fn = getattr(adapter, "test_accuracy", None)
    return fn(model) if fn is not None else None


def _how(adapter, label: str) -> str:
    how = getattr(getattr(adapter, "meter", None), "how", None)
    return how(label) if how is not None else ""


def load_member(output_dir: str | Path, model: nn.Module, adapter, iteration: int = FINAL) -> nn.Module:
    """Network ``iteration`` of a family (default: the final one), rebuilt from the unadapted ``model``.

    Raises:
        ConfigError: the directory has no such member.
    """
    from edgefit.data import load_weights_

    members = {m.iteration: m for m in Journal(output_dir).members()}
    if iteration not in members:
        raise ConfigError(f"{output_dir} has no network {iteration} (has {sorted(members)})")
    m = members[iteration]
    return load_weights_(adapter.simplify_model_based_on_network_def(model, m.widths), Path(output_dir) / m.weights)


def budgets_of(texts: Sequence[str]) -> tuple[Budget, ...]:
    """Parse several budget strings."""
    return tuple(parse_budget(t) for t in texts)
