"""Activation memory on a microcontroller: the lectures' estimate, the live peak, the planned
arena, in-place ops and patch-based execution, beside the real host forward's allocations.

For MobileNetV2 (width 0.35 and 1.0, several resolutions), an MCUNet-style network and the
LeNets, at int8 (weights and activations), it reports:

* the lectures' estimate (largest input + output of one layer, reference/000),
* the peak live bytes (the lower bound of any arena) and the greedy arena (TFLite Micro's
  largest-first placement, best of five orders and seeded random ones),
* the arena with elementwise ops and depthwise convolutions in place (TinyEngine),
* the arena with the first stage run patch by patch (MCUNetV2), the split, the patches and
  the extra MACs,

and, for a few models, the peak memory of the real float32 forward on this host, normal and
patch-executed, beside the plan's float32 prediction. The host measurement is the sum of
the c10 CPU allocator's allocation and free events, in order, as torch.profiler records
them (``profile_memory=True``): it sees every tensor PyTorch allocates during the forward
and nothing else (tracemalloc is blind to torch's allocator; process RSS moves with glibc's
arenas, not with tensors). oneDNN's internal scratch is not in it. Memory is not timing,
so no lock is taken; the host is shared all the same.

Targets: every arena within 5% of its lower bound; patches cut MobileNetV2's planned
peak at least 4x with under 20% extra MACs; int8 MobileNetV2 0.35 at 144x144 under the
STM32F746's 320 KB of SRAM, and a variant that fits both SRAM and the 1 MB of flash.

    PYTHONPATH=src .venv/bin/python benchmarks/mcu_memory.py
"""

from __future__ import annotations

import os
import platform
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from edgefit._io import atomic_write
from edgefit.hardware import format_bytes
from edgefit.hardware.mcu import plan
from edgefit.memory import InPlaceConfig, PatchConfig, plan_memory
from edgefit.zoo import create
from edgefit.zoo.blocks import ConvBNAct

OUT = Path(__file__).parent / "results" / "mcu_memory.md"
SRAM = 320 * 1024


class MBConv(nn.Module):
    """Inverted residual with a k x k depthwise convolution (MCUNet's search space)."""

    def __init__(self, cin: int, cout: int, k: int, s: int, t: int) -> None:
        super().__init__()
        hidden = cin * t
        layers = [ConvBNAct(cin, hidden, 1, act="relu6")] if t != 1 else []
        layers += [ConvBNAct(hidden, hidden, k, s, groups=hidden, act="relu6"), ConvBNAct(hidden, cout, 1, act=None)]
        self.conv = nn.Sequential(*layers)
        self.res = s == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


# (expansion, channels, kernel, stride): MobileNetV2-like blocks with 3/5/7 kernels and 3-6
# expansions, in the spirit of MCUNet's 320 KB ImageNet models (Lin et al., NeurIPS 2020);
# not the published searched network.
MCUNET_BLOCKS = [
    (1, 8, 3, 1), (4, 16, 7, 2), (3, 16, 3, 1), (6, 24, 7, 2), (3, 24, 5, 1), (5, 40, 7, 2),
    (4, 40, 5, 1), (5, 48, 5, 1), (4, 48, 5, 1), (6, 96, 5, 2), (5, 96, 3, 1), (4, 96, 3, 1), (3, 160, 7, 1),
]


def mcunet_style(num_classes: int = 1000) -> nn.Module:
    layers, c = [ConvBNAct(3, 16, 3, 2, act="relu6")], 16
    for t, out, k, s in MCUNET_BLOCKS:
        layers.append(MBConv(c, out, k, s, t))
        c = out
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(*layers), pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
        classifier=nn.Linear(c, num_classes),
    ))


