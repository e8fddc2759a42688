"""Roofline, latency, energy and memory fit of a `Profile` on a `Device`.

Conventions:

* Work of a layer is ``flops + other_ops`` (1 MAC = 2 FLOPs), the same work the
  profile's ``intensity`` divides; bytes are the profile's ``bytes_moved``
  (weights + layer inputs + outputs at the bit widths in use). Nothing is recounted.
* Roofline (reference/001): intensity = work / bytes; attainable =
  min(peak, intensity x bandwidth); time = work / attainable, which equals
  max(work / peak, bytes / bandwidth). A layer is memory-bound when its
  intensity is below the ridge point peak / bandwidth.
* Latency model (reference/000): T = T_computation + T_data_access, with
  T_data_access = (weights + input + output activations) / bandwidth; the sum
  assumes no overlap of compute and memory, so it bounds the roofline time from above.
* Precision per layer: unless one precision is forced, each layer runs at the
  narrowest rate the device lists that holds its widths (max of weight and
  activation bits; activation bits alone for a layer without weights):
  ``binary`` for 1-bit weights and 1-bit activations (XNOR + popcount), else
  ``int4`` up to 4 bits, ``int8`` up to 8, ``fp16`` up to 16, else ``fp32``.
  A layer whose precision the device lacks runs at the next wider rate it has
  (bytes stay at the real width) and is listed in ``Estimate.fallbacks``; one
  wider than anything the device runs is run at the device's narrowest
  precision with its bytes rescaled, as that device's compiler requires.
* Energy (reference/001, 003): MACs x MAC energy at the precision + other ops
  x add energy + weight bytes read once from the device's weight level + input
  and output activation bytes read/written once at its activation level, with
  per-access energy given per 32 bits and scaled linearly with the bit width.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edgefit.errors import ConfigError, DeviceError
from edgefit.hardware.device import ALL_PRECISION_BITS, Device
from edgefit.units import format_bytes


@dataclass(frozen=True)
class RooflinePoint:
    """One operation on one roof.

    Attributes:
        ops: work in ops (FLOPs).
        bytes: bytes moved.
        intensity: ops per byte.
        attainable_ops_per_s: min(peak, intensity x bandwidth).
        bound: ``"memory"`` or ``"compute"``.
        seconds: ops / attainable (bytes / bandwidth for a layer with no ops).
    """

    ops: float
    bytes: float
    intensity: float
    attainable_ops_per_s: float
    bound: str
    seconds: float


def roofline(
    ops: float, bytes_moved: float, *, peak_ops_per_s: float, bandwidth_bytes_per_s: float
) -> RooflinePoint:
    """Place one operation under the roof (reference/001).

    >>> p = roofline(57.8e6, 24.5e6, peak_ops_per_s=4608e9, bandwidth_bytes_per_s=96e9)
    >>> round(p.intensity, 1), round(p.attainable_ops_per_s / 1e9, 1), p.bound, round(p.seconds * 1e6)
    (2.4, 226.5, 'memory', 255)
    """
    if peak_ops_per_s <= 0 or bandwidth_bytes_per_s <= 0:
        raise ConfigError("peak and bandwidth must be positive")
    if ops < 0 or bytes_moved < 0:
        raise ConfigError("ops and bytes must be non-negative")
    if bytes_moved == 0:
        return RooflinePoint(ops, 0.0, math.inf, peak_ops_per_s, "compute", ops / peak_ops_per_s)
    intensity = ops / bytes_moved
    memory_roof = intensity * bandwidth_bytes_per_s
    bound = "memory" if memory_roof < peak_ops_per_s else "compute"
    attainable = min(peak_ops_per_s, memory_roof)
    seconds = max(ops / peak_ops_per_s, bytes_moved / bandwidth_bytes_per_s)
    return RooflinePoint(ops, float(bytes_moved), intensity, attainable, bound, seconds)


@dataclass(frozen=True)
class LayerEstimate:
    """Time and energy of one profile row on one device.

    Attributes:
        name, kind: as in the profile row.
        ops: FLOPs + other ops.
        bytes: bytes moved at the precision in use.
        weight_bytes, activation_bytes: the two parts of ``bytes``.
        intensity: ops per byte.
        attainable_ops_per_s: the roof at this intensity.
        bound: ``"memory"`` or ``"compute"``.
        seconds: roofline time.
        compute_seconds: ops / peak (T_computation).
        data_seconds: bytes / bandwidth (T_data_access).
        serial_seconds: compute_seconds + data_seconds, the lectures' latency model.
        joules: total energy; ``compute_joules + weight_joules + activation_joules``.
        data_share: share of the energy spent moving data.
        precision: the device rate the layer ran at (``int4``, ``binary``...).
        peak_ops_per_s: that rate.
    """

    name: str
    kind: str
    ops: float
    bytes: float
    weight_bytes: float
    activation_bytes: float
    intensity: float
    attainable_ops_per_s: float
    bound: str
    seconds: float
    compute_seconds: float
    data_seconds: float
    serial_seconds: float
    joules: float
    compute_joules: float
    weight_joules: float
    activation_joules: float
    precision: str = ""
    peak_ops_per_s: float = 0.0

    @property
    def data_share(self) -> float:
        return (self.weight_joules + self.activation_joules) / self.joules if self.joules else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_share"] = self.data_share
        if math.isinf(d["intensity"]):
            d["intensity"] = None
        return d


@dataclass(frozen=True)
class Fit:
    """Memory fit: weights against storage, peak live activations against RAM.

    Attributes:
        weight_bytes: model size at its weight bit widths.
        weight_capacity_bytes: the device's weight storage.
        activation_bytes: peak live activations at the activation bit width.
        activation_capacity_bytes: RAM available for activations.
        peak_layer: the layer at which the live activations peak.
        weights_fit, activations_fit: the two verdicts.
        message: one line, e.g. "does not fit: peak activations need 1.2 MB,
            STM32F746 has 320 KB of SRAM (at layer features.0)".
    """

    weight_bytes: float
    weight_capacity_bytes: float
    activation_bytes: float
    activation_capacity_bytes: float
    peak_layer: str
    weights_fit: bool
    activations_fit: bool
    message: str

    @property
    def fits(self) -> bool:
        return self.weights_fit and self.activations_fit


@dataclass(frozen=True)
class EstimateTotals:
    """Whole-model figures of an estimate (sums over layers unless said otherwise).

    Attributes:
        seconds: roofline latency at batch 1.
        compute_seconds, data_seconds: T_computation and T_data_access.
        serial_seconds: their sum (the lectures' latency model).
        joules, compute_joules, data_joules: energy and its parts.
        data_share: share of the energy spent moving data.
        memory_bound_layers, compute_bound_layers: counts.
        fits, fit_message: the memory verdict (see `Fit`).
        saturation_batch: smallest batch size (power of two) reaching 95% of the
            roofline's asymptotic throughput (weights are read once per batch).
        max_throughput_per_s: that asymptotic throughput, inferences per second.
    """

    seconds: float
    compute_seconds: float
    data_seconds: float
    serial_seconds: float
    joules: float
    compute_joules: float
    data_joules: float
    data_share: float
    memory_bound_layers: int
    compute_bound_layers: int
    fits: bool
    fit_message: str
    saturation_batch: int
    max_throughput_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """A profile on a device: per-layer roofline / latency / energy, totals and memory fit.

    Attributes:
        model: the profile's model label.
        device: the device.
        precision: the precision most of the work ran at (each layer's own is
            ``LayerEstimate.precision``).
        layers: one `LayerEstimate` per profile row, same order.
        totals: `EstimateTotals`.
        fit: the memory `Fit`.
        notes: assumptions worth telling the user (precision fallbacks...).
        fallbacks: the layers that ran at a wider rate than their widths call
            for, because the device lists no rate for those (see `Fallback`).
    """

    model: str
    device: Device
    precision: str
    layers: tuple[LayerEstimate, ...]
    totals: EstimateTotals
    fit: Fit
    notes: tuple[str, ...] = ()
    fallbacks: tuple[Fallback, ...] = ()

    @property
    def peak_ops_per_s(self) -> float:
        return self.device.peak(self.precision)

    @property
    def ridge_point(self) -> float:
        return self.device.ridge_point(self.precision)

    def throughput(self, batch: int) -> float:
        """Roofline throughput (inferences/s) at ``batch``: weights read once, activations per item."""
        if batch < 1:
            raise ConfigError(f"batch must be >= 1, got {batch}")
        seconds = _batch_seconds(self.layers, batch, self.device.bandwidth_bytes_per_s)
        return batch / seconds if seconds > 0 else math.inf

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "device": self.device.name,
            "precision": self.precision,
            "peak_ops_per_s": self.peak_ops_per_s,
            "bandwidth_bytes_per_s": self.device.bandwidth_bytes_per_s,
            "ridge_point": self.ridge_point,
            "layers": [row.to_dict() for row in self.layers],
            "totals": self.totals.to_dict(),
            "fit": asdict(self.fit),
            "notes": list(self.notes),
            "fallbacks": [asdict(f) for f in self.fallbacks],
        }


@dataclass(frozen=True)
class Fallback:
    """A layer that ran at a wider rate than its widths call for.

    Attributes:
        layer: the profile row.
        weight_bits, activation_bits: its widths.
        wanted: the precision those widths call for (`precision_for_widths`).
        ran_at: the narrowest precision the device runs that holds them.
        reason: why (the device lists no ``wanted`` rate; its ``precision_note``).
    """

    layer: str
    weight_bits: int
    activation_bits: int
    wanted: str
    ran_at: str
    reason: str

    def __str__(self) -> str:
        return f"{self.layer or '(root)'}: {self.weight_bits}/{self.activation_bits}-bit wants {self.wanted}, ran at {self.ran_at}"


# ---------------------------------------------------------------- helpers


def precision_for_widths(weight_bits: int, activation_bits: int, *, has_weights: bool = True) -> str:
    """The precision a layer's widths call for, before asking a device.

    >>> precision_for_widths(1, 1), precision_for_widths(4, 4), precision_for_widths(2, 8), precision_for_widths(1, 32)
    ('binary', 'int4', 'int8', 'fp32')
    >>> precision_for_widths(32, 8, has_weights=False)
    'int8'
    """
    width = max(weight_bits, activation_bits) if has_weights else activation_bits
    if has_weights and weight_bits == 1 and activation_bits == 1:
        return "binary"
    if width <= 4:
        return "int4"
    if width <= 8:
        return "int8"
    return "fp16" if width <= 16 else "fp32"


# Preference among the rates that hold a width: narrowest first, fp16 before the other 16-bit ones.
_RUN_ORDER = ("binary", "int4", "int8", "fp16", "bf16", "int16", "fp32")


def runs_at(device: Device, wanted: str) -> str:
    """The narrowest precision ``device`` runs that holds ``wanted`` (``binary`` only for binary layers).

    When nothing it runs is wide enough, its narrowest >= 8-bit precision (the
    device's compiler requires the model at that width, e.g. the Edge TPU's int8).

    >>> from edgefit.hardware.device import get_device
    >>> runs_at(get_device("raspberry_pi_5"), "int4"), runs_at(get_device("edgetpu"), "fp32")
    ('int8', 'int8')
    """
    rates = device.rates
    bits = ALL_PRECISION_BITS[wanted]
    for p in _RUN_ORDER:
        if p in rates and ALL_PRECISION_BITS[p] >= bits and (p != "binary" or wanted == "binary"):
            return p
    return device.precisions[-1]


def _check_forced(device: Device, precision: str) -> None:
    if precision not in ALL_PRECISION_BITS:
        raise ConfigError(f"unknown precision {precision!r} (known: {', '.join(ALL_PRECISION_BITS)})")
    device.peak(precision)  # raises DeviceError naming what the device runs


def _fallback(row, device: Device, wanted: str, chosen: str, w_bits: int, a_bits: int) -> Fallback:
    reason = f"{device.display_name} lists no {wanted} rate"
    if device.precision_note:
        reason += f" ({device.precision_note})"
    return Fallback(row.name, w_bits, a_bits, wanted, chosen, reason)


def check_memory_fit(
    device: Device,
    *,
    weight_bytes: float,
    activation_bytes: float,
    peak_layer: str = "",
    activation_label: str = "peak activations",
) -> Fit:
    """Weights against storage and peak live activations against RAM, with a one-line verdict.

    ``activation_label`` names what ``activation_bytes`` is (``"planned arena"``
    when it comes from an `edgefit.memory` plan).
    """
    dev = device.display_name
    act_cap = device.activation_ram_bytes
    weights_fit = weight_bytes <= device.weight_storage_bytes
    if device.weights_share_activation_ram:
        activations_fit = weight_bytes + activation_bytes <= act_cap
    else:
        activations_fit = activation_bytes <= act_cap
    at = f" (at layer {peak_layer})" if peak_layer else ""
    problems = []
    if not weights_fit:
        problems.append(
            f"weights need {format_bytes(weight_bytes)}, {dev} has {format_bytes(device.weight_storage_bytes)} "
            f"of {device.weight_storage}"
        )
    if not activations_fit:
        if device.weights_share_activation_ram:
            problems.append(
                f"weights plus {activation_label} need {format_bytes(weight_bytes + activation_bytes)}, "
                f"{dev} has {format_bytes(act_cap)} of {device.activation_memory}{at}"
            )
        else:
            problems.append(
                f"{activation_label} {'needs' if activation_label == 'planned arena' else 'need'} "
                f"{format_bytes(activation_bytes)}, {dev} has "
                f"{format_bytes(act_cap)} of {device.activation_memory}{at}"
            )
    if problems:
        message = "does not fit: " + "; ".join(problems)
    else:
        message = (
            f"fits: weights {format_bytes(weight_bytes)} of {format_bytes(device.weight_storage_bytes)} "
            f"{device.weight_storage}, {activation_label} {format_bytes(activation_bytes)} of "
            f"{format_bytes(act_cap)} {device.activation_memory}"
        )
    return Fit(
        weight_bytes=float(weight_bytes),
        weight_capacity_bytes=device.weight_storage_bytes,
        activation_bytes=float(activation_bytes),
        activation_capacity_bytes=act_cap,
        peak_layer=peak_layer,
        weights_fit=weights_fit,
        activations_fit=activations_fit,
        message=message,
    )


def _batch_seconds(est_layers, batch: int, bw: float) -> float:
    """Roofline time of one batch: weights read once, activations per item, each layer at its rate."""
    return sum(
        max(batch * r.ops / r.peak_ops_per_s, (r.weight_bytes + batch * r.activation_bytes) / bw)
        for r in est_layers
    )


def _saturation(est_layers, bw: float) -> tuple[int, float]:
    per_item = sum(max(r.ops / r.peak_ops_per_s, r.activation_bytes / bw) for r in est_layers)
    if per_item <= 0:
        return 1, math.inf
    asymptote = 1.0 / per_item
    batch = 1
    while batch < 65536:
        if batch / _batch_seconds(est_layers, batch, bw) >= 0.95 * asymptote:
            break
        batch *= 2
    return batch, asymptote


# ---------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class _Rates:
    """What one device at one precision charges: peak, bandwidth and the energy per op / byte."""

    precision: str
    bits: int
    peak: float
    bandwidth: float
    mac_pj: float
    add_pj: float
    weight_byte_pj: float
    act_byte_pj: float

    @classmethod
    def of(cls, device: Device, chosen: str) -> _Rates:
        energy = device.energy
        table = chosen if chosen in energy.mac_pj else _energy_stand_in(device, chosen)
        mac_pj = energy.mac_pj.get(table)
        add_pj = energy.add_pj.get(table)
        if mac_pj is None or add_pj is None:
            raise DeviceError(f"{device.display_name}: energy table has no entry for {chosen}")
        return cls(
            precision=chosen,
            bits=ALL_PRECISION_BITS[chosen],
            peak=device.peak(chosen),
            bandwidth=device.bandwidth_bytes_per_s,
            mac_pj=mac_pj,
            add_pj=add_pj,
            weight_byte_pj=energy.access_pj[energy.weight_level] / 32.0 * 8.0,
            act_byte_pj=energy.access_pj[energy.activation_level] / 32.0 * 8.0,
        )


def _energy_stand_in(device: Device, chosen: str) -> str:
    """A sub-8-bit precision missing from the energy table is charged at int8 (an upper bound)."""
    if chosen in device.low_precision_ops_per_s and "int8" in device.energy.mac_pj:
        return "int8"
    return chosen


def _row_widths(row, profile) -> tuple[int, int]:
    act = row.activation_bits if getattr(row, "activation_bits", None) else profile.activation_bits
    return row.bits, act


def _layer_estimate(row, r: _Rates, w_bits: int, a_bits: int, *, forced: bool = False) -> LayerEstimate:
    """Roofline time, T_compute + T_data and energy of one profile row at rate ``r``.

    Bytes are the row's, at its real widths; a width wider than ``r`` is rescaled to it.
    ``forced`` (one precision for every layer): activations move at ``r``'s width,
    narrower ones widened too.
    """
    weight_bytes = row.weight_bytes * (min(r.bits, w_bits) / w_bits if w_bits else 1.0)
    act_scale = (r.bits if forced else min(r.bits, a_bits)) / a_bits if a_bits else 1.0
    activation_bytes = max(row.bytes_moved - row.weight_bytes, 0.0) * act_scale
    return _layer_at(row, r, weight_bytes, activation_bytes)


def _layer_at(row, r: _Rates, weight_bytes: float, activation_bytes: float) -> LayerEstimate:
    ops = float(row.flops + row.other_ops)
    nbytes = weight_bytes + activation_bytes
    point = roofline(ops, nbytes, peak_ops_per_s=r.peak, bandwidth_bytes_per_s=r.bandwidth)
    compute_s = ops / r.peak
    data_s = nbytes / r.bandwidth
    compute_j = (row.macs * r.mac_pj + row.other_ops * r.add_pj) * 1e-12
    weight_j = weight_bytes * r.weight_byte_pj * 1e-12
    act_j = activation_bytes * r.act_byte_pj * 1e-12
    return LayerEstimate(
        name=row.name,
        kind=row.kind,
        ops=ops,
        bytes=nbytes,
        weight_bytes=weight_bytes,
        activation_bytes=activation_bytes,
        intensity=point.intensity,
        attainable_ops_per_s=point.attainable_ops_per_s,
        bound=point.bound,
        seconds=point.seconds,
        compute_seconds=compute_s,
        data_seconds=data_s,
        serial_seconds=compute_s + data_s,
        joules=compute_j + weight_j + act_j,
        compute_joules=compute_j,
        weight_joules=weight_j,
        activation_joules=act_j,
        precision=r.precision,
        peak_ops_per_s=r.peak,
    )


def _estimate_totals(rows: list[LayerEstimate], fit: Fit, bandwidth: float) -> EstimateTotals:
    joules = sum(x.joules for x in rows)
    compute_j = sum(x.compute_joules for x in rows)
    data_j = joules - compute_j
    sat_batch, max_tput = _saturation(rows, bandwidth)
    return EstimateTotals(
        seconds=sum(x.seconds for x in rows),
        compute_seconds=sum(x.compute_seconds for x in rows),
        data_seconds=sum(x.data_seconds for x in rows),
        serial_seconds=sum(x.serial_seconds for x in rows),
        joules=joules,
        compute_joules=compute_j,
        data_joules=data_j,
        data_share=data_j / joules if joules else 0.0,
        memory_bound_layers=sum(x.bound == "memory" for x in rows),
        compute_bound_layers=sum(x.bound == "compute" for x in rows),
        fits=fit.fits,
        fit_message=fit.message,
        saturation_batch=sat_batch,
        max_throughput_per_s=max_tput,
    )


@dataclass
class _Run:
    """The per-layer estimates of one profile on one device, and what was noted on the way."""

    rows: list[LayerEstimate]
    fallbacks: list[Fallback]
    rescaled: dict[tuple[str, str], int]  # (wanted, ran at) -> layers rescaled to a narrower width
    stand_in: set[str]  # precisions charged at int8's energy
    act_scale: float  # of the peak live activations


def _run_layers(profile, device: Device, forced: str | None) -> _Run:
    rates: dict[str, _Rates] = {}

    def rate(p: str) -> _Rates:
        if p not in rates:
            rates[p] = _Rates.of(device, p)
        return rates[p]

    run = _Run([], [], {}, set(), 1.0)
    for row in profile.layers:
        w_bits, a_bits = _row_widths(row, profile)
        if forced is not None:
            run.rows.append(_layer_estimate(row, rate(forced), w_bits, a_bits, forced=True))
            continue
        wanted = precision_for_widths(w_bits, a_bits, has_weights=row.params > 0 or row.weight_bytes > 0)
        chosen = runs_at(device, wanted)
        run.rows.append(_layer_estimate(row, rate(chosen), w_bits, a_bits))
        if chosen not in device.energy.mac_pj:
            run.stand_in.add(chosen)
        if ALL_PRECISION_BITS[chosen] < ALL_PRECISION_BITS[wanted]:
            run.rescaled[(wanted, chosen)] = run.rescaled.get((wanted, chosen), 0) + 1
        elif ALL_PRECISION_BITS[chosen] > ALL_PRECISION_BITS[wanted]:
            run.fallbacks.append(_fallback(row, device, wanted, chosen, w_bits, a_bits))
    a_bits = profile.activation_bits
    if forced is not None:
        run.act_scale = ALL_PRECISION_BITS[forced] / a_bits
    else:
        held = ALL_PRECISION_BITS[runs_at(device, precision_for_widths(a_bits, a_bits, has_weights=False))]
        run.act_scale = min(held, a_bits) / a_bits
    return run


def _notes(run: _Run, device: Device, n_layers: int) -> list[str]:
    notes = []
    for (wanted, chosen), n in run.rescaled.items():
        which = "" if n == n_layers else f" for {n} of {n_layers} layers"
        notes.append(
            f"{device.display_name} does not run {wanted}; estimated at {chosen}{which} "
            f"(weights and activations rescaled to {ALL_PRECISION_BITS[chosen]} bits)"
        )
    groups: dict[tuple[str, str], list[str]] = {}
    for fb in run.fallbacks:
        groups.setdefault((fb.wanted, fb.ran_at), []).append(fb.layer or "(root)")
    for (wanted, chosen), layers in groups.items():
        shown = ", ".join(layers[:6]) + (f" and {len(layers) - 6} more" if len(layers) > 6 else "")
        notes.append(
            f"{len(layers)} layer{'s' if len(layers) > 1 else ''} wanting {wanted} ran at {chosen} "
            f"({device.display_name} lists no {wanted} rate; bytes at the real widths): {shown}"
        )
    for p in sorted(run.stand_in):
        notes.append(f"the energy table has no {p} MAC energy: {p} layers are charged int8's (an upper bound)")
    return notes


def _main_precision(rows: list[LayerEstimate], device: Device) -> str:
    work: dict[str, float] = {}
    for r in rows:
        work[r.precision] = work.get(r.precision, 0.0) + r.ops
    return max(work, key=work.get) if work else device.precisions[0]


def estimate(profile, device: Device | str, precision: str | None = None, *, memory_plan=None) -> Estimate:
    """Roofline, latency, energy and memory fit of ``profile`` on ``device``.

    Args:
        profile: an `edgefit.metrics.Profile` (its bytes are at its bit widths).
        device: a `Device`, a device name or a device file path.
        precision: run every layer at this precision (``fp32``, ``fp16``,
            ``int8``, ``int4``...), with bytes rescaled to it (weights narrower
            than it stay as they are). By default each layer runs at the
            narrowest rate the device lists that holds its own widths (see the
            module doc); layers that fall back to a wider rate are listed in
            ``Estimate.fallbacks``.
        memory_plan: an `edgefit.memory.MemoryPlan` of the same model: the fit
            then compares its planned arena, not the peak live activations, with RAM.

    Returns:
        An `Estimate`; ``estimate.totals.fits`` and ``.fit_message`` give the verdict.
    """
    from edgefit.hardware.device import get_device

    device = get_device(device)
    if precision is not None:
        _check_forced(device, precision)
    run = _run_layers(profile, device, precision)
    rows = run.rows
    t = profile.totals
    weight_bytes = t.model_size_bytes
    if any(e.weight_bytes != r.weight_bytes for e, r in zip(rows, profile.layers, strict=True)):
        weight_bytes += sum(e.weight_bytes for e in rows) - sum(r.weight_bytes for r in profile.layers)
    if memory_plan is None:
        fit = check_memory_fit(
            device,
            weight_bytes=weight_bytes,
            activation_bytes=t.peak_live_bytes * run.act_scale,
            peak_layer=t.peak_live_layer,
        )
    else:
        fit = check_memory_fit(
            device,
            weight_bytes=weight_bytes,
            activation_bytes=memory_plan.arena_bytes * run.act_scale,
            peak_layer=memory_plan.peak_layer,
            activation_label="planned arena",
        )
    return Estimate(
        model=profile.model,
        device=device,
        precision=precision or _main_precision(rows, device),
        layers=tuple(rows),
        totals=_estimate_totals(rows, fit, device.bandwidth_bytes_per_s),
        fit=fit,
        notes=tuple(_notes(run, device, len(rows))),
        fallbacks=tuple(run.fallbacks),
    )
