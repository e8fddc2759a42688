"""`plan`: does a model fit a device once its activation memory is planned, and if not, what would it take.

Today's verdict (`estimate`) compares the most activation bytes alive at once
with the device's RAM. A runtime does better: it plans one tensor arena from
the tensors' lifetimes, runs elementwise ops and depthwise convolutions in
place, and can run the memory-heavy first stage patch by patch
(`edgefit.memory`). `plan` gives both verdicts, the peak after each technique,
and, for whatever still does not fit, what would: the bit width, the head
size or the pruning density at which the weights fit flash.

>>> from edgefit.zoo import create
>>> p = plan(create("mobilenet_v2", width_mult=0.35, num_classes=100), "stm32f746", input_shape=(1, 3, 144, 144))
>>> p.before.fits, p.fits
(False, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from edgefit.errors import DeviceError
from edgefit.hardware.device import Device, get_device
from edgefit.hardware.estimate import Fit, check_memory_fit, format_bytes


@dataclass(frozen=True)
class DevicePlan:
    """A memory plan judged against a device.

    Attributes:
        device: the device.
        memory: the `edgefit.memory.MemoryPlan`.
        before: the verdict on peak live activations (no planning).
        fit: the verdict on the planned arena.
        advice: one line per thing that still does not fit, with what would.
    """

    device: Device
    memory: object
    before: Fit
    fit: Fit
    advice: tuple[str, ...]

    @property
    def fits(self) -> bool:
        return self.fit.fits


def plan(
    model: nn.Module,
    device: Device | str,
    example_inputs=None,
    *,
    input_shape: Sequence[int] | None = None,
    input_dtype="float32",
    bits: int | Mapping[str, int] = 8,
    activation_bits: int | None = None,
    patches: int | str | None = "auto",
    split: int | str | None = None,
    max_extra_macs: float = 0.2,
    inplace: bool = True,
    target_bytes: int | None = None,
    name: str | None = None,
) -> DevicePlan:
    """Plan ``model``'s activation memory and judge it against ``device``.

    Args:
        model: the model (unchanged).
        device: a `Device`, a device name or a device file.
        example_inputs: forward arguments, or ``input_shape``.
        input_shape: the input shape.
        input_dtype: dtype of inputs made from ``input_shape``.
        bits: weight bit width (one or per-layer patterns); default int8.
        activation_bits: activation bit width (default: the weight default).
        patches: ``"auto"``, patches per side, or ``None`` for no patches.
        split: where the patched stage ends (child index or name), ``None`` chooses.
        max_extra_macs: most extra MACs patches may add, as a fraction.
        inplace: plan elementwise ops and depthwise convolutions in place.
        target_bytes: a peak the patches must reach (default: the device's RAM
            when it is given; the lowest peak otherwise).
        name: a label.

    Returns:
        A `DevicePlan`.

    Raises:
        DeviceError: unknown device or a device file without memory figures.
        PatchError: patches asked for and impossible (see `PatchConfig`).
    """
    from edgefit.memory import InPlaceConfig, PatchConfig, plan_memory

    device = get_device(device)
    if not device.activation_ram_bytes or not device.weight_storage_bytes:
        raise DeviceError(f"{device.display_name} has no RAM or storage figures to plan against")
    techniques = [InPlaceConfig()] if inplace else []
    if patches is not None:
        techniques.append(PatchConfig(patches=patches, split=split, max_extra_macs=max_extra_macs,
                                      target_bytes=target_bytes))
    mp = plan_memory(model, example_inputs, input_shape=input_shape, input_dtype=input_dtype, bits=bits,
                     activation_bits=activation_bits, techniques=techniques, name=name)
    before = check_memory_fit(device, weight_bytes=mp.weight_bytes, activation_bytes=mp.peak_live_bytes,
                              peak_layer=mp.peak_live_layer)
    fit = check_memory_fit(device, weight_bytes=mp.weight_bytes, activation_bytes=mp.arena_bytes,
                           peak_layer=mp.peak_layer, activation_label="planned arena")
    return DevicePlan(device, mp, before, fit, tuple(_advice(mp, device, fit)))


def _advice(mp, device: Device, fit: Fit) -> list[str]:
    out = []
    if not fit.activations_fit:
        cap = device.activation_ram_bytes - (mp.weight_bytes if device.weights_share_activation_ram else 0)
        done = [s.name for s in mp.steps[2:] if s.name != "patches" or mp.patch is not None]
        how = f" after {' and '.join(done)}" if done else ""
        out.append(
            f"activations: the planned arena{how} is {format_bytes(mp.arena_bytes)} (peak at {mp.peak_layer}); "
            f"{format_bytes(max(cap, 0))} is available: a lower resolution or a narrower model "
            f"(activations scale with both), or{'' if done else ' in-place ops and patches, or'} "
            f"{max(1, math.floor(mp.activation_bits * cap / mp.arena_bytes))}-bit activations"
        )
    if not fit.weights_fit:
        out.append(_weight_advice(mp, device))
    return out


def _weight_advice(mp, device: Device) -> str:
    flash = device.weight_storage_bytes
    prof = mp.profile
    params = prof.totals.params
    parts = [f"{math.floor(flash * 8 / params)}-bit weights"] if params and flash * 8 / params >= 1 else []
    heads = [r for r in prof.layers if r.kind == "Linear" and r.params]
    if heads and heads[-1].output_shape:
        head = heads[-1]
        outs = head.output_shape[-1]
        per_out = head.weight_bytes / outs
        room = flash - (mp.weight_bytes - head.weight_bytes)
        share = head.weight_bytes / mp.weight_bytes
        if room >= per_out:
            parts.append(f"at most {math.floor(room / per_out):,} outputs in {head.name} (now {outs:,}, "
                         f"{share:.0%} of the weights)")
    parts.append(f"pruning to {flash / mp.weight_bytes:.0%} of the weights (index overhead not counted)")
    return (f"weights: {format_bytes(mp.weight_bytes)} at {mp.bits}-bit, {device.display_name} has "
            f"{format_bytes(flash)} of {device.weight_storage}: would fit with " + ", or ".join(parts))
