"""Compare dataflows over a whole network, and the Eyeriss chip against its measurements.

>>> from edgefit.accel import DataflowConfig
>>> DataflowConfig(dataflows=("rs", "ws")).batch
16
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgefit.accel.arch import (
    LEVELS,
    SpatialArch,
    equal_area_rf_bytes,
    eyeriss_chip,
    paper_array,
    reference_data,
)
from edgefit.accel.dataflow import DATA, LayerEnergy, get_dataflow, map_layer
from edgefit.accel.layers import ConvLayer, layers_from_profile
from edgefit.errors import ConfigError

#: ``os`` names the paper's three output-stationary variants together (ISCA 2016, Sec. IV-B).
ALIASES = {"os": ("osa", "osb", "osc")}


@dataclass(frozen=True)
class DataflowConfig:
    """What to compare.

    Attributes:
        arch: the array (RS's RF and buffer; default: the ISCA 2016 256-PE array).
        dataflows: names, any of ``rs, ws, osa, osb, osc, nlr``; ``os`` stands for
            ``osa, osb, osc``.
        batch: batch size N.
        equal_area: give WS, OS and NLR the storage area of ``arch``, with the RF
            their definition needs and the rest of the area as buffer (the paper's
            setup, `SpatialArch.with_rf`); ``False`` maps every dataflow on ``arch``
            as given.
    """

    arch: SpatialArch = field(default_factory=paper_array)
    dataflows: tuple[str, ...] = ("rs", "ws", "osa", "osb", "osc", "nlr")
    batch: int = 16
    equal_area: bool = True

    def __post_init__(self) -> None:
        if not self.dataflows:
            raise ConfigError("give at least one dataflow (rs, ws, os, nlr)")
        names = []
        for d in (d.strip().lower() for d in self.dataflows):
            names += [x for x in ALIASES.get(d, (d,)) if x not in names]
        object.__setattr__(self, "dataflows", tuple(names))
        for d in self.dataflows:
            get_dataflow(d)
        if not isinstance(self.batch, int) or self.batch < 1:
            raise ConfigError(f"batch must be an integer >= 1, got {self.batch!r}")

    def arch_for(self, dataflow: str) -> SpatialArch:
        """The array a dataflow is mapped on (its own RF / buffer split under ``equal_area``)."""
        rf = equal_area_rf_bytes(dataflow)
        if not self.equal_area or dataflow == "rs" or rf is None:
            return self.arch
        return self.arch.with_rf(rf)


@dataclass(frozen=True)
class DataflowReport:
    """Per-layer energy of each dataflow, plus the layers the model does not cover."""

    model: str
    config: DataflowConfig
    results: dict[str, tuple[LayerEnergy, ...]]
    uncovered: tuple[tuple[str, str, int], ...]

    @property
    def layers(self) -> tuple[ConvLayer, ...]:
        return tuple(r.layer for r in next(iter(self.results.values())))

    def rows(self, dataflow: str, kind: str | None = None) -> tuple[LayerEnergy, ...]:
        return tuple(r for r in self.results[dataflow] if kind is None or r.layer.kind == kind)

    def total(self, dataflow: str, kind: str | None = None) -> float:
        """Energy in MAC units over the layers of ``kind`` (``conv``, ``fc`` or all)."""
        return sum(r.total for r in self.rows(dataflow, kind))

    def ratio(self, dataflow: str, kind: str | None = None, against: str = "rs") -> float:
        """Energy of ``dataflow`` over that of ``against`` (how much more it uses)."""
        return self.total(dataflow, kind) / self.total(against, kind)

    def breakdown(self, dataflow: str, kind: str | None = None) -> dict[str, float]:
        """Energy by level (alu, rf, array, buffer, dram) summed over the layers."""
        out = dict.fromkeys(LEVELS, 0.0)
        for r in self.rows(dataflow, kind):
            for level, v in r.by_level().items():
                out[level] += v
        return out

    def breakdown_by_data(self, dataflow: str, kind: str | None = None) -> dict[str, float]:
        out = dict.fromkeys(("mac", *DATA), 0.0)
        for r in self.rows(dataflow, kind):
            for d, v in r.by_data().items():
                out[d] += v
        return out

    def table(self, markdown: bool = False, kind: str | None = None) -> str:
        """Per layer (of ``kind``, or all): energy per MAC of each dataflow and its ratio to RS; totals per kind."""
        dfs = self.config.dataflows
        head = ["layer", "kind", "MACs", *[f"{d.upper()} /MAC" for d in dfs]]
        if "rs" in dfs:
            head += [f"{d.upper()}/RS" for d in dfs if d != "rs"]
        lines = []
        for i, layer in enumerate(self.layers):
            if kind is not None and layer.kind != kind:
                continue
            rows = [self.results[d][i] for d in dfs]
            cells = [layer.name, layer.kind, f"{layer.macs:,}", *[f"{r.total / layer.macs:.3f}" for r in rows]]
            if "rs" in dfs:
                rs = self.results["rs"][i].total
                cells += [f"{self.results[d][i].total / rs:.2f}x" for d in dfs if d != "rs"]
            lines.append(cells)
        for k in ("conv", "fc"):
            if not self.rows(dfs[0], k) or kind not in (None, k):
                continue
            macs = sum(r.layer.macs for r in self.rows(dfs[0], k))
            cells = [f"total {k.upper()}", k, f"{macs:,}", *[f"{self.total(d, k) / macs:.3f}" for d in dfs]]
            if "rs" in dfs:
                cells += [f"{self.ratio(d, k):.2f}x" for d in dfs if d != "rs"]
            lines.append(cells)
        return render_table(head, lines, markdown)

    def accesses_table(self, dataflow: str, markdown: bool = False) -> str:
        """Per layer: accesses at every level for each data type (ifmap / weight / psum), and the mapping."""
        head = ["layer", *[f"{lv} i/w/p" for lv in LEVELS if lv != "alu"], "mapping", "active PEs"]
        lines = []
        for r in self.results[dataflow]:
            cells = [r.layer.name]
            for lv in LEVELS[1:]:
                cells.append("/".join(f"{r.accesses[lv][d]:,.0f}" for d in DATA))
            cells += [",".join(f"{k}={v}" for k, v in r.params.items()), f"{r.active_pes}"]
            lines.append(cells)
        return render_table(head, lines, markdown)

    def to_dict(self) -> dict:
        """Everything, JSON-ready: per dataflow and layer the mapping, accesses and energy by level and data type."""
        arch = self.config.arch
        return {
            "model": self.model,
            "array": {"pe_rows": arch.pe_rows, "pe_cols": arch.pe_cols, "rf_bytes": arch.rf_bytes,
                      "buffer_bytes": arch.buffer_bytes, "word_bits": arch.word_bits,
                      "costs": {lv: getattr(arch.costs, lv) for lv in LEVELS}},
            "batch": self.config.batch,
            "equal_area": self.config.equal_area,
            "units": "energy in units of one MAC; accesses in words",
            "dataflows": {
                d: [{"layer": r.layer.name, "kind": r.layer.kind, "macs": r.layer.macs,
                     "rf_bytes": r.arch.rf_bytes, "buffer_bytes": r.arch.buffer_bytes,
                     "params": r.params, "active_pes": r.active_pes, "cycles": r.cycles, "accesses": r.accesses,
                     "energy": r.energy, "total": r.total} for r in rows]
                for d, rows in self.results.items()},
            "not_covered": [{"layer": n, "kind": k, "macs": m} for n, k, m in self.uncovered],
        }

    def breakdown_table(self, kind: str | None = None, markdown: bool = False, by: str = "level") -> str:
        """Energy by level (``by="level"``: alu, rf, array, buffer, dram) or by data type (``by="data"``:
        mac, ifmap, weight, psum), normalized to RS's total (or the first dataflow's), like the paper's figures."""
        if by not in ("level", "data"):
            raise ConfigError(f"breakdown by {by!r}: expected 'level' or 'data'")
        dfs = self.config.dataflows
        ref = self.total("rs" if "rs" in dfs else dfs[0], kind)
        keys = LEVELS if by == "level" else ("mac", *DATA)
        lines = []
        for d in dfs:
            b = self.breakdown(d, kind) if by == "level" else self.breakdown_by_data(d, kind)
            lines.append([d.upper(), *[f"{b[k] / ref:.3f}" for k in keys], f"{sum(b.values()) / ref:.3f}"])
        return render_table(["dataflow", *keys, "total"], lines, markdown)


