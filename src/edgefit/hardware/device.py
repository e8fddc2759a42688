"""Devices as data: a frozen `Device` loaded from a YAML file, every number with its source.

A device file (``src/edgefit/hardware/devices/<name>.yaml``, or any user file) gives
each number as ``{value: ..., source: "..."}`` in base units (FLOP/s or op/s,
bytes per second, bytes, watts, picojoules):

.. code-block:: yaml

    name: stm32f746
    display_name: STM32F746 (Cortex-M7, 216 MHz)
    kind: mcu
    peak_ops_per_s:                # 1 MAC = 2 ops, at each precision the device runs
      fp32: {value: 432.0e+6, source: "..."}
    bandwidth_bytes_per_s: {value: 1.728e+9, source: "..."}
    sram_bytes: {value: 327680, source: "..."}
    activation_ram_bytes: {value: 327680, source: "..."}
    activation_memory: SRAM        # the name used in fit messages
    weight_storage_bytes: {value: 1048576, source: "..."}
    weight_storage: flash
    power_watts: {value: 0.33, source: "..."}
    energy:
      table: 45nm                  # the lectures' 45 nm table (devices/_energy_45nm.yaml)
      weight_level: sram           # where weights are read from, per inference
      activation_level: sram       # where activations are read from and written to

An ``energy`` mapping may instead give its own ``mac_pj``, ``add_pj`` (per
precision) and ``access_pj`` (per 32-bit access, per memory level), each number
with a source. Files whose name starts with ``_`` are shared tables, not devices.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgefit._io import read_mapping
from edgefit.errors import DeviceError, close_names

#: Precisions a device may list, with their bit widths.
PRECISION_BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "int16": 16, "int8": 8}

_REQUIRED = (
    "name",
    "display_name",
    "kind",
    "peak_ops_per_s",
    "bandwidth_bytes_per_s",
    "sram_bytes",
    "activation_ram_bytes",
    "weight_storage_bytes",
    "energy",
)
_OPTIONAL = (
    "description",
    "power_watts",
    "activation_memory",
    "weight_storage",
    "weights_share_activation_ram",
    "measured",
    "low_precision_ops_per_s",
    "precision_note",
)
LOW_PRECISIONS = {"int4": 4, "binary": 1}  # sub-8-bit rates a device file may list, with sources
#: Every precision an estimate may run a layer at, with its bit width.
ALL_PRECISION_BITS = {**PRECISION_BITS, **LOW_PRECISIONS}
_ENERGY_KEYS = ("table", "mac_pj", "add_pj", "access_pj", "weight_level", "activation_level")


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation and per memory access.

    Attributes:
        mac_pj: picojoules per multiply-accumulate, per precision.
        add_pj: picojoules per other (non-MAC) operation, per precision.
        access_pj: picojoules per 32-bit access, per memory level (``register``,
            ``sram``, ``dram``...). Accesses of narrower data scale linearly with bits.
        weight_level: the level weights are read from once per inference.
        activation_level: the level layer inputs are read from and outputs written to.
        name: label of the table (``45nm``).
    """

    mac_pj: dict[str, float]
    add_pj: dict[str, float]
    access_pj: dict[str, float]
    weight_level: str
    activation_level: str
    name: str = "custom"

    def __post_init__(self) -> None:
        for group, table in (
            ("mac_pj", self.mac_pj),
            ("add_pj", self.add_pj),
            ("access_pj", self.access_pj),
        ):
            if not table:
                raise DeviceError(f"energy.{group} is empty")
            for key, value in table.items():
                _check_positive(f"energy.{group}.{key}", value)
        for attr in ("weight_level", "activation_level"):
            level = getattr(self, attr)
            if level not in self.access_pj:
                raise DeviceError(
                    f"energy.{attr} {level!r} is not a memory level of the energy table "
                    f"(levels: {', '.join(self.access_pj)})"
                )


