"""Dataflow energy on a spatial array: WS, OS, NLR and RS (Chen et al., ISCA 2016).

The analysis framework of the Eyeriss paper: every MAC reads an ifmap value and
a weight and updates a partial sum; each data type reaches the ALU through a
chain DRAM -> global buffer -> array (PE-to-PE / on-chip network) -> register
file, and the reuse a dataflow achieves at each level decides how many accesses
each level sees. An input value (ifmap or weight) read ``a`` times from DRAM,
used ``b`` times per DRAM read at the buffer, ``c`` times per buffer read in the
array and ``d`` times per array delivery in the RF costs

    a·DRAM + ab·buffer + abc·array + abcd·RF       (abcd = its MACs),

and an output accumulated over ``abcd`` = C·R·S MACs, ``d`` in the RF, ``c``
PEs in the array, ``b`` rounds through the buffer and ``a`` rounds through DRAM,
costs

    (2a - 1)·DRAM + 2a(b - 1)·buffer + ab(c - 1)·array + 2abc(d - 1)·RF

(Chen et al., ISCA 2016, Sec. VI-A). Here ``d`` is `Reuse.rf` and ``c`` is
`Reuse.array`; an input with ``in_rf`` False (no local storage) has no RF term.
DRAM accesses come from the tiling of the layer into the global buffer.

Energy = sum over levels of accesses x cost (RF 1, array 2, buffer 6, DRAM 200,
ALU 1 per MAC, `edgefit.accel.arch.Costs`).

The dataflows, and the reuse each exploits (reference/003):

* ``ws`` weight stationary: a PE keeps one weight in its RF and uses it for
  every output of the batch tile; ifmaps are broadcast to ``p_m`` filters and
  passed across the ``p_k`` PEs that hold one filter plane; partial sums move
  through the array, accumulating across ``p_c`` channels and ``p_k`` PEs.
* ``os`` output stationary: a PE keeps one partial sum and accumulates
  C x R x S MACs locally; ifmaps are forwarded between the ``p_e x p_f`` PEs of
  an output block, weights broadcast to them, ``p_m`` filters side by side.
* ``nlr`` no local reuse: no RF at all, the storage goes to the buffer; ifmaps
  broadcast to ``p_m`` filters, partial sums reduced across ``p_c`` channels.
* ``rs`` row stationary: a PE runs a 1-D row convolution with ``p`` filter rows
  of ``q`` channels and a sliding ifmap window in its RF; a PE set of R x
  ``e`` PEs computes a 2-D convolution with weights reused horizontally,
  ifmaps diagonally and partial sums accumulated vertically; ``t_m`` sets share
  ifmaps, ``t_c`` sets accumulate across channels.

The mapping of each layer is searched: the buffer tile (``n_b, m_b, c_b, e_b``),
the order of the DRAM loops and the dataflow's spatial and RF parameters, under
the PE count, the RF and the buffer size. Simplifications (stated, not hidden):
one value per 16-bit word; no double buffering; the RF and buffer fills that
come with a read from the level above are not counted separately (as in the
paper's formula E = a·DRAM + ab·buffer + abc·array + abcd·RF); the ifmap halo
re-read at each row-tile boundary is R - U rows.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from edgefit.accel.arch import LEVELS, SpatialArch
from edgefit.accel.layers import ConvLayer
from edgefit.errors import ConfigError, RegistryError, close_names

DATA = ("ifmap", "weight", "psum")
DATAFLOWS: dict[str, Callable] = {}


class NoMappingError(ConfigError):
    """The array, RF or buffer is too small for any mapping of a layer."""


def register_dataflow(name: str):
    """Register a mapper ``fn(layer, arch, tile) -> iterator of (params, {data type: Reuse}, active PEs)``."""
    def deco(fn):
        if name in DATAFLOWS:
            raise RegistryError(f"dataflow {name!r} is already registered")
        DATAFLOWS[name] = fn
        return fn
    return deco


def get_dataflow(name: str) -> Callable:
    """The mapper of a dataflow; raises `RegistryError` with close names."""
    try:
        return DATAFLOWS[name.lower()]
    except KeyError:
        raise RegistryError(
            f"unknown dataflow {name!r}; known: {', '.join(DATAFLOWS)}.{close_names(name.lower(), DATAFLOWS)}"
        ) from None


@dataclass(frozen=True)
class Reuse:
    """Uses per RF fill (``rf``), PEs fed by one buffer read (``array``), and whether the RF holds it."""

    rf: float
    array: float
    in_rf: bool


@dataclass(frozen=True)
class Tile:
    """The part of the layer held in the global buffer, and the DRAM loop order (outer to inner)."""

    n: int
    m: int
    c: int
    e: int
    order: str = "nmce"


@dataclass(frozen=True)
class LayerEnergy:
    """Accesses and energy of one layer under one dataflow's best mapping.

    Attributes:
        layer: the layer (for a grouped layer, counts cover all groups).
        dataflow: ``ws``, ``os``, ``nlr`` or ``rs``.
        arch: the array it was mapped on (for ``equal_area``, its own RF/buffer split).
        params: the dataflow's spatial / RF parameters.
        tile: buffer tile and DRAM loop order.
        active_pes: PEs that hold work.
        accesses: level -> data type -> accesses (``alu``: ``{"mac": MACs}``).
        cycles: MACs / active PEs (one MAC per PE per cycle, no stalls).
    """

    layer: ConvLayer
    dataflow: str
    arch: SpatialArch
    params: dict
    tile: Tile
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


# ---- the search -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def divisors(x: int) -> tuple[int, ...]:
    """Divisors of ``x`` in increasing order (cached: the mapping search asks for the same ones often).

    >>> divisors(12)
    (1, 2, 3, 4, 6, 12)
    """
    small = [d for d in range(1, math.isqrt(x) + 1) if x % d == 0]
    return tuple(sorted(set(small + [x // d for d in small])))


_RELEVANT = {"ifmap": "nce", "weight": "mc", "psum": "nme"}
_ORDERS = tuple("".join(p) for p in itertools.permutations("nmce"))


def _loads(tile_counts: dict[str, int], order: str, relevant: str) -> int:
    """Times a data type's buffer tile is loaded: trips of every loop down to its innermost relevant one."""
    inner = max(order.index(x) for x in relevant)
    return math.prod(tile_counts[x] for x in order[: inner + 1])


