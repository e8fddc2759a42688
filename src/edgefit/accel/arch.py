"""A spatial architecture: PE array, register file per PE, global buffer, DRAM.

Costs are energy per 16-bit access at each level of the hierarchy, normalized
to one 16-bit MAC, loaded from ``accel/data/eyeriss.yaml`` with their sources
(Chen et al., ISCA 2016; reference/003 "Data Movement is Expensive"):

======  ====  ====================================
level   cost  what
======  ====  ====================================
alu     1     one MAC
rf      1     the PE's own register file
array   2     a neighbour PE / the on-chip network
buffer  6     the global buffer
dram    200   off-chip memory
======  ====  ====================================

>>> arch = paper_array()
>>> arch.pes, arch.rf_words, arch.buffer_words
(256, 256, 65536)
>>> parse_bytes("128KiB"), parse_bytes("512B"), parse_array("12x14")
(131072, 512, (12, 14))
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from importlib import resources

from edgefit.errors import ConfigError

LEVELS = ("alu", "rf", "array", "buffer", "dram")


@dataclass(frozen=True)
class Costs:
    """Energy per access at each level, in units of one MAC (``alu`` = 1)."""

    alu: float = 1.0
    rf: float = 1.0
    array: float = 2.0
    buffer: float = 6.0
    dram: float = 200.0
    sources: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for level in LEVELS:
            if not getattr(self, level) >= 0:
                raise ConfigError(f"access cost {level} must be >= 0, got {getattr(self, level)!r}")


@dataclass(frozen=True)
class SpatialArch:
    """A PE array with a register file per PE, a global buffer and DRAM.

    Attributes:
        pe_rows: PE rows (Eyeriss maps a filter's rows onto them).
        pe_cols: PE columns.
        rf_bytes: register file per PE (0: no local storage).
        buffer_bytes: global buffer.
        word_bits: bits of one value (weights, activations, partial sums).
        costs: energy per access by level.
        clock_hz: clock, for latency (optional).
        dram_bytes_per_s: off-chip bandwidth, for latency (optional).
        pj_per_unit: picojoules of one normalized unit, for power (optional).
        name: a label.
    """

    pe_rows: int
    pe_cols: int
    rf_bytes: int
    buffer_bytes: int
    word_bits: int = 16
    costs: Costs = Costs()
    clock_hz: float | None = None
    dram_bytes_per_s: float | None = None
    pj_per_unit: float | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        for field_name in ("pe_rows", "pe_cols", "word_bits"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{field_name} must be an integer >= 1, got {value!r}")
        for field_name in ("rf_bytes", "buffer_bytes"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{field_name} must be an integer >= 0, got {value!r}")

    @property
    def pes(self) -> int:
        return self.pe_rows * self.pe_cols

    @property
    def word_bytes(self) -> float:
        return self.word_bits / 8

    @property
    def rf_words(self) -> int:
        return int(self.rf_bytes * 8 // self.word_bits)

    @property
    def buffer_words(self) -> int:
        return int(self.buffer_bytes * 8 // self.word_bits)

    @property
    def storage_bytes(self) -> int:
        """All on-chip storage: register files plus the buffer."""
        return self.pes * self.rf_bytes + self.buffer_bytes

    @property
    def storage_area_um2(self) -> float:
        """Area of the register files and the buffer (65 nm, `storage_area_um2`)."""
        return self.pes * storage_area_um2(self.rf_bytes) + storage_area_um2(self.buffer_bytes)

    def with_rf(self, rf_bytes: int) -> SpatialArch:
        """The same storage area with another RF size per PE: what the RFs free (or take) goes to
        (or comes from) the buffer, at the buffer's area per byte (Chen et al., ISCA 2016, Sec. VI-A)."""
        left = self.storage_area_um2 - self.pes * storage_area_um2(rf_bytes)
        if left < 0:
            raise ConfigError(f"an RF of {rf_bytes} B per PE takes more than the {self.storage_area_um2:,.0f} um^2 "
                              "of on-chip storage area")
        return replace(self, rf_bytes=rf_bytes, buffer_bytes=storage_bytes_for_area(left))


@functools.cache
def _data() -> dict:
    import yaml

    text = resources.files("edgefit.accel").joinpath("data/eyeriss.yaml").read_text()
    return yaml.safe_load(text)


def reference_data() -> dict:
    """The raw data file (costs, arrays, the Eyeriss measurements), values with sources."""
    return _data()


def default_costs() -> Costs:
    """The Eyeriss normalized costs (RF 1, array 2, buffer 6, DRAM 200, ALU 1)."""
    c = _data()["costs"]
    return Costs(**{level: float(c[level]["value"]) for level in LEVELS},
                 sources=tuple((level, c[level]["source"]) for level in LEVELS))


def _array(name: str) -> SpatialArch:
    d = _data()["arrays"][name]
    v = {k: d[k]["value"] for k in d if isinstance(d[k], dict)}
    bandwidth = pj = None
    if "device" in d:  # off-chip bandwidth and MAC energy from the hardware package's device file
        from edgefit.hardware import get_device

        device = get_device(d["device"])
        bandwidth, pj = device.bandwidth_bytes_per_s, device.energy.mac_pj["int16"]
    return SpatialArch(
        pe_rows=int(v["pe_rows"]), pe_cols=int(v["pe_cols"]), rf_bytes=int(v["rf_bytes"]),
        buffer_bytes=int(v["buffer_bytes"]), word_bits=int(v["word_bits"]), costs=default_costs(),
        clock_hz=v.get("clock_hz"), dram_bytes_per_s=bandwidth, pj_per_unit=pj, name=name,
    )



def storage_area_um2(size_bytes: float) -> float:
    """Area of one memory of ``size_bytes`` in 65 nm (um^2): area per byte from the data file,
    linear between its points (small memories cost more per byte).

    >>> round(storage_area_um2(512)), round(storage_area_um2(131072))
    (10685, 1664614)
    """
    if size_bytes <= 0:
        return 0.0
    points = _data()["equal_area"]["um2_per_byte"]
    sizes, per_byte = [p[0] for p in points], [p[1] for p in points]
    if size_bytes >= sizes[-1]:
        return per_byte[-1] * size_bytes
    i = max(k for k in range(len(sizes)) if sizes[k] <= size_bytes) if size_bytes >= sizes[0] else 0
    j = min(i + 1, len(sizes) - 1)
    frac = 0.0 if j == i else (size_bytes - sizes[i]) / (sizes[j] - sizes[i])
    return (per_byte[i] + frac * (per_byte[j] - per_byte[i])) * size_bytes


def storage_bytes_for_area(area_um2: float) -> int:
    """The memory size (bytes, rounded down) whose area is ``area_um2``: the inverse of
    `storage_area_um2`, linear between its points as the paper's analysis interpolates.

    >>> storage_bytes_for_area(storage_area_um2(131072))
    131072
    """
    points = [(float(p[0]), storage_area_um2(p[0])) for p in _data()["equal_area"]["um2_per_byte"]]
    if area_um2 < points[0][1]:
        return 0
    if area_um2 >= points[-1][1]:
        return int(area_um2 / _data()["equal_area"]["um2_per_byte"][-1][1] + 1e-9)
    for (s0, a0), (s1, a1) in zip(points, points[1:], strict=False):
        if a0 <= area_um2 < a1:
            return int(s0 + (area_um2 - a0) / (a1 - a0) * (s1 - s0))
    return int(points[-1][0])


def equal_area_rf_bytes(dataflow: str) -> int | None:
    """RF bytes per PE that ``dataflow``'s definition needs, from the data file (None: not listed)."""
    entry = _data()["equal_area"]["rf_bytes"].get(dataflow)
    return None if entry is None else int(entry["value"])


def paper_array() -> SpatialArch:
    """The ISCA 2016 comparison array: 256 PEs, 512 B RF, 128 kB buffer, 16-bit."""
    return _array("paper256")


def eyeriss_chip() -> SpatialArch:
    """The Eyeriss v1 chip: 12x14 PEs, 0.5 kB scratchpads, 108 kB buffer, 200 MHz, 16-bit."""
    return _array("eyeriss")


_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}


def parse_bytes(text: str) -> int:
    """``"512B"``, ``"128KiB"``, ``"108kB"`` (1000), ``"0"`` -> bytes.

    Raises:
        ConfigError: not a size.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ConfigError(f"size {text!r}: expected a number with B, kB, KiB, MB or MiB, e.g. 128KiB")
    return int(round(float(m.group(1)) * _UNITS[unit]))


def parse_array(text: str) -> tuple[int, int]:
    """``"16x16"`` -> (16, 16); ``"256"`` -> (16, 16) when square, else (1, 256).

    Raises:
        ConfigError: not ROWSxCOLS with positive integers.
    """
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x\u00d7*]\s*(\d+))?\s*", str(text))
    if m is None or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise ConfigError(f"PE array {text!r}: expected ROWSxCOLS, e.g. 16x16")
    if m.group(2) is not None:
        return int(m.group(1)), int(m.group(2))
    n = int(m.group(1))
    root = int(round(n ** 0.5))
    return (root, root) if root * root == n else (1, n)