@dataclass(frozen=True, eq=False)
class Device:
    """One piece of hardware, as data. Units are in the attribute names.

    Attributes:
        name: registry name (``jetson_orin_nano``).
        display_name: a human name.
        kind: ``gpu``, ``npu``, ``tpu``, ``cpu``, ``mcu``, ``accelerator``.
        peak_ops_per_s: peak arithmetic rate per precision, 1 MAC = 2 ops
            (FLOP/s for floating point, op/s for integers).
        bandwidth_bytes_per_s: off-chip (main) memory bandwidth.
        sram_bytes: on-chip SRAM (caches, scratchpads, buffers).
        activation_ram_bytes: memory available for live activations.
        weight_storage_bytes: memory that holds the weights.
        energy: the energy table.
        power_watts: typical power under load, or ``None`` when unknown.
        activation_memory: name of the activation memory in messages (``SRAM``).
        weight_storage: name of the weight storage in messages (``flash``).
        weights_share_activation_ram: weights and activations live in the same
            memory, so they must fit in it together.
        sources: dotted field name -> where the number comes from.
        description: one line.
        path: the file the device was loaded from.
        measured: true for numbers measured on this machine (``host``).
        low_precision_ops_per_s: peak rates below 8 bits (``int4``, ``binary``:
            one binary MAC = one XNOR + one popcount step = 2 ops, as 1 MAC = 2
            ops at every precision), where a source gives one.
        precision_note: what the device's sources say about the precisions it
            lacks (quoted when a layer falls back to a wider rate).
    """

    name: str
    display_name: str
    kind: str
    peak_ops_per_s: dict[str, float]
    bandwidth_bytes_per_s: float
    sram_bytes: float
    activation_ram_bytes: float
    weight_storage_bytes: float
    energy: EnergyTable
    power_watts: float | None = None
    activation_memory: str = "RAM"
    weight_storage: str = "storage"
    weights_share_activation_ram: bool = False
    sources: dict[str, str] = field(default_factory=dict, repr=False)
    description: str = ""
    path: str | None = None
    measured: bool = False
    low_precision_ops_per_s: dict[str, float] = field(default_factory=dict)
    precision_note: str = ""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise DeviceError("device name must be a non-empty string")
        if not self.peak_ops_per_s:
            raise DeviceError(f"device {self.name!r}: peak_ops_per_s lists no precision")
        for precision, value in self.peak_ops_per_s.items():
            if precision not in PRECISION_BITS:
                raise DeviceError(
                    f"device {self.name!r}: unknown precision {precision!r} in peak_ops_per_s "
                    f"(known: {', '.join(PRECISION_BITS)})"
                )
            _check_positive(f"device {self.name!r}: peak_ops_per_s.{precision}", value)
            if precision not in self.energy.mac_pj:
                raise DeviceError(
                    f"device {self.name!r}: energy table has no mac_pj for {precision} "
                    f"(it has {', '.join(self.energy.mac_pj)})"
                )
        for attr in (
            "bandwidth_bytes_per_s",
            "sram_bytes",
            "activation_ram_bytes",
            "weight_storage_bytes",
        ):
            _check_positive(f"device {self.name!r}: {attr}", getattr(self, attr))
        if self.power_watts is not None:
            _check_positive(f"device {self.name!r}: power_watts", self.power_watts)

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions the device runs, widest first."""
        return tuple(sorted(self.peak_ops_per_s, key=lambda p: -PRECISION_BITS[p]))

    @property
    def rates(self) -> dict[str, float]:
        """Peak op/s of every precision the device runs, sub-8-bit ones included, widest first."""
        rates = {**self.peak_ops_per_s, **self.low_precision_ops_per_s}
        return {p: rates[p] for p in sorted(rates, key=lambda p: -ALL_PRECISION_BITS[p])}

    def peak(self, precision: str) -> float:
        """Peak op/s at ``precision``; raises `DeviceError` when the device lacks it."""
        try:
            return self.rates[precision]
        except KeyError:
            raise DeviceError(
                f"{self.display_name} does not run {precision} (it runs {', '.join(self.rates)})"
            ) from None

    def ridge_point(self, precision: str) -> float:
        """Operational intensity (op/byte) where the roofline turns from memory- to compute-bound."""
        return self.peak(precision) / self.bandwidth_bytes_per_s

    def source(self, key: str) -> str:
        """Where the number ``key`` (e.g. ``peak_ops_per_s.fp32``) comes from."""
        return self.sources.get(key, "")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "kind": self.kind,
            "peak_ops_per_s": dict(self.peak_ops_per_s),
            "low_precision_ops_per_s": dict(self.low_precision_ops_per_s),
            "precision_note": self.precision_note,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "sram_bytes": self.sram_bytes,
            "activation_ram_bytes": self.activation_ram_bytes,
            "weight_storage_bytes": self.weight_storage_bytes,
            "power_watts": self.power_watts,
            "energy": {
                "name": self.energy.name,
                "mac_pj": dict(self.energy.mac_pj),
                "add_pj": dict(self.energy.add_pj),
                "access_pj": dict(self.energy.access_pj),
                "weight_level": self.energy.weight_level,
                "activation_level": self.energy.activation_level,
            },
            "sources": dict(self.sources),
        }


def _check_positive(what: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise DeviceError(f"{what} must be a positive number, got {value!r}")


# ---------------------------------------------------------------- loading


def _number(where: str, entry: Any, sources: dict[str, str], key: str) -> float:
    """Read ``{value, source}``; both are required."""
    if not isinstance(entry, dict):
        raise DeviceError(
            f"{where}: {key} must be a mapping {{value: ..., source: ...}}, got {entry!r}"
        )
    unknown = set(entry) - {"value", "source"}
    if unknown:
        raise DeviceError(
            f"{where}: {key} has unknown keys {sorted(unknown)} (expected value, source)"
        )
    if "value" not in entry:
        raise DeviceError(f"{where}: {key} has no value")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise DeviceError(f"{where}: {key} has no source (say where the number comes from)")
    raw = entry["value"]
    if isinstance(raw, str):  # YAML 1.1 reads 4.6e12 (no dot or sign) as a string
        try:
            raw = float(raw)
        except ValueError:
            raise DeviceError(f"{where}: {key} must be a number, got {entry['value']!r}") from None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise DeviceError(f"{where}: {key} must be a number, got {raw!r}")
    if not math.isfinite(raw) or raw <= 0:
        raise DeviceError(f"{where}: {key} must be a positive number, got {raw!r}")
    sources[key] = source.strip()
    return float(raw)


def _numbers(where: str, entry: Any, sources: dict[str, str], key: str) -> dict[str, float]:
    if not isinstance(entry, dict) or not entry:
        raise DeviceError(f"{where}: {key} must be a non-empty mapping, got {entry!r}")
    return {str(k): _number(where, v, sources, f"{key}.{k}") for k, v in entry.items()}


def _read_yaml(path: Path) -> dict:
    return read_mapping(path, "device file", DeviceError)


@functools.cache
def energy_preset(name: str) -> tuple[dict, dict, dict, dict]:
    """A shared energy table ``devices/_energy_<name>.yaml``: (mac_pj, add_pj, access_pj, sources)."""
    path = _devices_dir() / f"_energy_{name}.yaml"
    if not path.is_file():
        known = sorted(
            p.stem.removeprefix("_energy_") for p in _devices_dir().glob("_energy_*.yaml")
        )
        raise DeviceError(f"unknown energy table {name!r} (known: {', '.join(known)})")
    data = _read_yaml(path)
    sources: dict[str, str] = {}
    where = f"energy table {path.name}"
    tables = tuple(
        _numbers(where, data.get(k), sources, f"energy.{k}")
        for k in ("mac_pj", "add_pj", "access_pj")
    )
    return (*tables, sources)


def _energy(where: str, entry: Any, sources: dict[str, str]) -> EnergyTable:
    if not isinstance(entry, dict):
        raise DeviceError(f"{where}: energy must be a mapping, got {entry!r}")
    unknown = set(entry) - set(_ENERGY_KEYS)
    if unknown:
        raise DeviceError(
            f"{where}: energy has unknown keys {sorted(unknown)} (known: {', '.join(_ENERGY_KEYS)})"
        )
    for key in ("weight_level", "activation_level"):
        if not isinstance(entry.get(key), str):
            raise DeviceError(
                f"{where}: energy.{key} is missing (a memory level such as sram or dram)"
            )
    tables: dict[str, dict[str, float]] = {}
    name = "custom"
    if "table" in entry:
        name = str(entry["table"])
        try:
            mac, add, access, preset_sources = energy_preset(name)
        except DeviceError as exc:
            raise DeviceError(f"{where}: {exc}") from None
        tables = {"mac_pj": dict(mac), "add_pj": dict(add), "access_pj": dict(access)}
        sources.update(preset_sources)
    for key in ("mac_pj", "add_pj", "access_pj"):
        if key in entry:
            tables[key] = {
                **tables.get(key, {}),
                **_numbers(where, entry[key], sources, f"energy.{key}"),
            }
        elif key not in tables:
            raise DeviceError(
                f"{where}: energy.{key} is missing (or name a shared table with energy.table)"
            )
    try:
        return EnergyTable(
            mac_pj=tables["mac_pj"],
            add_pj=tables["add_pj"],
            access_pj=tables["access_pj"],
            weight_level=entry["weight_level"],
            activation_level=entry["activation_level"],
            name=name,
        )
    except DeviceError as exc:
        raise DeviceError(f"{where}: {exc}") from None


def device_from_dict(data: dict, *, where: str = "device", path: str | None = None) -> Device:
    """Build a `Device` from the parsed contents of a device file; raises `DeviceError`."""
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise DeviceError(
            f"{where}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        )
    unknown = [k for k in data if k not in _REQUIRED and k not in _OPTIONAL]
    if unknown:
        hint = close_names(unknown[0], _REQUIRED + _OPTIONAL)
        raise DeviceError(f"{where}: unknown field {unknown[0]!r}.{hint}")
    sources: dict[str, str] = {}
    peak = _numbers(where, data["peak_ops_per_s"], sources, "peak_ops_per_s")
    bad = [p for p in peak if p not in PRECISION_BITS]
    if bad:
        raise DeviceError(
            f"{where}: unknown precision {bad[0]!r} in peak_ops_per_s (known: {', '.join(PRECISION_BITS)})"
        )
    values = {
        key: _number(where, data[key], sources, key)
        for key in (
            "bandwidth_bytes_per_s",
            "sram_bytes",
            "activation_ram_bytes",
            "weight_storage_bytes",
        )
    }
    power = (
        _number(where, data["power_watts"], sources, "power_watts")
        if "power_watts" in data
        else None
    )
    for key in ("name", "display_name", "kind"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise DeviceError(f"{where}: {key} must be a non-empty string")
    energy = _energy(where, data["energy"], sources)
    low = {}
    if "low_precision_ops_per_s" in data:
        low = _numbers(where, data["low_precision_ops_per_s"], sources, "low_precision_ops_per_s")
        bad = [p for p in low if p not in LOW_PRECISIONS]
        if bad:
            raise DeviceError(f"{where}: unknown precision {bad[0]!r} in low_precision_ops_per_s (known: int4, binary)")
    try:
        return Device(
            name=data["name"].strip(),
            display_name=data["display_name"].strip(),
            kind=data["kind"].strip(),
            peak_ops_per_s=peak,
            energy=energy,
            power_watts=power,
            activation_memory=str(data.get("activation_memory", "RAM")),
            weight_storage=str(data.get("weight_storage", "storage")),
            weights_share_activation_ram=bool(data.get("weights_share_activation_ram", False)),
            sources=sources,
            description=str(data.get("description", "")).strip(),
            path=path,
            measured=bool(data.get("measured", False)),
            low_precision_ops_per_s=low,
            precision_note=" ".join(str(data.get("precision_note", "")).split()),
            **values,
        )
    except DeviceError as exc:
        msg = str(exc)
        raise DeviceError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def load_device_file(path: str | os.PathLike) -> Device:
    """Load and validate a device file; raises `DeviceError` naming the bad field."""
    p = Path(path)
    if not p.is_file():
        raise DeviceError(f"device file {p} does not exist")
    return device_from_dict(_read_yaml(p), where=f"device file {p}", path=str(p))


def _devices_dir() -> Path:
    return Path(str(resources.files("edgefit.hardware") / "devices"))


def _builtin_paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(_devices_dir().glob("*.yaml")) if not p.name.startswith("_")}


# Devices made by code rather than read from a file, registered by the package that
# makes them: ``host`` is measured by edgefit.measure, which imports this package and
# registers it on import (so hardware never imports measure).
_DEVICE_SOURCES: dict[str, Callable[[], Device]] = {}


def register_device_source(name: str, factory: Callable[[], Device]) -> None:
    """Make ``get_device(name)`` return ``factory()`` (e.g. a device measured on this machine)."""
    _DEVICE_SOURCES[name] = factory


def list_devices() -> list[str]:
    """Names of the built-in devices (``host`` included), sorted."""
    return sorted([*_builtin_paths(), "host"])


@functools.cache
def _builtin(name: str) -> Device:
    return load_device_file(_builtin_paths()[name])


def get_device(name_or_path: str | os.PathLike | Device) -> Device:
    """A built-in device by name, ``host`` (measured on first use, then cached), or a device file.

    >>> get_device("stm32f746").sram_bytes
    327680.0
    """
    if isinstance(name_or_path, Device):
        return name_or_path
    text = os.fspath(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or Path(text).is_file():
        return load_device_file(text)
    key = text.strip().lower().replace("-", "_")
    if key in _DEVICE_SOURCES:
        return _DEVICE_SOURCES[key]()
    if key == "host":
        raise DeviceError(
            "device 'host' is measured on this machine by edgefit.measure: "
            "import edgefit.measure first, or call edgefit.measure.host_device()"
        )
    if key in _builtin_paths():
        return _builtin(key)
    raise DeviceError(
        f"unknown device {text!r}.{close_names(key, list_devices())} Known: {', '.join(list_devices())}"
    )
