"""Dataflow energy on a spatial array: WS, OS (A, B, C), NLR and RS (Chen et al., ISCA 2016).

The analysis framework of the Eyeriss paper (Sec. VI-A): every MAC reads an
ifmap value and a weight and updates a partial sum; each data type reaches the
ALU through DRAM -> global buffer -> array (PE to PE / on-chip network) ->
register file, and the reuse a dataflow achieves at each level decides how many
accesses each level sees. An input value read ``a`` times from DRAM, used ``b``
times per DRAM read at the buffer, ``c`` times per buffer read in the array and
``d`` times per array delivery in the RF costs

    a·DRAM + ab·buffer + abc·array + abcd·RF       (abcd = its MACs),

and an output accumulated over ``abcd`` = C·R·S MACs costs

    (2a - 1)·DRAM + 2a(b - 1)·buffer + ab(c - 1)·array + 2abc(d - 1)·RF.

Energy = sum over levels of accesses x cost (RF 1, array 2, buffer 6, DRAM 200,
ALU 1 per MAC, `edgefit.accel.arch.Costs`).

Each dataflow is the paper's (Sec. IV and V), with the accounting, the mapping
parameters and the constraints of the analysis the authors published with it
(the ``cnn_dataflows/*_flow.m`` scripts of the ISCA 2016 analysis, mirrored at
github.com/ominux/eyeriss-dataflow); N C H W M R S E F U are the layer's
(H, W padded), I = N·C·H·W ifmap values, K = M·C·R·S weights, O = N·M·E·F
outputs, Q the buffer in words, J the PEs:

* ``ws`` weight stationary: an R x S filter plane is laid out on R x S PEs, one
  weight per PE that serves all N·E·F of its MACs from the RF; ``r`` channels x
  ``t`` filters of planes side by side (r·t·R·S <= J). Ifmaps stream from DRAM and
  are broadcast over the array to every MAC; a partial sum accumulates spatially
  along a filter row (S PEs) and across the ``r`` channels, but **not** across
  the R filter rows, which see it at different times: it goes through the buffer
  R·ceil(C/r) times. The buffer holds the N·t·E·F partial sums of the ``t``
  filters plus the row buffering of the ifmap.
* ``osa`` output stationary, single output channel, multiple output pixels
  (SOC-MOP): each of ``n·e·f`` PEs keeps one output of an e x f block of one
  filter, ``n`` images; ifmaps reach the block once per filter from the buffer
  and are forwarded between PEs (convolutional reuse), weights broadcast to the
  block; the buffer holds ``m`` filters and the ifmap tile.
* ``osb`` output stationary, multiple channels, multiple pixels (MOC-MOP): ``p``
  filters x ``n`` images x ``f`` outputs of one row; an ifmap row is shared by
  the ``p`` filters and forwarded along the row; the buffer holds ``m`` filters
  and ``n`` ifmap row bands (R rows).
* ``osc`` output stationary, multiple channels, single pixel (MOC-SOP): ``p``
  filters x ``n`` images, one output each; an ifmap window is shared by the
  ``p`` filters, no convolutional reuse; the buffer holds ``m`` filters and ``n``
  ifmap windows.
* ``nlr`` no local reuse: no RF; ``p`` filters x ``q`` channels; ifmaps broadcast
  to the ``p`` filters, partial sums reduced across the ``q`` channels in the
  array and through the buffer across channel tiles; every weight read comes
  from the buffer; the buffer holds an n x q x h x w ifmap tile, m x q filters
  and n x m x e x f partial sums.
* ``rs`` row stationary: a PE runs 1-D row convolutions with ``p`` filter rows of
  ``q`` channels and a sliding ifmap window in its RF (p·q·S + q·S + p words); a
  PE set of R x ``f`` PEs computes a 2-D convolution with weights reused
  horizontally, ifmap rows diagonally and partial sums accumulated vertically;
  ``t`` sets share ifmaps (other filters), ``r`` sets accumulate across channels
  (R·f·r·t <= J, q·r <= C, p·t <= m); the buffer holds n x m x E x f partial sums
  and an n x q·r x H x w ifmap tile; weights go from DRAM to the array.

In every dataflow an output is written to DRAM once (the buffer always holds the
partial sums being accumulated). Each mapping parameter is an integer (``ceil``
for remainders, as in the paper's scripts); the search is exhaustive where the
scripts ran a genetic algorithm: of the sizes with the same pass count only the
smallest is tried (`tile_sizes`), and a size that only saves energy as it grows
(the filters the buffer or an RS PE holds) is the most that fits. It keeps the
mapping of least energy, then of most active PEs. What is left out, as in the
paper: double buffering, control and the clock, the energy of data fills into a
level from the level above beyond the formula's terms.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgefit.accel.arch import LEVELS, SpatialArch
from edgefit.accel.layers import ConvLayer
from edgefit.errors import ConfigError, RegistryError, close_names

DATA = ("ifmap", "weight", "psum")


class NoMappingError(ConfigError):
    """The array, RF or buffer is too small for any mapping of a layer."""


@dataclass(frozen=True)
class Dataflow:
    """One dataflow: its mapping space and its access counts.

    Attributes:
        name: ``ws``, ``osa``, ...
        space: ``fn(shape, arch) -> {param: int array}``, every valid mapping (flat arrays).
        accesses: ``fn(shape, params) -> {level: {data type: count}}`` for one group,
            vectorized over the mappings.
        pes: ``fn(shape, params) -> active PEs``.
        label: the paper's name.
    """

    name: str
    space: Callable
    accesses: Callable
    pes: Callable
    label: str = ""


DATAFLOWS: dict[str, Dataflow] = {}


def register_dataflow(flow: Dataflow) -> Dataflow:
    """Add a dataflow to the registry (`RegistryError` on a duplicate name)."""
    if flow.name in DATAFLOWS:
        raise RegistryError(f"dataflow {flow.name!r} is already registered")
    DATAFLOWS[flow.name] = flow
    return flow


def get_dataflow(name: str) -> Dataflow:
    """A registered dataflow; raises `RegistryError` with close names."""
    try:
        return DATAFLOWS[name.lower()]
    except KeyError:
        raise RegistryError(
            f"unknown dataflow {name!r}; known: {', '.join(DATAFLOWS)}.{close_names(name.lower(), DATAFLOWS)}"
        ) from None


@dataclass(frozen=True)
class LayerEnergy:
    """Accesses and energy of one layer under one dataflow's best mapping.

    Attributes:
        layer: the layer (for a grouped layer, counts cover all groups).
        dataflow: ``ws``, ``osa``, ``osb``, ``osc``, ``nlr`` or ``rs``.
        arch: the array it was mapped on (for ``equal_area``, its own RF/buffer split).
        params: the dataflow's mapping parameters.
        active_pes: PEs that hold work.
        accesses: level -> data type -> accesses (``alu``: ``{"mac": MACs}``).
        cycles: MACs / active PEs (one MAC per PE per cycle, no stalls).
    """

    layer: ConvLayer
    dataflow: str
    arch: SpatialArch
    params: dict
    active_pes: int
    accesses: dict[str, dict[str, float]]
    cycles: float
    energy: dict[str, dict[str, float]] = field(init=False)

    def __post_init__(self) -> None:
        costs = self.arch.costs
        object.__setattr__(self, "energy", {
            level: {d: n * getattr(costs, level) for d, n in per.items()} for level, per in self.accesses.items()
        })

    @property
    def total(self) -> float:
        """Energy in units of one MAC."""
        return sum(sum(per.values()) for per in self.energy.values())

    def by_level(self) -> dict[str, float]:
        return {level: sum(per.values()) for level, per in self.energy.items()}

    def by_data(self) -> dict[str, float]:
        out = {"mac": 0.0, **{d: 0.0 for d in DATA}}
        for per in self.energy.values():
            for d, v in per.items():
                out[d] += v
        return out

    def dram_words(self) -> float:
        return sum(self.accesses["dram"].values())


# ---- shapes and helpers -----------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """One group of a layer in the paper's notation (H, W padded), with the PEs, RF and buffer in words."""

    N: int
    C: int
    M: int
    H: int
    W: int
    R: int
    S: int
    E: int
    F: int
    Uy: int
    Ux: int
    J: int
    rows: int
    RF: int
    Q: int

    @property
    def ifmaps(self) -> int:
        return self.N * self.C * self.H * self.W

    @property
    def weights(self) -> int:
        return self.M * self.C * self.R * self.S

    @property
    def outputs(self) -> int:
        return self.N * self.M * self.E * self.F

    @property
    def macs(self) -> int:
        return self.N * self.M * self.C * self.E * self.F * self.R * self.S


