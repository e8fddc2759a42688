"""Patch-based execution of a CNN's first stage (Lin et al., MCUNetV2, NeurIPS 2021).

The first layers of a CNN hold the largest feature maps. Run them tile by
tile instead: each output tile of the stage is computed from the input region
its receptive field covers (the halo), so only one tile's intermediate
activations are alive at once; the stage's output is assembled whole and the
rest of the network runs as usual. The price is the halo, computed again by
neighbouring tiles.

The receptive field of every value is followed through the traced ops
relative to the model input, per spatial axis: position ``q`` of a value reads
input rows ``q * stride + lo .. q * stride + hi``. Convolutions and pooling
compose it; elementwise ops, batch norm and channel concatenation take the
union of their inputs'. Anything else (a global pool, a reshape, a broadcast
of a pooled value, an attention) ends what can be patched.

Exactness: a tile's input starts at a multiple of the stage's total stride,
so every layer of the tile sees the same sampling grid as the full map; its
outputs whose receptive field lies inside the tile (or reaches the image
border with the tile) equal the full forward's and are the ones kept. Ops are
the model's own modules, unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from edgefit.memory.arena import PlanError
from edgefit.memory.inplace import ELEMENTWISE_OPS
from edgefit.trace.tracer import OpRecord, Trace


class PatchError(PlanError):
    """The model's first stage cannot be run patch by patch, or the patch setting is impossible."""


# ----------------------------------------------------------------- spatial rules


def _pair(v, default) -> tuple[int, int]:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        v = default
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def spatial_rule(op: OpRecord):
    """Per-axis ``(extent, stride, padding, ceil_mode)`` windows of an op, ``"same"``, or None."""
    name, a = op.name, op.args
    if name == "convolution":
        if a[6] or len(a[0].shape) != 4:
            return None
        k = a[1].shape[2:]
        s, p, d = _pair(a[3], 1), _pair(a[4], 0), _pair(a[5], 1)
        return tuple((d[i] * (k[i] - 1) + 1, s[i], p[i], False) for i in range(2))
    if name == "max_pool2d_with_indices":
        k = _pair(a[1], 1)
        s = _pair(a[2] if len(a) > 2 else None, k)
        p = _pair(a[3] if len(a) > 3 else 0, 0)
        d = _pair(a[4] if len(a) > 4 else 1, 1)
        ceil = bool(a[5]) if len(a) > 5 else False
        return tuple((d[i] * (k[i] - 1) + 1, s[i], p[i], ceil) for i in range(2))
    if name == "avg_pool2d":
        k = _pair(a[1], 1)
        s = _pair(a[2] if len(a) > 2 else None, k)
        p = _pair(a[3] if len(a) > 3 else 0, 0)
        ceil = bool(a[4]) if len(a) > 4 else False
        return tuple((k[i], s[i], p[i], ceil) for i in range(2))
    if name in ("native_batch_norm", "_native_batch_norm_legit_no_training"):
        training = name == "native_batch_norm" and len(a) > 5 and bool(a[5])
        return None if training else "same"
    if name in ELEMENTWISE_OPS:
        return "same"
    if name == "cat":
        dim = a[1] if len(a) > 1 else op.kwargs.get("dim", 0)
        return "same" if dim in (1, -3) else None
    return None


