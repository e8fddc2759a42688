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
* Energy (reference/001, 003): MACs x MAC energy at the precision + other ops
  x add energy + weight bytes read once from the device's weight level + input
  and output activation bytes read/written once at its activation level, with
  per-access energy given per 32 bits and scaled linearly with the bit width.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from edgefit.errors import ConfigError, DeviceError
from edgefit.hardware.device import PRECISION_BITS, Device
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
        precision: the precision whose roof and MAC energy were used.
        layers: one `LayerEstimate` per profile row, same order.
        totals: `EstimateTotals`.
        fit: the memory `Fit`.
        notes: assumptions worth telling the user (precision fallbacks...).
    """

    model: str
    device: Device
    precision: str
    layers: tuple[LayerEstimate, ...]
    totals: EstimateTotals
    fit: Fit
    notes: tuple[str, ...] = ()

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
        peak, bw = self.peak_ops_per_s, self.device.bandwidth_bytes_per_s
        seconds = sum(
            max(batch * row.ops / peak, (row.weight_bytes + batch * row.activation_bytes) / bw)
            for row in self.layers
        )
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
        }


# ---------------------------------------------------------------- helpers


def precision_for_bits(bits: int) -> str:
    """The floating point (or int8) precision a bit width runs at."""
    if bits >= 32:
        return "fp32"
    if bits >= 16:
        return "fp16"
    return "int8"


def _choose_precision(profile, device: Device, precision: str | None) -> tuple[str, list[str]]:
    notes: list[str] = []
    if precision is not None:
        if precision not in PRECISION_BITS:
            raise ConfigError(
                f"unknown precision {precision!r} (known: {', '.join(PRECISION_BITS)})"
            )
        device.peak(precision)  # raises DeviceError naming what the device runs
        return precision, notes
    wanted = precision_for_bits(profile.activation_bits)
    if wanted in device.peak_ops_per_s:
        return wanted, notes
    same_width = [p for p in device.precisions if PRECISION_BITS[p] == PRECISION_BITS[wanted]]
    if same_width:
        return same_width[0], notes
    # The device cannot run the profile's precision: estimate at the narrowest it runs,
    # as its compiler would require (e.g. the Edge TPU needs an int8 model).
    chosen = device.precisions[-1]
    notes.append(
        f"{device.display_name} does not run {wanted}; estimated at {chosen} "
        f"(weights and activations rescaled to {PRECISION_BITS[chosen]} bits)"
    )
    return chosen, notes


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


def _saturation(est_layers, peak: float, bw: float) -> tuple[int, float]:
    per_item = sum(max(r.ops / peak, r.activation_bytes / bw) for r in est_layers)
    if per_item <= 0:
        return 1, math.inf
    asymptote = 1.0 / per_item
    batch = 1
    while batch < 65536:
        seconds = sum(
            max(batch * r.ops / peak, (r.weight_bytes + batch * r.activation_bytes) / bw)
            for r in est_layers
        )
        if batch / seconds >= 0.95 * asymptote:
            break
        batch *= 2
    return batch, asymptote


# ---------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class _Rates:
    """What one device at one precision charges: peak, bandwidth and the energy per op / byte."""

    bits: int
    act_scale: float  # activation bytes at this precision over the profile's
    peak: float
    bandwidth: float
    mac_pj: float
    add_pj: float
    weight_byte_pj: float
    act_byte_pj: float

    @classmethod
    def of(cls, profile, device: Device, chosen: str) -> _Rates:
        bits = PRECISION_BITS[chosen]
        energy = device.energy
        mac_pj = energy.mac_pj.get(chosen)
        add_pj = energy.add_pj.get(chosen)
        if mac_pj is None or add_pj is None:
            raise DeviceError(f"{device.display_name}: energy table has no entry for {chosen}")
        return cls(
            bits=bits,
            act_scale=bits / profile.activation_bits if profile.activation_bits != bits else 1.0,
            peak=device.peak(chosen),
            bandwidth=device.bandwidth_bytes_per_s,
            mac_pj=mac_pj,
            add_pj=add_pj,
            weight_byte_pj=energy.access_pj[energy.weight_level] / 32.0 * 8.0,
            act_byte_pj=energy.access_pj[energy.activation_level] / 32.0 * 8.0,
        )


def _layer_estimate(row, r: _Rates) -> LayerEstimate:
    """Roofline time, T_compute + T_data and energy of one profile row."""
    w_scale = min(r.bits, row.bits) / row.bits if row.bits else 1.0
    weight_bytes = row.weight_bytes * w_scale
    activation_bytes = max(row.bytes_moved - row.weight_bytes, 0.0) * r.act_scale
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
    )


def _estimate_totals(rows: list[LayerEstimate], fit: Fit, r: _Rates) -> EstimateTotals:
    joules = sum(x.joules for x in rows)
    compute_j = sum(x.compute_joules for x in rows)
    data_j = joules - compute_j
    sat_batch, max_tput = _saturation(rows, r.peak, r.bandwidth)
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


def estimate(profile, device: Device | str, precision: str | None = None, *, memory_plan=None) -> Estimate:
    """Roofline, latency, energy and memory fit of ``profile`` on ``device``.

    Args:
        profile: an `edgefit.metrics.Profile` (its bytes are at its bit widths).
        device: a `Device`, a device name or a device file path.
        precision: the precision to run at (``fp32``, ``fp16``, ``int8``...).
            By default the one matching the profile's activation bit width; when
            it differs from the profile's widths, bytes are rescaled to it
            (weights narrower than it stay as they are).
        memory_plan: an `edgefit.memory.MemoryPlan` of the same model: the fit
            then compares its planned arena, not the peak live activations, with RAM.

    Returns:
        An `Estimate`; ``estimate.totals.fits`` and ``.fit_message`` give the verdict.
    """
    from edgefit.hardware.device import get_device

    device = get_device(device)
    chosen, notes = _choose_precision(profile, device, precision)
    rates = _Rates.of(profile, device, chosen)
    rows = [_layer_estimate(row, rates) for row in profile.layers]
    t = profile.totals
    weight_bytes = t.model_size_bytes * (min(rates.bits, profile.bits) / profile.bits if profile.bits else 1.0)
    if memory_plan is None:
        fit = check_memory_fit(
            device,
            weight_bytes=weight_bytes,
            activation_bytes=t.peak_live_bytes * rates.act_scale,
            peak_layer=t.peak_live_layer,
        )
    else:
        fit = check_memory_fit(
            device,
            weight_bytes=weight_bytes,
            activation_bytes=memory_plan.arena_bytes * rates.act_scale,
            peak_layer=memory_plan.peak_layer,
            activation_label="planned arena",
        )
    return Estimate(
        model=profile.model,
        device=device,
        precision=chosen,
        layers=tuple(rows),
        totals=_estimate_totals(rows, fit, rates),
        fit=fit,
        notes=tuple(notes),
    )
