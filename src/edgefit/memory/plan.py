"""`plan_memory`: the activation memory of a model, planned as a microcontroller runtime would.

The plan starts from the traced tensors and their lifetimes and reports, in
order: the lectures' estimate (largest input + output of one layer), the most
bytes alive at once (the lower bound of any arena), the greedy arena, and the
arena after each technique asked for. A technique is a config dataclass
dispatched through a registry keyed on its type:

* `InPlaceConfig`: elementwise ops and depthwise convolutions overwrite their
  input where that input dies (see `edgefit.memory.inplace`);
* `PatchConfig`: the first stage runs patch by patch (see `edgefit.memory.patch`).

>>> import torch.nn as nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
>>> p = plan_memory(net, input_shape=(1, 1, 8, 8), bits=8, techniques=[InPlaceConfig()])
>>> p.estimate_bytes, p.peak_live_bytes, p.arena_bytes
(384, 520, 384)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from edgefit.errors import ConfigError, RegistryError
from edgefit.memory.arena import Arena, Buffer, plan_arena
from edgefit.memory.graph import Tensor, check_bits, tensors_from_trace
from edgefit.memory.inplace import InPlace, find_inplace
from edgefit.memory.patch import (
    PatchError,
    SpatialGraph,
    Split,
    Tile,
    check_tiles,
    find_splits,
    largest_tile_sizes,
    make_tiles,
    patched_model,
    spatial_graph,
    stage_tile_macs,
)
from edgefit.metrics.counting import build_profile
from edgefit.metrics.formulas import formula_for
from edgefit.metrics.profile import Profile
from edgefit.trace.tracer import Trace, gc_paused, trace

# ----------------------------------------------------------------- configs


@dataclass(frozen=True)
class InPlaceConfig:
    """Plan ops in place where their input dies.

    Attributes:
        elementwise: batch norm, activations, residual adds.
        depthwise: depthwise convolutions, with a one-channel scratch buffer.
    """

    elementwise: bool = True
    depthwise: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.elementwise, bool) or not isinstance(self.depthwise, bool):
            raise ConfigError("InPlaceConfig: elementwise and depthwise must be True or False")
        if not (self.elementwise or self.depthwise):
            raise ConfigError("InPlaceConfig: enable elementwise, depthwise or both")

    @property
    def kinds(self) -> frozenset:
        return frozenset(k for k, on in (("elementwise", self.elementwise), ("depthwise", self.depthwise)) if on)


@dataclass(frozen=True)
class PatchConfig:
    """Run the first stage patch by patch (MCUNetV2).

    Attributes:
        patches: patches per side (``4`` = 4 x 4), or ``"auto"`` to choose.
            With ``"auto"`` a model whose first stage cannot be patched keeps
            its plan and the reason is reported; with a number it is an error.
        split: where the stage ends: the number of modules of the model's
            chain (its children, plain ``nn.Sequential`` ones opened up) run
            patched, or the path of the last one; ``None`` chooses.
        max_extra_macs: most extra MACs allowed (halo recomputation), as a
            fraction of the model's MACs.
        max_patches: largest patches per side tried by ``"auto"``.
        target_bytes: if set, the setting with the fewest extra MACs whose
            peak is at most this; otherwise the lowest peak.
    """

    patches: int | str = "auto"
    split: int | str | None = None
    max_extra_macs: float = 0.2
    max_patches: int = 8
    target_bytes: int | None = None

    def __post_init__(self) -> None:
        p = self.patches
        if p != "auto" and (isinstance(p, bool) or not isinstance(p, int) or p < 2):
            raise ConfigError(f"PatchConfig: patches must be 'auto' or an integer >= 2 per side, got {p!r}")
        if isinstance(self.max_extra_macs, bool) or not isinstance(self.max_extra_macs, (int, float)) \
                or not 0 <= self.max_extra_macs or not math.isfinite(self.max_extra_macs):
            raise ConfigError(f"PatchConfig: max_extra_macs must be a fraction >= 0, got {self.max_extra_macs!r}")
        if isinstance(self.max_patches, bool) or not isinstance(self.max_patches, int) or self.max_patches < 2:
            raise ConfigError(f"PatchConfig: max_patches must be an integer >= 2, got {self.max_patches!r}")
        t = self.target_bytes
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0):
            raise ConfigError(f"PatchConfig: target_bytes must be a positive number of bytes, got {t!r}")
        s = self.split
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, str)) or (isinstance(s, int) and s < 1)):
            raise ConfigError(f"PatchConfig: split must be a child index >= 1 or a child name, got {s!r}")


_TECHNIQUES: dict[type, Callable] = {}


def register_technique(config_type: type):
    """Register the function that applies a technique config to a plan state."""

    def deco(fn):
        if config_type in _TECHNIQUES:
            raise RegistryError(f"a memory technique for {config_type.__name__} is already registered")
        _TECHNIQUES[config_type] = fn
        return fn

    return deco


# ----------------------------------------------------------------- results


@dataclass(frozen=True)
class PlanStep:
    """The memory after one step of the plan.

    Attributes:
        name: ``"estimate"``, ``"peak live"``, ``"arena"``, ``"in-place"``, ``"patches"``.
        detail: what the step did.
        lower_bound_bytes: most bytes alive at once after it.
        arena_bytes: the planned arena after it (``None`` for the estimate).
        extra_macs: MACs added by it.
    """

    name: str
    detail: str
    lower_bound_bytes: int
    arena_bytes: int | None
    extra_macs: int = 0


@dataclass(frozen=True)
class PatchPlan:
    """The chosen patch setting.

    Attributes:
        split: where the patched stage ends.
        patches: patches per side.
        tiles: the tiles, row by row.
        stage_macs: MACs of the stage on the whole map.
        extra_macs: MACs added by recomputing halos.
        overhead: ``extra_macs`` over the model's MACs.
        candidates: settings tried.
    """

    split: Split
    patches: int
    tiles: tuple[Tile, ...]
    stage_macs: int
    extra_macs: int
    overhead: float
    candidates: int
    graph: SpatialGraph = field(repr=False, compare=False)

    def apply(self, model: nn.Module) -> nn.Module:
        """``model`` (the one planned) with its first stage run patch by patch; parameters are shared."""
        return patched_model(model, self.split, list(self.tiles), self.graph)


@dataclass(frozen=True)
class LayerMemory:
    """One layer in the picture of reference/000.

    Attributes:
        name, kind: the layer.
        input_output_bytes: largest input + output of one of its ops (the lectures' count).
        live_bytes: most bytes alive while it runs (before any technique).
        weight_bytes: its weights at their bit width.
        block: the block it belongs to (for the imbalance statement).
    """

    name: str
    kind: str
    input_output_bytes: float
    live_bytes: int
    weight_bytes: float
    block: str


@dataclass(frozen=True)
class MemoryPlan:
    """Activation memory of a model: the estimate, the lower bound, the arena, each technique.

    Attributes:
        model: label.
        input_shapes: example input shapes.
        bits: weight bit width (default of a per-layer mapping).
        activation_bits: activation bit width.
        estimate_bytes: the lectures' peak (largest input + output of one layer).
        peak_live_bytes: most bytes alive at once, no technique (today's verdict).
        peak_live_layer: the layer at that peak.
        steps: `PlanStep` per step, in order.
        arena: the final `Arena`.
        peak_layer: the layer at the final plan's peak.
        inplace: the ops planned in place, with their savings on the whole maps.
        patch: the `PatchPlan`, or ``None``.
        notes: what was asked and not done, and why.
        weight_bytes: all weights at their bit widths.
        macs: the model's MACs (without patches).
        layers: `LayerMemory` per layer.
        profile: the `Profile` the picture came from.
    """

    model: str
    input_shapes: tuple
    bits: int
    activation_bits: int
    estimate_bytes: float
    peak_live_bytes: int
    peak_live_layer: str
    steps: tuple[PlanStep, ...]
    arena: Arena = field(repr=False)
    peak_layer: str
    inplace: tuple[InPlace, ...]
    patch: PatchPlan | None
    notes: tuple[str, ...]
    weight_bytes: float
    macs: int
    layers: tuple[LayerMemory, ...] = field(repr=False)
    profile: Profile = field(repr=False)

    @property
    def arena_bytes(self) -> int:
        return self.arena.size_bytes

    @property
    def lower_bound_bytes(self) -> int:
        return self.arena.lower_bound_bytes

    def inplace_savings(self) -> dict[str, int]:
        """Bytes each layer's in-place ops stop allocating (smaller of input and output, less scratch)."""
        out: dict[str, int] = {}
        for ip in self.inplace:
            out[ip.layer] = out.get(ip.layer, 0) + ip.saved_bytes
        return out

    def imbalance(self) -> str:
        """One sentence on how the memory is distributed over blocks (reference/000)."""
        from edgefit.memory.distribution import imbalance_statement

        return imbalance_statement(self.layers, self.activation_bits)

    def to_dict(self) -> dict:
        d = {
            k: getattr(self, k) for k in (
                "model", "bits", "activation_bits", "estimate_bytes", "peak_live_bytes", "peak_live_layer",
                "arena_bytes", "lower_bound_bytes", "peak_layer", "weight_bytes", "macs",
            )
        }
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        d["steps"] = [asdict(s) for s in self.steps]
        d["inplace"] = [asdict(i) for i in self.inplace]
        d["patch"] = None if self.patch is None else {
            "split": self.patch.split.label, "patches": self.patch.patches, "stage_macs": self.patch.stage_macs,
            "extra_macs": self.patch.extra_macs, "overhead": self.patch.overhead,
            "tiles": [asdict(t) for t in self.patch.tiles],
        }
        d["notes"] = list(self.notes)
        d["layers"] = [asdict(r) for r in self.layers]
        d["imbalance"] = self.imbalance()
        return d


# ----------------------------------------------------------------- state


class _State:
    """What the techniques change: sizes and lifetimes of tensors, in-place kinds."""

    def __init__(self, model: nn.Module, tr: Trace, profile: Profile, act_bits: int):
        self.model, self.tr, self.profile, self.bits = model, tr, profile, act_bits
        self.tensors: dict[int, Tensor] = {t.key: t for t in tensors_from_trace(tr)}
        self.numel = {k: t.numel for k, t in self.tensors.items()}
        self.span = {k: (t.start, t.end) for k, t in self.tensors.items()}
        self.outputs = {k for k, t in self.tensors.items() if t.is_output}
        self.kinds: frozenset = frozenset()
        self.patch: PatchPlan | None = None
        self.notes: list[str] = []
        self.inplace: list[InPlace] = []

    def buffers(self, numel=None, span=None, kinds=None) -> tuple[list[Buffer], list[InPlace]]:
        numel, span = numel or self.numel, span or self.span
        kinds = self.kinds if kinds is None else kinds
        merges = find_inplace(self.tr, {k: s[1] for k, s in span.items()}, numel, self.outputs, kinds) if kinds else []
        root: dict[int, int] = {}
        for m in merges:
            root[m.target] = root.get(m.source, m.source)
        groups: dict[int, list[int]] = {}
        for k in numel:
            groups.setdefault(root.get(k, k), []).append(k)
        merges = [
            replace(m, saved_bytes=math.ceil(min(numel[m.source], numel[m.target]) * self.bits / 8)
                    - math.ceil(m.scratch_numel * numel[m.target] / self.tensors[m.target].numel * self.bits / 8))
            for m in merges
        ]
        bufs = []
        for r, keys in groups.items():
            t = self.tensors[r]
            bufs.append(Buffer(
                f"{t.layer}#{r}", max(math.ceil(numel[k] * self.bits / 8) for k in keys),
                min(span[k][0] for k in keys), max(span[k][1] for k in keys), t.layer,
            ))
        for m in merges:
            if m.scratch_numel:
                scale = numel[m.target] / self.tensors[m.target].numel
                size = math.ceil(m.scratch_numel * scale * self.bits / 8)
                bufs.append(Buffer(f"scratch@{m.op}", size, m.op, m.op, m.layer))
        return bufs, merges


def _lower_bound(bufs: list[Buffer]) -> tuple[int, int]:
    n = max(b.end for b in bufs) + 2
    delta = [0] * n
    for b in bufs:
        delta[b.start] += b.size_bytes
        delta[b.end + 1] -= b.size_bytes
    best = best_at = cur = 0
    for i, d in enumerate(delta):
        cur += d
        if cur > best:
            best, best_at = cur, i
    return best, best_at


@register_technique(InPlaceConfig)
def _apply_inplace(state: _State, cfg: InPlaceConfig) -> PlanStep:
    state.kinds = state.kinds | cfg.kinds
    _, merges = state.buffers()
    state.inplace = merges
    n_dw = sum(m.kind == "depthwise" for m in merges)
    return PlanStep("in-place", f"{len(merges) - n_dw} elementwise and {n_dw} depthwise ops in place", 0, None)


def _conv_macs(tr: Trace, end: int) -> dict[int, int]:
    return {op.index: formula_for(op.name)(op).macs for op in tr.ops[:end] if op.name == "convolution"}


def _candidate(state: _State, graph, split: Split, n: int, conv_macs, total_macs: int):
    tiles = make_tiles(graph, split, n)
    check_tiles(graph, split, tiles)
    stage_full = sum(m for i, m in conv_macs.items() if i < split.end)
    extra = stage_tile_macs(conv_macs, graph, split, tiles) - stage_full
    best = largest_tile_sizes(graph, split, tiles)
    numel, span = dict(state.numel), dict(state.span)
    first_value: dict[int, int] = {}
    for vid, v in state.tr.values.items():
        first_value.setdefault(v.storage, vid)
    for k, t in state.tensors.items():
        vid = first_value[k]
        if t.producer == -1:
            span[k] = (span[k][0], max(span[k][1], split.end - 1))
        elif k == split.storage:
            span[k] = (0, span[k][1])
        elif t.producer < split.end and vid in best:
            h, w = graph.sizes[vid]
            numel[k] = t.numel // (h * w) * best[vid]
    bufs, _ = state.buffers(numel, span)
    peak, _ = _lower_bound(bufs)
    return peak, extra, stage_full, tiles, numel, span


def _pick_splits(splits: list[Split], want) -> list[Split]:
    if want is None:
        return splits
    chosen = [s for s in splits if (s.index == want if isinstance(want, int) else want == s.label)]
    if not chosen:
        names = ", ".join(s.label for s in splits[:12])
        raise PatchError(f"cannot end the patched stage at {want!r}; it can end after {names}")
    return chosen


@register_technique(PatchConfig)
def _apply_patches(state: _State, cfg: PatchConfig) -> PlanStep:
    tr = state.tr
    graph = spatial_graph(tr)
    try:
        splits = _pick_splits(find_splits(state.model, tr, graph), cfg.split)
    except PatchError as exc:
        if cfg.patches == "auto" and cfg.split is None:
            state.notes.append(f"patches: {exc}")
            return PlanStep("patches", "not applied: the first stage cannot be patched", 0, None)
        raise
    counts = list(range(2, cfg.max_patches + 1)) if cfg.patches == "auto" else [cfg.patches]
    total = state.profile.totals.macs
    conv_macs = _conv_macs(tr, max(s.end for s in splits))
    base, _ = _lower_bound(state.buffers()[0])
    tried = []
    for split in splits:
        for n in counts:
            try:
                peak, extra, stage, tiles, numel, span = _candidate(state, graph, split, n, conv_macs, total)
            except PatchError:
                if cfg.patches != "auto" and len(splits) == 1:
                    raise
                continue
            tried.append((peak, extra, stage, split, n, tiles, numel, span))
    if not tried:
        raise PatchError(f"{cfg.patches} patches per side do not fit any split: the stage outputs are too small")
    limit = cfg.max_extra_macs * total
    ok = [c for c in tried if c[1] <= limit]
    if cfg.target_bytes is not None:
        ok = [c for c in ok if c[0] <= cfg.target_bytes]
    if not ok:
        least = min(tried, key=lambda c: (c[0] if cfg.target_bytes else c[1]))
        what = f"brings the peak under {cfg.target_bytes:,.0f} bytes" if cfg.target_bytes else "is possible"
        raise PatchError(
            f"no patch setting within +{cfg.max_extra_macs:.0%} MACs {what}: the closest needs "
            f"{least[0]:,} bytes with {least[4]}x{least[4]} patches after {least[3].label} "
            f"(+{least[1] / total:.1%} MACs)"
        )
    key = (lambda c: (c[1], c[0])) if cfg.target_bytes is not None else (lambda c: (c[0], c[1]))
    peak, extra, stage, split, n, tiles, numel, span = min(ok, key=key)
    if peak >= base and cfg.patches == "auto" and cfg.split is None:
        state.notes.append(f"patches: no setting lowers the peak below {base:,} bytes")
        return PlanStep("patches", "not applied: patches do not lower the peak", 0, None)
    state.numel, state.span = numel, span
    state.patch = PatchPlan(split, n, tuple(tiles), stage, extra, extra / total if total else 0.0, len(tried), graph)
    return PlanStep("patches", f"{n}x{n} patches up to {split.label} (+{extra / total:.1%} MACs)", 0, None, extra)


# ----------------------------------------------------------------- the verb


def plan_memory(
    model: nn.Module,
    example_inputs: Sequence | torch.Tensor | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    input_dtype: torch.dtype | str = torch.float32,
    bits: int | Mapping[str, int] = 32,
    activation_bits: int | None = None,
    techniques: Sequence = (InPlaceConfig(), PatchConfig()),
    name: str | None = None,
) -> MemoryPlan:
    """Plan the activation memory of ``model`` in one arena, applying ``techniques`` in order.

    Args:
        model: any ``nn.Module`` (left unchanged); patches need a CNN whose first
            ops run in an ``nn.Sequential`` that receives the image.
        example_inputs: forward arguments (only shapes and dtypes are used).
        input_shape: instead of ``example_inputs``.
        input_dtype: dtype of inputs made from ``input_shape``.
        bits: weight bit width, or per-layer patterns (as `edgefit.profile`).
        activation_bits: activation bit width (default: the weight default).
        techniques: `InPlaceConfig`, `PatchConfig`, or configs of registered techniques.
        name: a label for reports.

    Returns:
        A `MemoryPlan`; every arena in it is validated (no two live buffers overlap).
    """
    for cfg in techniques:
        if type(cfg) not in _TECHNIQUES:
            known = ", ".join(t.__name__ for t in _TECHNIQUES)
            raise ConfigError(f"unknown memory technique {type(cfg).__name__} (known: {known})")
    with gc_paused():
        tr = trace(model, example_inputs, input_shape=input_shape, input_dtype=input_dtype)
        profile = build_profile(tr, bits=bits, activation_bits=activation_bits, model_label=name)
    act_bits = check_bits(profile.activation_bits)
    state = _State(model, tr, profile, act_bits)
    bufs, _ = state.buffers()
    arena = plan_arena(bufs)
    live = arena.lower_bound_bytes
    steps = [
        PlanStep("estimate", "largest input + output of one layer (reference/000)",
                 math.ceil(profile.totals.peak_activations * act_bits / 8), None),
        PlanStep("arena", f"greedy placement ({arena.order} first)", live, arena.size_bytes),
    ]
    ordered = sorted(techniques, key=lambda c: not isinstance(c, InPlaceConfig))
    kinds = frozenset().union(*(c.kinds for c in ordered if isinstance(c, InPlaceConfig)))
    for cfg in ordered:
        if isinstance(cfg, PatchConfig):
            state.kinds = kinds  # the patch search sees the in-place plan it will run with
        step = _TECHNIQUES[type(cfg)](state, cfg)
        bufs, _ = state.buffers()
        arena = plan_arena(bufs)
        steps.append(PlanStep(step.name, step.detail, arena.lower_bound_bytes, arena.size_bytes, step.extra_macs))
    from edgefit.memory.distribution import layer_memory

    peak_layer = _layer_at(tr, arena.peak_step)
    return MemoryPlan(
        model=profile.model,
        input_shapes=profile.input_shapes,
        bits=profile.bits,
        activation_bits=act_bits,
        estimate_bytes=steps[0].lower_bound_bytes,
        peak_live_bytes=live,
        peak_live_layer=profile.totals.peak_live_layer,
        steps=tuple(steps),
        arena=arena,
        peak_layer=peak_layer,
        inplace=tuple(state.inplace),
        patch=state.patch,
        notes=tuple(state.notes),
        weight_bytes=profile.totals.model_size_bytes,
        macs=profile.totals.macs,
        layers=tuple(layer_memory(tr, profile, state)),
        profile=profile,
    )


def _layer_at(tr: Trace, step: int) -> str:
    return tr.ops[min(step, len(tr.ops) - 1)].module if tr.ops else ""