def window_size(n: int, extent: int, stride: int, pad: int, ceil: bool) -> int:
    """Output length of a window op (PyTorch's rule, ``ceil_mode`` included)."""
    if ceil:
        out = -(-(n + 2 * pad - extent) // stride) + 1
        if (out - 1) * stride >= n + pad:
            out -= 1
        return out
    return (n + 2 * pad - extent) // stride + 1


@dataclass(frozen=True)
class Field:
    """Receptive field on one axis: position q reads input q * stride + lo .. q * stride + hi."""

    stride: int
    lo: int
    hi: int


_IDENTITY = (Field(1, 0, 0), Field(1, 0, 0))


@dataclass
class _Step:
    op: OpRecord
    rule: object
    inputs: tuple[int, ...]  # spatial activation values read
    outputs: tuple[int, ...]


@dataclass
class SpatialGraph:
    """Receptive fields and full sizes of the 4-D values a trace computes from its input.

    Attributes:
        fields: value -> (H field, W field).
        sizes: value -> (H, W).
        steps: the ops that compute them, in order, up to ``stop``.
        stop: index of the first op that cannot be patched (``len(ops)`` if none).
        reason: why that op cannot be patched.
    """

    fields: dict
    sizes: dict
    steps: list
    stop: int
    reason: str
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def input(self) -> int:
        return next(iter(self.sizes))

    def stage_values(self, end: int) -> list[int]:
        """The input and the values computed by ops before ``end``."""
        out = [self.input]
        for st in self.steps:
            if st.op.index >= end:
                break
            out += st.outputs
        return out


def spatial_graph(tr: Trace) -> SpatialGraph:
    """Follow receptive fields from the (single, 4-D) model input until an op ends them."""
    acts = [s for s in tr.inputs if s.role == "activation"]
    if len(acts) != 1 or len(acts[0].shape) != 4:
        return SpatialGraph({}, {}, [], 0, "the model does not take one N x C x H x W image")
    x = acts[0]
    fields = {x.value: _IDENTITY}
    sizes = {x.value: tuple(x.shape[2:])}
    shapes = {x.value: tuple(x.shape)}
    steps: list[_Step] = []
    for op in tr.ops:
        spatial = [s for s in op.inputs if s.role == "activation" and s.value in fields]
        if not spatial:
            continue
        where = f"{op.name} in {op.module or 'the root module'}"
        if any(tuple(s.shape) != shapes[s.value] for s in spatial):
            return SpatialGraph(fields, sizes, steps, op.index, f"{where} reshapes a feature map")
        rule = spatial_rule(op)
        if rule is None:
            return SpatialGraph(fields, sizes, steps, op.index, f"{where} is not a local op")
        others = [s for s in op.inputs if s.role == "activation" and s.value not in fields
                  and tr.values[s.value].producer != op.index and len(s.shape) == 4 and s.shape[2:] != (1, 1)]
        pooled = [s for s in op.inputs if s.role == "activation" and s.value not in fields
                  and len(s.shape) == 4 and tuple(s.shape[2:]) == (1, 1) and tr.values[s.value].producer >= 0]
        if others or pooled:
            return SpatialGraph(fields, sizes, steps, op.index, f"{where} mixes in a value not computed locally")
        hw = {sizes[s.value] for s in spatial}
        strides = {tuple(f.stride for f in fields[s.value]) for s in spatial}
        if len(hw) > 1 or len(strides) > 1:
            return SpatialGraph(fields, sizes, steps, op.index, f"{where} combines maps of different sizes")
        (h, w), f = hw.pop(), [fields[s.value] for s in spatial]
        union = tuple(Field(f[0][i].stride, min(g[i].lo for g in f), max(g[i].hi for g in f)) for i in range(2))
        if rule == "same":
            out_f, out_hw = union, (h, w)
        else:
            out_f = tuple(
                Field(u.stride * s, u.lo - p * u.stride, u.hi + (e - 1 - p) * u.stride)
                for u, (e, s, p, _) in zip(union, rule, strict=True)
            )
            out_hw = tuple(window_size(n, *r) for n, r in zip((h, w), rule, strict=True))
        outs = []
        for o in op.outputs:
            if o.role == "activation" and len(o.shape) == 4 and tuple(o.shape[2:]) == out_hw:
                fields[o.value], sizes[o.value], shapes[o.value] = out_f, out_hw, tuple(o.shape)
                outs.append(o.value)
        steps.append(_Step(op, rule, tuple(s.value for s in spatial), tuple(outs)))
    return SpatialGraph(fields, sizes, steps, len(tr.ops), "")


def axis_sizes(graph: SpatialGraph, axis: int, n: int) -> dict:
    """value -> length along ``axis`` (0: H, 1: W) of every traced value on an input of length ``n``.

    Lengths along one axis depend only on the input's length along it, so a
    tile's sizes are two lookups (cached per graph).
    """
    key = (axis, n)
    cached = graph.cache.get(key)
    if cached is not None:
        return cached
    sizes = {graph.input: n}
    for st in graph.steps:
        m = sizes[st.inputs[0]]
        out = m if st.rule == "same" else window_size(m, *st.rule[axis])
        for v in st.outputs:
            sizes[v] = out
    graph.cache[key] = sizes
    return sizes


def tile_sizes(graph: SpatialGraph, end: int, in_hw: tuple[int, int]) -> dict:
    """value -> (h, w) of every stage value (ops before ``end``) on an input tile of ``in_hw``."""
    hs, ws = axis_sizes(graph, 0, in_hw[0]), axis_sizes(graph, 1, in_hw[1])
    return {v: (hs[v], ws[v]) for v in graph.stage_values(end)}


# ----------------------------------------------------------------- stage and tiles


@dataclass(frozen=True)
class Split:
    """A place to end the patched stage: after the first ``index`` modules of the chain.

    Attributes:
        modules: paths of the modules run patch by patch, in order.
        index: how many there are.
        end: index of the first op after the stage.
        value: the value that leaves the stage (assembled whole).
        storage: its storage key.
    """

    modules: tuple[str, ...]
    index: int
    end: int
    value: int
    storage: int

    @property
    def label(self) -> str:
        return self.modules[-1]


def _is_plain_sequential(mod: nn.Module) -> bool:
    return isinstance(mod, nn.Sequential) and type(mod).forward is nn.Sequential.forward and len(mod) > 0


def module_chain(model: nn.Module) -> list[str]:
    """The model's children in order, with every plain ``nn.Sequential`` among them opened up.

    Whether the forward really runs them one after the other, each on the
    previous one's output, is checked against the trace (`find_splits`).
    """
    def expand(prefix: str, mod: nn.Module) -> list[str]:
        out = []
        for name, child in mod.named_children():
            path = f"{prefix}{name}"
            out += expand(path + ".", child) if _is_plain_sequential(child) else [path]
        return out

    return expand("", model)


def _element_of(module: str, index: dict[str, int]) -> int | None:
    parts = module.split(".") if module else []
    for i in range(len(parts), 0, -1):
        hit = index.get(".".join(parts[:i]))
        if hit is not None:
            return hit
    return None


def find_splits(model: nn.Module, tr: Trace, graph: SpatialGraph) -> list[Split]:
    """Every place the first stage can end, earliest first; raises `PatchError` if none.

    The stage is a prefix of `module_chain` whose ops come first, in chain
    order, each module called once, with exactly one tensor passed across
    every boundary inside it and out of it.
    """
    chain = module_chain(model)
    index = {p: i for i, p in enumerate(chain)}
    name = type(model).__name__
    first = tr.ops[0] if tr.ops else None
    if first is None or _element_of(first.module, index) is None:
        where = f"{first.name} in {first.module or 'the root module'}" if first else "nothing"
        raise PatchError(f"cannot patch {name}: its first op ({where}) runs outside its child modules")
    ends: dict[int, int] = {}  # k -> first op index after the first k chain modules
    current, stop = 0, len(tr.ops)
    for op in tr.ops:
        c = _element_of(op.module, index)
        info = tr.modules.get(chain[c]) if c is not None else None
        if c is None or c < current or (info is not None and info.calls > 1):
            stop = op.index
            break
        for k in range(current + 1, c + 1):
            ends[k] = op.index
        current = c
    ends[current + 1] = stop
    splits, seen, reason = [], set(), graph.reason
    for k in sorted(ends):
        end = ends[k]
        if end in seen or end == 0:
            continue
        if end > graph.stop:
            break
        leaving = [vid for vid, v in tr.values.items() if v.producer < end and (v.last_use >= end or v.is_output)]
        if len(leaving) != 1 or leaving[0] not in graph.fields:
            reason = reason or f"more than one tensor crosses the boundary after {chain[k - 1]}"
            break  # a later stage would cut that tensor too
        seen.add(end)
        v = leaving[0]
        splits.append(Split(tuple(chain[:k]), k, end, v, tr.values[v].storage))
    if not splits:
        raise PatchError(f"cannot patch the first stage of {name}: {reason or 'no module boundary to split at'}")
    return splits


@dataclass(frozen=True)
class Tile:
    """One patch: the output rows/cols it fills and the input rows/cols it reads.

    Attributes:
        out_rows, out_cols: ``(start, stop)`` in the stage output.
        in_rows, in_cols: ``(start, stop)`` in the model input.
        crop: ``(row, col)`` offset of ``out_rows[0], out_cols[0]`` in the tile's output.
    """

    out_rows: tuple[int, int]
    out_cols: tuple[int, int]
    in_rows: tuple[int, int]
    in_cols: tuple[int, int]
    crop: tuple[int, int]


def _axis(n_out: int, n_in: int, f: Field, parts: int) -> list[tuple[tuple[int, int], tuple[int, int], int]]:
    out = []
    for i in range(parts):
        o0, o1 = i * n_out // parts, (i + 1) * n_out // parts
        lo = max(0, o0 * f.stride + f.lo)
        lo -= lo % f.stride
        hi = min(n_in, (o1 - 1) * f.stride + f.hi + 1)
        out.append(((o0, o1), (lo, hi), o0 - lo // f.stride))
    return out


def make_tiles(graph: SpatialGraph, split: Split, patches: int) -> list[Tile]:
    """``patches x patches`` tiles of the stage output, row by row.

    Raises:
        PatchError: more patches per side than the stage output has rows or columns.
    """
    (H, W), fh, fw = graph.sizes[split.value], *graph.fields[split.value]
    in_h, in_w = graph.sizes[next(iter(graph.sizes))]
    if patches > min(H, W):
        raise PatchError(
            f"{patches}x{patches} patches are too many: the stage output after {split.label} is {H}x{W}"
        )
    return [
        Tile(r[0], c[0], r[1], c[1], (r[2], c[2]))
        for r in _axis(H, in_h, fh, patches) for c in _axis(W, in_w, fw, patches)
    ]


# ----------------------------------------------------------------- execution


class PatchedStage(nn.Module):
    """Runs ``layers`` tile by tile and assembles their output.

    Args:
        layers: the stage (the model's own modules, shared, not copied).
        tiles: from `make_tiles`.
        input_hw: the input height and width the tiles were made for.
        output_hw: the stage output's height and width.
    """

    def __init__(self, layers: nn.Module, tiles: list[Tile], input_hw: tuple[int, int], output_hw: tuple[int, int]):
        super().__init__()
        self.layers = layers
        self.tiles = list(tiles)
        self.input_hw = tuple(input_hw)
        self.output_hw = tuple(output_hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_hw:
            raise PatchError(f"patches were planned for a {self.input_hw[0]}x{self.input_hw[1]} input, got "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        out = None
        for t in self.tiles:
            y = self.layers(x[..., t.in_rows[0]:t.in_rows[1], t.in_cols[0]:t.in_cols[1]])
            r0, c0 = t.crop
            (a, b), (c, d) = t.out_rows, t.out_cols
            if out is None:
                out = y.new_empty((*y.shape[:-2], *self.output_hw))
            out[..., a:b, c:d] = y[..., r0:r0 + b - a, c0:c0 + d - c]
            del y
        return out


def _swap(model: nn.Module, new: dict[str, nn.Module]) -> nn.Module:
    """A copy of ``model`` sharing every module except those at the paths of ``new``, replaced."""
    if "" in new:
        return new[""]
    root = copy.copy(model)
    root._modules = dict(model._modules)
    copies = {"": root}
    for path, module in new.items():
        parts = path.split(".")
        cur = root
        for i, p in enumerate(parts[:-1]):
            key = ".".join(parts[: i + 1])
            if key not in copies:
                child = copy.copy(cur._modules[p])
                child._modules = dict(child._modules)
                cur._modules[p] = copies[key] = child
            cur = copies[key]
        cur._modules[parts[-1]] = module
    return root


def patched_model(model: nn.Module, split: Split, tiles: list[Tile], graph: SpatialGraph) -> nn.Module:
    """``model`` with the modules of ``split`` run patch by patch.

    The first module of the stage becomes a `PatchedStage` running them all,
    the others become ``nn.Identity``. The returned model shares every parameter
    and module with ``model`` (nothing is copied); ``model`` is left unchanged.
    """
    layers = nn.Sequential(*[model.get_submodule(p) for p in split.modules])
    stage = PatchedStage(layers, tiles, graph.sizes[graph.input], graph.sizes[split.value])
    new = {p: nn.Identity() for p in split.modules[1:]}
    new[split.modules[0]] = stage
    return _swap(model, new)


def _tile_axes(graph: SpatialGraph, t: Tile) -> tuple[dict, dict]:
    return (axis_sizes(graph, 0, t.in_rows[1] - t.in_rows[0]), axis_sizes(graph, 1, t.in_cols[1] - t.in_cols[0]))


def stage_tile_macs(conv_macs: dict[int, int], graph: SpatialGraph, split: Split, tiles: list[Tile]) -> int:
    """MACs the stage runs over all tiles (halo recomputation included), exactly.

    Args:
        conv_macs: op index -> MACs of that op on the full map (MACs scale with output positions).
    """
    convs = [(conv_macs[st.op.index], st.outputs[0]) for st in graph.steps
             if st.op.index < split.end and st.outputs and conv_macs.get(st.op.index)]
    total = 0
    for t in tiles:
        hs, ws = _tile_axes(graph, t)
        for full, v in convs:
            h, w = graph.sizes[v]
            total += full * hs[v] * ws[v] // (h * w)
    return total


def largest_tile_sizes(graph: SpatialGraph, split: Split, tiles: list[Tile]) -> dict:
    """value -> most elements per channel-map (h * w) it takes over all tiles."""
    values = graph.stage_values(split.end)
    best = dict.fromkeys(values, 0)
    for t in tiles:
        hs, ws = _tile_axes(graph, t)
        for v in values:
            hw = hs[v] * ws[v]
            if hw > best[v]:
                best[v] = hw
    return best


def check_tiles(graph: SpatialGraph, split: Split, tiles: list[Tile]) -> None:
    """Every tile's output covers the rows and columns it must fill (an internal invariant)."""
    for t in tiles:
        hs, ws = _tile_axes(graph, t)
        h, w = hs[split.value], ws[split.value]
        if t.crop[0] + t.out_rows[1] - t.out_rows[0] > h or t.crop[1] + t.out_cols[1] - t.out_cols[0] > w:
            raise PatchError(f"tile {t} does not cover its output ({h}x{w})")


__all__ = [
    "Field", "PatchError", "PatchedStage", "SpatialGraph", "Split", "Tile", "axis_sizes", "check_tiles",
    "find_splits", "largest_tile_sizes", "make_tiles", "patched_model", "spatial_graph", "stage_tile_macs",
    "tile_sizes", "window_size",
]