CASES = [
    ("MobileNetV2 0.35", lambda: create("mobilenet_v2", width_mult=0.35), 96),
    ("MobileNetV2 0.35", lambda: create("mobilenet_v2", width_mult=0.35), 128),
    ("MobileNetV2 0.35", lambda: create("mobilenet_v2", width_mult=0.35), 144),
    ("MobileNetV2 0.35", lambda: create("mobilenet_v2", width_mult=0.35), 176),
    ("MobileNetV2 0.35", lambda: create("mobilenet_v2", width_mult=0.35), 224),
    ("MobileNetV2 1.0", lambda: create("mobilenet_v2"), 128),
    ("MobileNetV2 1.0", lambda: create("mobilenet_v2"), 160),
    ("MobileNetV2 1.0", lambda: create("mobilenet_v2"), 224),
    ("MCUNet-style", mcunet_style, 144),
    ("MCUNet-style", mcunet_style, 176),
    ("LeNet-5", lambda: create("lenet5"), 32),
    ("LeNet-5 (digits)", lambda: create("lenet5_digits"), 8),
]
MEASURED = {("MobileNetV2 0.35", 144), ("MobileNetV2 1.0", 224), ("MCUNet-style", 176), ("LeNet-5", 32)}


def _shape(model_name: str, res: int) -> tuple[int, ...]:
    return (1, 1, res, res) if "LeNet" in model_name else (1, 3, res, res)