def render_table(head: list[str], lines: list[list[str]], markdown: bool) -> str:
    """A Markdown table, or plain columns (first left-aligned, the rest right-aligned)."""
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
        return "\n".join(out + ["| " + " | ".join(c) + " |" for c in lines])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
    return "\n".join("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                     for row in [head, *lines])


def compare_dataflows(profile, config: DataflowConfig | None = None, on_layer=None) -> DataflowReport:
    """Map every CONV / FC layer of ``profile`` under each dataflow of ``config``.

    Args:
        profile: an `edgefit.metrics.Profile` (any batch: ``config.batch`` replaces it).
        config: arrays, dataflows, batch.
        on_layer: optional callback ``(layer_name, dataflow)`` after each mapping (progress).

    Raises:
        NoMappingError: a layer fits no mapping of a dataflow (one line naming both).
        UnsupportedLayerError: the profile has no CONV / FC layer at all.
    """
    from edgefit.accel.layers import UnsupportedLayerError

    config = config or DataflowConfig()
    layers, uncovered = layers_from_profile(profile, batch=config.batch)
    if not layers:
        names = ", ".join(f"{n} ({k})" for n, k, _ in uncovered) or "none with MACs"
        raise UnsupportedLayerError(f"{profile.model}: no CONV or FC layer for the accelerator model; layers with MACs: {names}")
    return compare_layers(profile.model, layers, config, uncovered=uncovered, on_layer=on_layer)


def compare_layers(model: str, layers, config: DataflowConfig | None = None, *, uncovered=(),
                   on_layer=None) -> DataflowReport:
    """`compare_dataflows` on a list of `ConvLayer` (e.g. read from an energy-tool file);
    each layer keeps its own batch size."""
    config = config or DataflowConfig()
    results = {}
    for d in config.dataflows:
        arch = config.arch_for(d)
        rows = []
        for layer in layers:
            rows.append(map_layer(layer, arch, d))
            if on_layer is not None:
                on_layer(layer.name, d)
        results[d] = tuple(rows)
    return DataflowReport(model, config, results, tuple(uncovered))


def layer_energy(profile, dataflow: str = "rs", config: DataflowConfig | None = None) -> dict[str, float]:
    """Energy of each CONV / FC layer (in units of one MAC) under one dataflow: an energy
    source for energy-aware pruning (Yang et al., CVPR 2017), layer name -> energy.

    >>> from edgefit.metrics import profile
    >>> from torch import nn
    >>> e = layer_energy(profile(nn.Sequential(nn.Conv2d(1, 2, 3)), input_shape=(1, 1, 5, 5)),
    ...                  config=DataflowConfig(dataflows=("rs",), batch=1))
    >>> list(e), e["0"] > 2 * 3 * 3 * 9
    (['0'], True)
    """
    config = config or DataflowConfig(dataflows=(dataflow,))
    report = compare_dataflows(profile, config)
    return {r.layer.name: r.total for r in report.results[dataflow.lower()]}


@dataclass(frozen=True)
class ChipComparison:
    """Predicted AlexNet CONV figures on the Eyeriss chip beside the measured ones."""

    report: DataflowReport
    latency_seconds: float
    compute_seconds: float
    dram_bytes_per_image: float
    dram_accesses_per_mac: float
    power_watts: float | None
    measured: dict[str, tuple[float, str]]

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(figure, predicted, measured, source of the measurement)."""
        m = self.measured
        batch = self.report.config.batch
        out = [
            (f"CONV latency per batch of {batch}", f"{self.latency_seconds * 1e3:.1f} ms",
             f"{m['runtime_seconds'][0] * 1e3:.1f} ms", m["runtime_seconds"][1]),
            ("  of which compute-bound (MACs / active PEs)", f"{self.compute_seconds * 1e3:.1f} ms", "", ""),
            ("off-chip traffic per image", f"{self.dram_bytes_per_image / 1e6:.2f} MB",
             f"{m['dram_bytes_per_image'][0] / 1e6:.2f} MB", m["dram_bytes_per_image"][1]),
            ("DRAM accesses per MAC", f"{self.dram_accesses_per_mac:.4f}", f"{m['dram_accesses_per_mac'][0]:.4f}",
             m["dram_accesses_per_mac"][1]),
        ]
        if self.power_watts is not None:
            out.append(("power", f"{self.power_watts * 1e3:.0f} mW", f"{m['power_watts'][0] * 1e3:.0f} mW",
                        m["power_watts"][1]))
        return out


def eyeriss_comparison(profile, *, arch: SpatialArch | None = None, batch: int | None = None) -> ChipComparison:
    """RS on the Eyeriss chip for the CONV layers of ``profile``: latency, DRAM traffic, power.

    Latency per layer is the larger of the compute time (MACs / active PEs at the
    clock) and the DRAM time (words x 2 B / bandwidth); power is the model's energy
    (``pj_per_unit`` per normalized unit, an estimate) over that latency.
    """
    arch = arch or eyeriss_chip()
    data = reference_data()["eyeriss_measured"]
    batch = batch or int(data["batch"]["value"])
    report = compare_dataflows(profile, DataflowConfig(arch=arch, dataflows=("rs",), batch=batch, equal_area=False))
    rows = report.rows("rs", "conv")
    compute = sum(r.cycles for r in rows) / arch.clock_hz
    latency = sum(max(r.cycles / arch.clock_hz, r.dram_words() * arch.word_bytes / arch.dram_bytes_per_s) for r in rows)
    dram_words = sum(r.dram_words() for r in rows)
    macs = sum(r.layer.macs for r in rows)
    energy = sum(r.total for r in rows)
    power = energy * arch.pj_per_unit * 1e-12 / latency if arch.pj_per_unit else None
    measured = {k: (float(v["value"]), v["source"]) for k, v in data.items()}
    return ChipComparison(report, latency, compute, dram_words * arch.word_bytes / batch, dram_words / macs,
                          power, measured)