def shape_of(layer: ConvLayer, arch: SpatialArch) -> Shape:
    """The layer's one-group shape on ``arch``."""
    return Shape(layer.n, layer.c, layer.m // layer.groups, layer.hp, layer.wp, layer.r, layer.s, layer.e, layer.f,
                 layer.stride[0], layer.stride[1], arch.pes, arch.pe_rows, arch.rf_words, arch.buffer_words)


@functools.lru_cache(maxsize=4096)
def divisors(x: int) -> tuple[int, ...]:
    """Divisors of ``x`` in increasing order.

    >>> divisors(12)
    (1, 2, 3, 4, 6, 12)
    """
    small = [d for d in range(1, math.isqrt(x) + 1) if x % d == 0]
    return tuple(sorted(set(small + [x // d for d in small])))


@functools.lru_cache(maxsize=4096)
def tile_sizes(x: int) -> tuple[int, ...]:
    """The smallest tile size for each number of tiles ``ceil(x / v)``: every other size needs
    more storage or PEs for the same number of passes.

    >>> tile_sizes(10)
    (1, 2, 3, 4, 5, 10)
    """
    return tuple(sorted({-(-x // k) for k in range(1, x + 1)}))


def cdiv(a, b):
    """``ceil(a / b)`` for integers or integer arrays."""
    return -(-a // b)


def _grid(**axes) -> dict[str, np.ndarray]:
    """Every combination of the axes' values, as flat int64 arrays."""
    names = list(axes)
    mesh = np.meshgrid(*(np.asarray(axes[n], dtype=np.int64) for n in names), indexing="ij")
    return {n: m.ravel() for n, m in zip(names, mesh, strict=True)}


def _keep(grid: dict[str, np.ndarray], ok: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[ok] for k, v in grid.items()}


def halo(out: int, size: int, tile, stride: int, kernel: int):
    """Ifmap values fetched per ifmap value along one axis when ``tile`` outputs are made at a time:
    (out / size) / (tile / (stride·tile + kernel - stride)), 1 for a whole row (the paper's alpha/beta)."""
    return (out / size) * (stride * tile + kernel - stride) / tile


def _acc(ifmap=(0, 0, 0, 0), weight=(0, 0, 0, 0), psum=(0, 0, 0, 0)) -> dict[str, dict]:
    """Accesses by level from (dram, buffer, array, rf) per data type."""
    out = {lv: {} for lv in ("dram", "buffer", "array", "rf")}
    for d, counts in (("ifmap", ifmap), ("weight", weight), ("psum", psum)):
        for lv, n in zip(("dram", "buffer", "array", "rf"), counts, strict=True):
            out[lv][d] = n
    return out


# ---- the six dataflows ------------------------------------------------------------------------

def _ws_space(L: Shape) -> dict:
    if L.RF < 1 or L.R * L.S > L.J:
        return {}
    g = _grid(r=tile_sizes(L.C), t=tile_sizes(L.M), f=range(1, L.F + 1))
    r, t, f = g["r"], g["t"], g["f"]
    ok = (r * t * L.R * L.S <= L.J) & (L.N * t * L.E * L.F + r * t * (L.Ux * f - L.Ux) * (L.R - 1) <= L.Q)
    return _keep(g, ok)


def _ws_acc(L: Shape, P: dict) -> dict:
    rounds = L.R * cdiv(L.C, P["r"])                     # the R filter rows meet through the buffer
    ifmap_dram = L.ifmaps * cdiv(L.M, P["t"]) * halo(L.F, L.W, P["f"], L.Ux, L.S)
    return _acc(ifmap=(ifmap_dram, 0, L.macs, 0), weight=(L.weights, 0, 0, L.macs),
                psum=(L.outputs, 2 * L.outputs * (rounds - 1), L.outputs * (L.C * L.R * L.S - rounds), 0))


register_dataflow(Dataflow("ws", _ws_space, _ws_acc, lambda L, P: P["r"] * P["t"] * L.R * L.S, "WS"))


def _osa_space(L: Shape) -> dict:
    g = _grid(n=tile_sizes(L.N), e=range(1, L.E + 1), f=range(1, L.F + 1))
    n, e, f = g["n"], g["e"], g["f"]
    ifmap_tile = n * L.C * (L.Uy * e + L.R - L.Uy) * (L.Ux * f + L.S - L.Ux)
    g["m"] = np.minimum(L.M, (L.Q - ifmap_tile) // (L.C * L.R * L.S))
    return _keep(g, (n * e * f <= L.J) & (g["m"] >= 1) & (L.RF >= 1))


def _osa_acc(L: Shape, P: dict) -> dict:
    window = halo(L.E, L.H, P["e"], L.Uy, L.R) * halo(L.F, L.W, P["f"], L.Ux, L.S)
    weight_buffer = L.weights * cdiv(L.N, P["n"]) * cdiv(L.E, P["e"]) * cdiv(L.F, P["f"])
    return _acc(ifmap=(L.ifmaps * cdiv(L.M, P["m"]) * window, L.ifmaps * L.M * window, L.macs, 0),
                weight=(L.weights, weight_buffer, L.macs, 0),
                psum=(L.outputs, 0, 0, 2 * L.outputs * (L.C * L.R * L.S - 1)))


register_dataflow(Dataflow("osa", _osa_space, _osa_acc, lambda L, P: P["n"] * P["e"] * P["f"], "OS-A (SOC-MOP)"))


def _osb_space(L: Shape) -> dict:
    g = _grid(n=tile_sizes(L.N), p=tile_sizes(L.M), f=range(1, L.F + 1))
    n, p, f = g["n"], g["p"], g["f"]
    g["m"] = np.minimum(L.M, (L.Q - n * L.C * L.R * (L.Ux * f + L.S - L.Ux)) // (L.C * L.R * L.S))
    return _keep(g, (n * p * f <= L.J) & (p <= g["m"]) & (L.RF >= 1))


def _osb_acc(L: Shape, P: dict) -> dict:
    rows = L.R * (L.E / L.H) * halo(L.F, L.W, P["f"], L.Ux, L.S)   # each ifmap row re-read for R/U output rows
    weight_buffer = L.weights * cdiv(L.N, P["n"]) * L.E * cdiv(L.F, P["f"])
    return _acc(ifmap=(L.ifmaps * cdiv(L.M, P["m"]) * rows, L.ifmaps * cdiv(L.M, P["p"]) * rows, L.macs, 0),
                weight=(L.weights, weight_buffer, L.macs, 0),
                psum=(L.outputs, 0, 0, 2 * L.outputs * (L.C * L.R * L.S - 1)))


register_dataflow(Dataflow("osb", _osb_space, _osb_acc, lambda L, P: P["n"] * P["p"] * P["f"], "OS-B (MOC-MOP)"))


def _osc_space(L: Shape) -> dict:
    g = _grid(n=tile_sizes(L.N), p=tile_sizes(L.M))
    g["m"] = np.minimum(L.M, L.Q // (L.C * L.R * L.S) - g["n"])
    return _keep(g, (g["n"] * g["p"] <= L.J) & (g["p"] <= g["m"]) & (L.RF >= 1))


def _osc_acc(L: Shape, P: dict) -> dict:
    windows = L.R * L.S * (L.E / L.H) * (L.F / L.W)                  # every window fetched whole
    return _acc(ifmap=(L.ifmaps * cdiv(L.M, P["m"]) * windows, L.ifmaps * cdiv(L.M, P["p"]) * windows, L.macs, 0),
                weight=(L.weights, L.weights * cdiv(L.N, P["n"]) * L.E * L.F, L.macs, 0),
                psum=(L.outputs, 0, 0, 2 * L.outputs * (L.C * L.R * L.S - 1)))


register_dataflow(Dataflow("osc", _osc_space, _osc_acc, lambda L, P: P["n"] * P["p"], "OS-C (MOC-SOP)"))


def _nlr_space(L: Shape) -> dict:
    g = _grid(n=tile_sizes(L.N), q=[q for q in tile_sizes(L.C) if q <= L.J], e=range(1, L.E + 1),
              f=range(1, L.F + 1))
    n, q, e, f = g["n"], g["q"], g["e"], g["f"]
    ifmap_tile = n * q * (L.Uy * e + L.R - L.Uy) * (L.Ux * f + L.S - L.Ux)
    g["m"] = np.minimum(L.M, (L.Q - ifmap_tile) // (q * L.R * L.S + n * e * f))
    g["p"] = np.minimum(g["m"], L.J // q)
    return _keep(g, g["p"] >= 1)


def _nlr_acc(L: Shape, P: dict) -> dict:
    tile = halo(L.E, L.H, P["e"], L.Uy, L.R) * halo(L.F, L.W, P["f"], L.Ux, L.S)
    windows = L.R * L.S * (L.E / L.H) * (L.F / L.W)
    rounds = cdiv(L.C, P["q"]) * L.R * L.S                       # array reduces q channels per buffer round
    weight_dram = L.weights * cdiv(L.N, P["n"]) * cdiv(L.E, P["e"]) * cdiv(L.F, P["f"])
    return _acc(ifmap=(L.ifmaps * cdiv(L.M, P["m"]) * tile, L.ifmaps * cdiv(L.M, P["p"]) * windows, L.macs, 0),
                weight=(weight_dram, L.macs, 0, 0),
                psum=(L.outputs, 2 * L.outputs * (rounds - 1), L.outputs * (L.C * L.R * L.S - rounds), 0))


register_dataflow(Dataflow("nlr", _nlr_space, _nlr_acc, lambda L, P: P["p"] * P["q"], "NLR"))


def rs_rf_words(p: int, q: int, s: int) -> int:
    """RF words of a row-stationary PE: p x q filter rows, q ifmap windows, p partial sums."""
    return p * q * s + q * s + p


def _rs_space(L: Shape) -> dict:
    """``p`` is not searched: with the rest fixed, more filters per PE only saves energy, so it is
    the most the RF (p·q·S + q·S + p words) and ``p·t <= m`` allow."""
    if L.R > L.rows:
        return {}
    qs = [q for q in range(1, L.C + 1) if rs_rf_words(1, q, L.S) <= L.RF]
    sets = [(f, r, t) for f in range(1, min(L.F, L.J // L.R) + 1) for r in range(1, min(L.C, L.J // (L.R * f)) + 1)
            for t in range(1, min(L.M, L.J // (L.R * f * r)) + 1)]
    if not qs or not sets:
        return {}
    b = np.array(sets, dtype=np.int64)
    i, j, k = (x.ravel() for x in np.meshgrid(qs, np.arange(len(b)), tile_sizes(L.N), indexing="ij"))
    g = {"q": i.astype(np.int64), "f": b[j, 0], "r": b[j, 1], "t": b[j, 2], "n": k.astype(np.int64)}
    g = _keep(g, g["q"] * g["r"] <= L.C)
    ifmap_tile = g["n"] * g["q"] * g["r"] * L.H * (L.Ux * g["f"] + L.S - L.Ux)
    g["m"] = np.minimum(L.M, (L.Q - ifmap_tile) // (g["n"] * L.E * g["f"]))
    p_rf = (L.RF - g["q"] * L.S) // (g["q"] * L.S + 1)
    g["p"] = np.minimum(p_rf, g["m"] // g["t"])
    return _keep(g, g["p"] >= 1)


def _rs_acc(L: Shape, P: dict) -> dict:
    along = halo(L.F, L.W, P["f"], L.Ux, L.S)
    rounds = cdiv(L.C, P["q"] * P["r"])                          # buffer rounds across channel tiles
    deliveries = cdiv(L.C, P["q"]) * L.R                         # RF accumulates q channels x S
    ifmap = (L.ifmaps * cdiv(L.M, P["m"]) * along, L.ifmaps * cdiv(L.M, P["p"] * P["t"]) * along,
             L.ifmaps * cdiv(L.M, P["p"]) * L.S * (L.F / L.W), L.macs)
    weight = (L.weights * cdiv(L.N, P["n"]) * cdiv(L.F, P["f"]), 0, L.weights * cdiv(L.N, P["n"]) * L.F, L.macs)
    psum = (L.outputs, 2 * L.outputs * (rounds - 1), L.outputs * (deliveries - rounds),
            2 * L.outputs * (L.C * L.R * L.S - deliveries))
    return _acc(ifmap=ifmap, weight=weight, psum=psum)


register_dataflow(Dataflow("rs", _rs_space, _rs_acc, lambda L, P: L.R * P["f"] * P["r"] * P["t"], "RS"))


# ---- the search -------------------------------------------------------------------------------

def _energy(acc: dict, costs) -> np.ndarray:
    return sum(np.asarray(n, dtype=float) * getattr(costs, lv) for lv, per in acc.items() for n in per.values())


def _result(layer: ConvLayer, arch: SpatialArch, name: str, L: Shape, params: dict, acc: dict) -> LayerEnergy:
    g = layer.groups
    flow = DATAFLOWS[name]
    pes = int(flow.pes(L, params))
    accesses = {"alu": {"mac": float(L.macs * g)}}
    for lv in LEVELS[1:]:
        accesses[lv] = {d: float(acc[lv][d]) * g for d in DATA}
    return LayerEnergy(layer, name, arch, params, pes, accesses, L.macs / pes * g)


def _no_mapping(layer: ConvLayer, arch: SpatialArch, dataflow: str) -> NoMappingError:
    return NoMappingError(
        f"layer {layer.name!r} ({layer.kind} {layer.c}x{layer.h}x{layer.w} -> {layer.m}, {layer.r}x{layer.s}): "
        f"no {dataflow.upper()} mapping fits {arch.pe_rows}x{arch.pe_cols} PEs, {arch.rf_bytes} B RF "
        f"and a {arch.buffer_bytes} B buffer")


def map_layer(layer: ConvLayer, arch: SpatialArch, dataflow: str) -> LayerEnergy:
    """The lowest-energy mapping of ``layer`` on ``arch`` under ``dataflow`` (ties: most active PEs).

    A grouped layer is mapped one group at a time; its counts cover all groups.

    Raises:
        NoMappingError: no mapping fits the array, RF and buffer.
        RegistryError: unknown dataflow.
    """
    flow = get_dataflow(dataflow)
    L = shape_of(layer, arch)
    space = flow.space(L)
    if not space or not len(next(iter(space.values()))):
        raise _no_mapping(layer, arch, flow.name)
    acc = flow.accesses(L, space)
    energy = np.broadcast_to(_energy(acc, arch.costs), space[next(iter(space))].shape)
    pes = np.broadcast_to(flow.pes(L, space), energy.shape)
    best = int(np.lexsort((-pes, energy))[0])
    params = {k: int(v[best]) for k, v in space.items()}
    picked = {lv: {d: np.broadcast_to(np.asarray(n, dtype=float), energy.shape)[best] for d, n in per.items()}
              for lv, per in acc.items()}
    return _result(layer, arch, flow.name, L, params, picked)


def evaluate_mapping(layer: ConvLayer, arch: SpatialArch, dataflow: str, params: dict) -> LayerEnergy:
    """Accesses and energy of one given mapping.

    Raises:
        NoMappingError: ``params`` is not a valid mapping of ``layer`` on ``arch``.
    """
    flow = get_dataflow(dataflow)
    L = shape_of(layer, arch)
    space = flow.space(L)
    if space and set(params) == set(space):
        hit = np.logical_and.reduce([space[k] == v for k, v in params.items()])
        if hit.any():
            one = {k: np.asarray([v], dtype=np.int64) for k, v in params.items()}
            acc = flow.accesses(L, one)
            picked = {lv: {d: float(np.broadcast_to(n, (1,))[0]) for d, n in per.items()} for lv, per in acc.items()}
            return _result(layer, arch, flow.name, L, dict(params), picked)
    raise NoMappingError(f"{params} is not a {flow.name.upper()} mapping of layer {layer.name!r} "
                         f"on {arch.pe_rows}x{arch.pe_cols} PEs, {arch.rf_bytes} B RF and a {arch.buffer_bytes} B buffer")