def host_peak_bytes(fn, x: torch.Tensor) -> int:
    """Most bytes the c10 CPU allocator holds at once during ``fn(x)``, beyond what was held before."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        y = fn(x)
        del y
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    cur = best = 0
    for e in events:
        cur += e.nbytes()
        best = max(best, cur)
    return best


def row(name: str, build, res: int) -> tuple[list[str], dict]:
    model = build().eval()
    shape = _shape(name, res)
    p = plan_memory(model, input_shape=shape, bits=8, techniques=[InPlaceConfig(), PatchConfig()])
    steps = {s.name: s for s in p.steps}
    lb, arena = steps["arena"].lower_bound_bytes, steps["arena"].arena_bytes
    inpl = steps["in-place"]
    patch = p.patch
    setting = f"{patch.patches}x{patch.patches} to {patch.split.label}" if patch else "-"
    extra = f"+{patch.overhead:.1%}" if patch else "-"
    worst = max((s.arena_bytes / s.lower_bound_bytes - 1) for s in p.steps[1:])
    cells = [
        name, f"{res}x{res}", f"{p.macs / 1e6:.1f}M", format_bytes(p.estimate_bytes), format_bytes(lb),
        f"{format_bytes(arena)} ({arena / lb - 1:+.1%})", format_bytes(inpl.arena_bytes),
        format_bytes(p.arena_bytes), setting, extra, f"{lb / p.arena_bytes:.1f}x",
        f"{inpl.arena_bytes / p.arena_bytes:.1f}x", "yes" if p.arena_bytes <= SRAM else "no",
    ]
    return cells, {"plan": p, "model": model, "shape": shape, "worst_overhead": worst}


def measured_row(name: str, res: int, info: dict) -> list[str]:
    p8, model, shape = info["plan"], info["model"], info["shape"]
    x = torch.randn(shape)
    input_bytes = x.numel() * 4
    normal = plan_memory(model, x, techniques=[])
    runs = [host_peak_bytes(model, x) + input_bytes for _ in range(3)]
    cells = [name, f"{res}x{res}", format_bytes(normal.peak_live_bytes), format_bytes(sorted(runs)[1]),
             f"{(max(runs) - min(runs)) / 1024:.1f} KB"]
    if p8.patch is None:
        return cells + ["-", "-", "-", "-"]
    cfg = PatchConfig(patches=p8.patch.patches, split=p8.patch.split.label, max_extra_macs=10.0)
    patched_plan = plan_memory(model, x, techniques=[cfg])
    patched = patched_plan.patch.apply(model)
    with torch.no_grad():
        diff = (patched(x) - model(x)).abs().max().item()
    pruns = [host_peak_bytes(patched, x) + input_bytes for _ in range(3)]
    return cells + [cfg.split, format_bytes(patched_plan.arena_bytes), format_bytes(sorted(pruns)[1]), f"{diff:.1e}"]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def main() -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    rows, infos = [], {}
    for name, build, res in CASES:
        cells, info = row(name, build, res)
        rows.append(cells)
        infos[(name, res)] = info
        print(" | ".join(cells), file=sys.stderr)
    measured = [measured_row(name, res, infos[(name, res)]) for name, _, res in CASES if (name, res) in MEASURED]
    fit = plan(create("mobilenet_v2", width_mult=0.35, device="meta"), "stm32f746", input_shape=(1, 3, 144, 144))
    small = plan(create("mobilenet_v2", width_mult=0.35, num_classes=100, device="meta"), "stm32f746",
                 input_shape=(1, 3, 144, 144))
    four = plan(create("mobilenet_v2", width_mult=0.35, device="meta"), "stm32f746", input_shape=(1, 3, 144, 144),
                bits={"classifier.*": 4, "default": 8})
    worst = max(i["worst_overhead"] for i in infos.values())
    mnv2 = [i["plan"] for (n, _), i in infos.items() if n.startswith("MobileNetV2")]
    cut = min(p.peak_live_bytes / p.arena_bytes for p in mnv2)
    cut_inpl = min(p.steps[2].arena_bytes / p.arena_bytes for p in mnv2)
    most_extra = max(p.patch.overhead for p in mnv2)
    lines = [
        "# Activation memory on a microcontroller",
        "",
        f"Written by `benchmarks/mcu_memory.py`. Machine: {platform.machine()}, {os.cpu_count()} CPUs, shared "
        "with other jobs (memory is counted, not timed). torch " + torch.__version__ + ".",
        "",
        "## Planned memory at int8 (weights and activations)",
        "",
        "Estimate: the lectures' largest input + output of one layer. Live peak: most bytes alive at once "
        "(lower bound of any arena). Arena: greedy placement (best of five orders, then seeded random ones), "
        "its excess over the bound. "
        "In-place: elementwise ops and depthwise convs overwrite inputs that die. Patches: the first stage run "
        "patch by patch (setting chosen for the lowest peak under +20% MACs; extra MACs over the whole model). "
        "Cut: live peak / final arena, and in-place arena / final arena (the patches' own share).",
        "",
        *table(["model", "input", "MACs", "estimate", "live peak", "arena", "+ in-place", "+ patches",
                "patches", "extra MACs", "cut", "cut by patches", "<= 320 KB"], rows),
        "",
        "## The plan beside the real forward on this host (float32)",
        "",
        "Plan: peak live bytes at 32 bits (the eager forward runs nothing in place beyond `ReLU(inplace)`). "
        "Host: the allocator's peak during the forward plus the input, median of 3 runs, spread = max - min. "
        "The host also holds what the plan does not model: oneDNN's per-convolution workspace, allocated "
        "through the same allocator (50,176 bytes for LeNet-5's first conv, more than its output), and "
        "max-pool indices at 8 bytes each. "
        "The patched forward is the model's own modules run tile by tile (`PatchPlan.apply`); it also "
        "holds each tile's output and a contiguous copy of each input tile that the plan (which writes "
        "straight into the assembled output and reads the input in place) does not. Max |diff| is the "
        "largest difference between the patched and the normal output.",
        "",
        *table(["model", "input", "plan", "host", "spread", "patched to", "patched plan", "patched host",
                "max diff"], measured),
        "",
        "## Targets",
        "",
        f"- Arena within 5% of the lower bound on every model and step: worst {worst:+.1%}: "
        f"{'met' if worst <= 0.05 else 'NOT met'}.",
        f"- Patches cut MobileNetV2's planned peak >= 4x with < 20% extra MACs: smallest cut {cut:.1f}x "
        f"against the live peak ({cut_inpl:.1f}x against the in-place arena), most extra MACs +{most_extra:.1%}: "
        f"{'met' if cut >= 4 and most_extra < 0.2 else 'NOT met'}.",
        f"- Int8 MobileNetV2 0.35 at 144x144 under 320 KB of SRAM: today {fit.before.message}; planned: "
        f"{fit.fit.message}. {'met' if fit.fit.activations_fit else 'NOT met'} for SRAM.",
        f"- Flash: {fit.advice[0] if fit.advice else 'fits'}.",
        f"- A variant that fits both, 100 classes: {small.fit.message} ({'met' if small.fits else 'NOT met'}).",
        f"- Or the 1000-class head at 4-bit, the rest int8: {four.fit.message}.",
        "",
    ]
    atomic_write(OUT, "\n".join(lines))
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