def dram_accesses(layer: ConvLayer, tile: Tile, m: int | None = None) -> dict[str, float]:
    """DRAM words per data type for one group of ``layer`` under ``tile`` (``m``: filters per group)."""
    m = m or layer.m // layer.groups
    counts = {"n": -(-layer.n // tile.n), "m": -(-m // tile.m), "c": -(-layer.c // tile.c), "e": -(-layer.e // tile.e)}
    halo = max(0, layer.r - layer.stride[0])
    ifmap_pass = layer.n * layer.c * layer.w * (layer.h + (counts["e"] - 1) * halo)
    out = {}
    refetch = _loads(counts, tile.order, _RELEVANT["ifmap"]) / (counts["n"] * counts["c"] * counts["e"])
    out["ifmap"] = refetch * ifmap_pass
    refetch = _loads(counts, tile.order, _RELEVANT["weight"]) / (counts["m"] * counts["c"])
    out["weight"] = refetch * m * layer.c * layer.r * layer.s
    outputs = layer.n * m * layer.e * layer.f
    writes = _loads(counts, tile.order, _RELEVANT["psum"]) / (counts["n"] * counts["m"] * counts["e"]) * outputs
    out["psum"] = 2 * writes - outputs
    return out


def buffer_words_needed(layer: ConvLayer, tile: Tile) -> int:
    """Words of the buffer tile: ifmap rows with halo, weights, partial sums."""
    rows = min((tile.e - 1) * layer.stride[0] + layer.r, layer.hp)
    return (tile.n * tile.c * rows * layer.wp + tile.m * tile.c * layer.r * layer.s
            + tile.n * tile.m * tile.e * layer.f)


def onchip_accesses(macs: float, outputs: float, reuse: dict[str, Reuse], rounds: float = 1) -> dict[str, dict[str, float]]:
    """RF, array and buffer accesses from the reuse of each data type (see the module doc).

    ``rounds`` is how many times each output goes to DRAM and back as a partial sum, plus one.
    """
    acc = {"rf": {}, "array": {}, "buffer": {}}
    for d in ("ifmap", "weight"):
        ru = reuse[d]
        acc["rf"][d] = float(macs) if ru.in_rf else 0.0
        acc["array"][d] = macs / ru.rf
        acc["buffer"][d] = macs / (ru.rf * ru.array)
    rf, arr = reuse["psum"].rf, reuse["psum"].array
    acc["rf"]["psum"] = 2 * (macs - macs / rf)
    acc["array"]["psum"] = macs / rf - macs / (rf * arr)
    acc["buffer"]["psum"] = max(2 * (macs / (rf * arr) - outputs * rounds), 0.0)
    return acc


def psum_rounds(dram: dict[str, float], outputs: float) -> float:
    """DRAM rounds of each output (``a`` of the paper): writes per output, from ``2a - 1`` accesses."""
    return (dram["psum"] + outputs) / (2 * outputs)


def _best_dram(layer: ConvLayer, tile_dims: tuple[int, int, int, int], m: int, costs, outputs: float):
    """The DRAM loop order of least energy: DRAM accesses, less the buffer partial-sum accesses that
    the extra DRAM rounds replace (``2a(b - 1)``)."""
    best = None
    for order in _ORDERS:
        tile = Tile(*tile_dims, order=order)
        dram = dram_accesses(layer, tile, m)
        e = costs.dram * sum(dram.values()) - costs.buffer * 2 * outputs * (psum_rounds(dram, outputs) - 1)
        if best is None or e < best[0]:
            best = (e, tile, dram)
    return best


def _onchip_energy(macs: float, outputs: float, reuse: dict[str, Reuse], c) -> float:
    """``onchip_accesses`` weighted by the costs, in scalar arithmetic (the search's inner loop)."""
    total = 0.0
    for d in ("ifmap", "weight"):
        ru = reuse[d]
        total += (macs * c.rf if ru.in_rf else 0.0) + macs / ru.rf * c.array + macs / (ru.rf * ru.array) * c.buffer
    rf, arr = reuse["psum"].rf, reuse["psum"].array
    total += 2 * (macs - macs / rf) * c.rf + (macs / rf - macs / (rf * arr)) * c.array
    return total + 2 * (macs / (rf * arr) - outputs) * c.buffer


def _best_inner(layer: ConvLayer, arch: SpatialArch, mapper, tile: Tile, macs: float, outputs: float):
    """Lowest on-chip energy (then fewest cycles) over the dataflow's parameters for one tile."""
    best = None
    for params, reuse, pes in mapper(layer, arch, tile):
        key = (_onchip_energy(macs, outputs, reuse, arch.costs), macs / pes)
        if best is None or key < best[0]:
            best = (key, params, pes, reuse)
    return best


def map_layer(layer: ConvLayer, arch: SpatialArch, dataflow: str) -> LayerEnergy:
    """The lowest-energy mapping of ``layer`` on ``arch`` under ``dataflow``.

    A grouped layer is mapped one group at a time; its counts cover all groups.

    Raises:
        NoMappingError: no mapping fits the array, RF and buffer.
        RegistryError: unknown dataflow.
    """
    mapper = get_dataflow(dataflow)
    g = layer.groups
    m = layer.m // g
    macs = layer.macs / g
    outputs = layer.n * m * layer.e * layer.f
    best = None
    for dims in itertools.product(divisors(layer.n), divisors(m), divisors(layer.c), divisors(layer.e)):
        if buffer_words_needed(layer, Tile(*dims)) > arch.buffer_words:
            continue
        inner = _best_inner(layer, arch, mapper, Tile(*dims), macs, outputs)
        if inner is None:
            continue
        e_dram, tile, dram = _best_dram(layer, dims, m, arch.costs, outputs)
        key = (inner[0][0] + e_dram, inner[0][1])
        if best is None or key < best[0]:
            best = (key, tile, inner, dram)
    if best is None:
        raise NoMappingError(
            f"layer {layer.name!r} ({layer.kind} {layer.c}x{layer.h}x{layer.w} -> {layer.m}, {layer.r}x{layer.s}): "
            f"no {dataflow.upper()} mapping fits {arch.pe_rows}x{arch.pe_cols} PEs, {arch.rf_bytes} B RF "
            f"and a {arch.buffer_bytes} B buffer"
        )
    (_, cycles), tile, (_, params, pes, reuse), dram = best
    onchip = onchip_accesses(macs, outputs, reuse, psum_rounds(dram, outputs))
    accesses = {"alu": {"mac": macs}, **onchip, "dram": dram}
    accesses = {lv: {d: v * g for d, v in accesses[lv].items()} for lv in LEVELS}
    return LayerEnergy(layer, dataflow, arch, params, tile, pes, accesses, cycles * g)


def evaluate_mapping(layer: ConvLayer, arch: SpatialArch, dataflow: str, tile: Tile, params: dict) -> LayerEnergy:
    """Accesses and energy of one given mapping (``layer`` must have one group).

    Raises:
        NoMappingError: ``params`` is not a valid mapping of ``tile`` on ``arch``.
    """
    for cand, reuse, pes in get_dataflow(dataflow)(layer, arch, tile):
        if cand == params:
            macs = float(layer.macs)
            dram = dram_accesses(layer, tile)
            onchip = onchip_accesses(macs, layer.ofmap_elements, reuse, psum_rounds(dram, layer.ofmap_elements))
            accesses = {"alu": {"mac": macs}, **onchip, "dram": dram}
            return LayerEnergy(layer, dataflow, arch, params, tile, pes, accesses, macs / pes)
    raise NoMappingError(f"{params} is not a {dataflow.upper()} mapping of tile {tile} on {arch.pe_rows}x{arch.pe_cols} PEs")


# ---- the four dataflows -----------------------------------------------------------------------

def _spatial(arch: SpatialArch, **limits: int) -> Iterator[dict[str, int]]:
    """Every choice of a divisor of each limit whose product fits the PE count."""
    names = list(limits)
    for combo in itertools.product(*(divisors(limits[n]) for n in names)):
        if math.prod(combo) <= arch.pes:
            yield dict(zip(names, combo, strict=True))


@register_dataflow("nlr")
def _nlr(layer: ConvLayer, arch: SpatialArch, tile: Tile) -> Iterator:
    for sp in _spatial(arch, p_m=tile.m, p_c=tile.c):
        reuse = {"ifmap": Reuse(1, sp["p_m"], False), "weight": Reuse(1, 1, False), "psum": Reuse(1, sp["p_c"], False)}
        yield sp, reuse, sp["p_m"] * sp["p_c"]


@register_dataflow("ws")
def _ws(layer: ConvLayer, arch: SpatialArch, tile: Tile) -> Iterator:
    if arch.rf_words < 1:
        return
    plane = layer.r * layer.s
    conv_uses = max(1.0, plane / (layer.stride[0] * layer.stride[1]))
    for sp in _spatial(arch, p_k=plane, p_m=tile.m, p_c=tile.c):
        reuse = {
            "ifmap": Reuse(1, sp["p_m"] * min(sp["p_k"], conv_uses), False),
            "weight": Reuse(tile.n * tile.e * layer.f, 1, True),
            "psum": Reuse(1, sp["p_c"] * sp["p_k"], False),
        }
        yield sp, reuse, sp["p_k"] * sp["p_m"] * sp["p_c"]


def block_reuse(rows: int, cols: int, layer: ConvLayer) -> float:
    """Uses per delivered ifmap value over a ``rows x cols`` block of outputs of one filter plane."""
    uy, ux = layer.stride
    return rows * cols * layer.r * layer.s / (((rows - 1) * uy + layer.r) * ((cols - 1) * ux + layer.s))


@register_dataflow("os")
def _os(layer: ConvLayer, arch: SpatialArch, tile: Tile) -> Iterator:
    if arch.rf_words < 1:
        return
    for sp in _spatial(arch, p_m=tile.m, p_e=tile.e, p_f=layer.f):
        reuse = {
            "ifmap": Reuse(1, sp["p_m"] * block_reuse(sp["p_e"], sp["p_f"], layer), False),
            "weight": Reuse(1, sp["p_e"] * sp["p_f"], False),
            "psum": Reuse(tile.c * layer.r * layer.s, 1, True),
        }
        yield sp, reuse, sp["p_m"] * sp["p_e"] * sp["p_f"]


def rs_rf_words(p: int, q: int, s: int) -> int:
    """RF words of a row-stationary PE: p x q filter rows, q ifmap windows, p partial sums."""
    return p * q * s + q * s + p


@register_dataflow("rs")
def _rs(layer: ConvLayer, arch: SpatialArch, tile: Tile) -> Iterator:
    r, s, f = layer.r, layer.s, layer.f
    uy, ux = layer.stride
    if r > arch.pe_rows:
        return
    window = s * f / ((f - 1) * ux + s)
    widest = min(tile.e, arch.pes // r)
    for e_set in sorted({d for d in divisors(tile.e) if d <= widest} | {widest}):
        diag = r * e_set / ((e_set - 1) * uy + r)
        folds = -(-tile.e // e_set) * e_set / tile.e
        weight = Reuse(tile.n * f, e_set, True)
        for p in divisors(tile.m):
            if rs_rf_words(p, 1, s) > arch.rf_words:
                break
            for q in divisors(tile.c):
                if rs_rf_words(p, q, s) > arch.rf_words:
                    break
                for t_m in divisors(tile.m // p):
                    ifmap = Reuse(p * window, t_m * diag, True)
                    for t_c in divisors(tile.c // q):
                        pes = r * e_set * t_m * t_c
                        if pes > arch.pes:
                            break
                        reuse = {"ifmap": ifmap, "weight": weight, "psum": Reuse(q * s, r * t_c, True)}
                        yield ({"p": p, "q": q, "e_set": e_set, "t_m": t_m, "t_c": t_c}, reuse, pes / folds)
