"""What the hardware model predicts for reduced precision, per device: the lectures'
XNOR-Net "~58x" and the per-layer rates of a mixed-precision AlexNet.

Nothing is timed: every figure is an estimate of `edgefit.estimate` from the device
files (each rate with its source), so the results do not depend on this host.

    PYTHONPATH=src python benchmarks/precision_rates.py

writes benchmarks/results/precision_rates.md (atomically). The comparison is with
what edgefit did before per-layer rates (every width below 16 bits at the device's
int8 rate, i.e. ``precision="int8"`` for the quantized layers' widths).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from torch import nn

import edgefit
from edgefit._io import atomic_write
from edgefit.compress.quantize.precision import LayerPrecision, operation_counts
from edgefit.errors import DeviceError
from edgefit.hardware import estimate
from edgefit.hardware.device import ALL_PRECISION_BITS
from edgefit.metrics import UncountedOpsWarning
from edgefit.zoo import create

DEVICES = ("a100", "jetson_orin_nano", "raspberry_pi_5", "stm32f746", "edgetpu")
LAYERS = {  # the lectures' AlexNet layers (reference/001): conv3 and fc6
    "AlexNet conv3 (256 -> 384, 3x3, 13x13)": (nn.Conv2d(256, 384, 3, padding=1), (1, 256, 13, 13)),
    "AlexNet fc6 (9216 -> 4096)": (nn.Linear(9216, 4096), (1, 9216)),
}
FIRST_LAST = ("features.0", "classifier.6")  # kept in float by XNOR-Net (and in 8 bits for int4)


def _one_layer_rows() -> list[str]:
    rows = ["| layer | device | binary layer ran at | compute: fp32 / binary | roofline time: fp32 / binary | bound (binary) |",
            "| --- | --- | --- | ---: | ---: | --- |"]
    savings = []
    for label, (layer, shape) in LAYERS.items():
        net = nn.Sequential(layer).to("meta")
        binary = edgefit.profile(net, input_shape=shape, bits=1, activation_bits=1)
        fp32 = edgefit.profile(net, input_shape=shape)
        ops = operation_counts(binary, {"0": LayerPrecision("xnor", 1, 1)})[0]
        savings.append(f"| {label} | {ops.macs:,} | {ops.word_ops:,} | {ops.other_ops:,} | {ops.compute_saving:.1f}x |")
        for device in DEVICES:
            b, f = estimate(binary, device).layers[0], estimate(fp32, device).layers[0]
            rows.append(f"| {label} | {device} | {b.precision} | {f.compute_seconds / b.compute_seconds:.1f}x"
                        f" | {f.seconds / b.seconds:.1f}x | {b.bound} |")
    head = ["| layer | binary MACs | 64-bit XNOR + popcount words | other ops | saving on a 64-bit CPU |",
            "| --- | ---: | ---: | ---: | ---: |"]
    return head + savings + ["", *rows]


def _widths(weight: int, act: int) -> dict:
    kept = {n: 32 if weight == 1 else 8 for n in FIRST_LAST}
    return {"bits": {**kept, "default": weight}, "activation_bits": {**kept, "default": act}}


def _alexnet_rows() -> list[str]:
    model = create("alexnet", device="meta")
    configs = {"fp32": {"bits": 32}, "int8 (8/8)": {"bits": 8}, "int4 (4/4, first/last 8/8)": _widths(4, 4),
               "XNOR-Net (1/1, first/last fp32)": _widths(1, 1)}
    rows = ["| device | widths | latency (per-layer rates) | latency (widths < 16 at int8, before) | layers fell back | precisions used |",
            "| --- | --- | ---: | ---: | ---: | --- |"]
    for device in DEVICES:
        for label, kw in configs.items():
            prof = edgefit.profile(model, input_shape=(1, 3, 224, 224), name="alexnet", **kw)
            est = estimate(prof, device)
            before = _before(prof, device, est)
            used = sorted({e.precision for e, r in zip(est.layers, prof.layers, strict=True) if r.macs},
                          key=lambda p: -ALL_PRECISION_BITS[p])
            rows.append(f"| {device} | {label} | {1e3 * est.totals.seconds:.3f} ms | {before} | {len(est.fallbacks)} | {', '.join(used)} |")
    return rows


def _before(prof, device: str, est) -> str:
    """Every layer at the one precision the old model used: int8 below 16 bits (when the device runs it)."""
    if all(r.precision in ("fp32", "fp16") for r in est.layers):
        return f"{1e3 * est.totals.seconds:.3f} ms"
    try:
        old = estimate(prof, device, precision="int8")
    except DeviceError:
        return "-"
    return f"{1e3 * old.totals.seconds:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "precision_rates.md"))
    args = parser.parse_args()
    warnings.simplefilter("ignore", UncountedOpsWarning)
    text = "\n".join([
        "# Reduced precision on the hardware model: predictions per device",
        "",
        "Estimates, not measurements: `edgefit.estimate` at each layer's real widths, each layer at the",
        "narrowest rate the device file lists that holds them (binary for 1-bit weights and activations,",
        "then int4, int8, fp16, fp32), bytes at the real widths. Rates below 8 bits: A100 int4 1,248 and",
        "binary 4,992 TOPS (A100 whitepaper), Jetson Orin Nano int4 40 TOPS (derived: 2x its dense INT8,",
        "Ampere tensor cores); the other devices list none and their int4/binary layers fall back to int8.",
        "Reproduce: `PYTHONPATH=src python benchmarks/precision_rates.py` (no timing; host-independent).",
        "",
        "## XNOR-Net's computation saving (reference/004: \"~58x\")",
        "",
        "On a 64-bit CPU a binary layer's MACs become ceil(MACs / 64) XNOR + popcount word operations plus",
        "its per-output non-binary work (Rastegari et al. 2016: S = c N_W / (c N_W / 64 + 1), 62.3x for",
        "c = 256, 3x3; the paper measured 58x with overheads). On devices, fp32 vs binary widths of the",
        "same layer:",
        "",
        *_one_layer_rows(),
        "",
        "## AlexNet (224x224, batch 1) at mixed widths, per device",
        "",
        "\"Before\": the same profile with every layer run at int8 (what the estimate did for any width",
        "below 16 bits, float first and last layers included: their bytes were rescaled to 8 bits, which is",
        "why XNOR-Net looked faster then); \"-\" where the device runs no int8. Now the float first and last",
        "layers run at fp32 (on the A100 they take most of the XNOR-Net model's time), 4-bit and binary",
        "layers at int4 / binary where listed, and \"fell back\" counts the rows (pooling and ReLU rows",
        "included) that wanted a rate the device lacks.",
        "",
        *_alexnet_rows(),
        "",
    ])
    atomic_write(args.output, text)


if __name__ == "__main__":
    main()
