"""Structured (channel) pruning: edgefit beside Torch-Pruning in one run.

Sections (``--only`` picks some; the results file keeps the others' last tables):

* ``coverage``: every zoo CNN pruned at 30/50/70% of its channels by both tools at
  its canonical input: runs, output shape unchanged, MACs after pruning equal to the
  per-layer closed form (out x in/groups x k x k x output pixels, from the pruned
  widths and the dense model's output sizes); which models each tool handles.
* ``speed``: ResNet-50, VGG-16, MobileNetV2 at 224x224, batch 1 and 8, pruned to half
  the MACs by each tool (kept widths rounded to multiples of 8 for both); host latency,
  one torch thread, the three models timed in alternation, median of rounds.
* ``accuracy``: the digits LeNet-5 and MobileNet v1 (0.5x, digits upscaled to 32x32)
  at 2x fewer MACs after fine-tuning, mean over 3 seeds, beside Torch-Pruning.
* ``energy``: energy-aware vs magnitude (L2, uniform) pruning on the digits LeNet-5:
  estimated energy (Eyeriss model) reached at equal accuracy.
* ``distill``: Hinton et al.'s MNIST protocol on digits: students of three sizes trained
  alone vs on a jitter-regularized LeNet-5 teacher's soft targets (T = 4 and 20), 5 seeds.

    .venv/bin/python benchmarks/structured_pruning.py [--only speed]
    .venv/bin/python benchmarks/structured_pruning.py --only coverage --models shufflenet_v1

The speed section takes /tmp/edgefit-bench.lock itself, only while it times.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from _lock import bench_lock  # benchmarks/_lock.py: the script's directory is on sys.path
from torch import nn

from edgefit._io import atomic_write
from edgefit.compress.prune import (
    AutoChannelConfig,
    ChannelConfig,
    EnergyAwareConfig,
    channel_groups,
    prune_,
)
from edgefit.compress.prune.auto import model_cost
from edgefit.compress.structured import compare_latency
from edgefit.data import TrainConfig, evaluate, load_digits, train
from edgefit.data.resize import fit_images
from edgefit.metrics import profile
from edgefit.zoo import create, get_spec

OUT = Path(__file__).parent / "results" / "structured_pruning.md"
RAW = Path(__file__).parent / "results" / "structured_pruning"  # one JSON per section: runs may overlap
CNNS = ["lenet5", "alexnet", "vgg16", "googlenet", "resnet50", "resnext50_32x4d", "densenet121", "squeezenet1_0",
        "mobilenet_v1", "mobilenet_v2", "shufflenet_v1"]
RATIOS = (0.3, 0.5, 0.7)


# --- Torch-Pruning ------------------------------------------------------------------------------

def tp_prune(model: nn.Module, x: torch.Tensor, ratio: float, round_to: int | None = None) -> nn.Module:
    import torch_pruning as tp

    last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=ratio,
                                  ignored_layers=[last], round_to=round_to)
    pruner.step()
    return model


def tp_to_macs(model, x, target_macs, round_to=8) -> tuple[nn.Module, float]:
    lo, hi, best = 0.0, 0.9, None
    for _ in range(9):
        mid = (lo + hi) / 2
        m = tp_prune(copy.deepcopy(model), x, mid, round_to)
        macs = profile(m, input_shape=tuple(x.shape)).totals.macs
        if macs <= target_macs:
            hi, best = mid, m
        else:
            lo = mid
    return best if best is not None else tp_prune(copy.deepcopy(model), x, hi, round_to), hi


# --- coverage -------------------------------------------------------------------------------------

def closed_form_macs(dense_profile, pruned: nn.Module) -> int:
    """Sum over conv/Linear layers of out x in/groups x kernel x output pixels, from pruned widths."""
    mods = dict(pruned.named_modules())
    total = 0
    for row in dense_profile.layers:
        m = mods.get(row.name)
        if isinstance(m, nn.Conv2d):
            pixels = row.output_shape[-1] * row.output_shape[-2]
            total += m.out_channels * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] * pixels
        elif isinstance(m, nn.Linear):
            total += m.out_features * m.in_features * (int(torch.tensor(row.output_shape[:-1]).prod()) if len(row.output_shape) > 1 else 1)
    return total


def conv_linear_macs(p) -> int:
    return sum(r.macs for r in p.layers if r.kind in ("Conv2d", "Linear"))


def _dense(name: str, make_input):
    """``(input shape, the zoo model seeded 0, an input, its output)``."""
    shape = get_spec(name).input_shape
    torch.manual_seed(0)
    base = create(name).eval()
    x = make_input(shape)
    with torch.no_grad():
        return shape, base, x, base(x)


def coverage(log, models: list[str] | None = None) -> dict:
    rows = []
    for name in models or CNNS:
        shape, base, x, y0 = _dense(name, torch.randn)
        dense_p = profile(base, input_shape=shape)
        t0 = time.perf_counter()
        groups = channel_groups(base, x)
        t_groups = time.perf_counter() - t0
        for ratio in RATIOS:
            row = {"model": name, "ratio": ratio, "groups": len(groups), "unprunable": len(groups.unprunable),
                   "groups_s": t_groups, "macs_dense": dense_p.totals.macs}
            for tool in ("edgefit", "torch-pruning"):
                try:
                    m = copy.deepcopy(base)
                    if tool == "edgefit":
                        if not len(groups):
                            raise RuntimeError("no prunable group: " + "; ".join(sorted(set(groups.unprunable.values())))[:200])
                        prune_(m, ChannelConfig(ratio=ratio), groups=groups)
                    else:
                        tp_prune(m, x, ratio)
                    with torch.no_grad():
                        y = m(x)
                    p = profile(m, input_shape=shape)
                    row[tool] = {"runs": True, "shape_ok": tuple(y.shape) == tuple(y0.shape), "macs": p.totals.macs,
                                 "exact": conv_linear_macs(p) == closed_form_macs(dense_p, m),
                                 "params": p.totals.params}
                except Exception as exc:  # a tool failing on a model is a result, not a crash
                    row[tool] = {"runs": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
            rows.append(row)
            log(f"coverage {name} {ratio}: edgefit {row['edgefit'].get('macs')} tp {row['torch-pruning'].get('macs')}")
        if groups.unprunable:
            rows[-1]["unprunable_reasons"] = dict(groups.unprunable)
    return {"rows": rows}


# --- attention heads -------------------------------------------------------------------------------

TRANSFORMERS = ["transformer_encoder", "bert_tiny", "llama_tiny"]


def _zeroed_heads(model: nn.Module, keep: dict) -> nn.Module:
    """The dense model with every head outside ``keep`` contributing nothing (its out_proj columns zeroed)."""
    from edgefit.compress.prune.heads import head_layouts

    dense = copy.deepcopy(model)
    for name, lay in head_layouts(dense).items():
        cols = lay.index()[(lay.proj("out_proj"), "in")]
        drop = [u for u in range(lay.n_kv_heads) if u not in set(keep[name].tolist())]
        with torch.no_grad():
            dense.get_submodule(lay.proj("out_proj")).weight[:, cols[drop].flatten()] = 0
    return dense


def transformer_macs(dense_profile, pruned: nn.Module, tokens: int) -> int:
    """Closed form: every Linear from its pruned widths, plus q k^T and attn v (2 t^2 x heads x head_dim)."""
    from edgefit.compress.prune.heads import head_layouts

    attn = sum(2 * tokens * tokens * lay.n_heads * lay.head_dim for lay in head_layouts(pruned).values())
    return closed_form_macs(dense_profile, pruned) + attn


def _tp_heads(model, x, ratio):
    import torch_pruning as tp

    from edgefit.compress.prune.heads import head_layouts

    lays = head_layouts(model)
    mods = [model.get_submodule(n) for n in lays]
    num_heads = {p: m.n_heads for m in mods for p in (m.q_proj, m.k_proj, m.v_proj)}
    pruner = tp.pruner.MetaPruner(model, x, importance=tp.importance.MagnitudeImportance(p=2), num_heads=num_heads,
                                  prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=0.5,
                                  pruning_ratio=ratio)
    pruner.step()
    for m in mods:  # Torch-Pruning leaves the module's own head count to the user
        m.n_heads = pruner.num_heads.get(m.q_proj, m.n_heads)
        m.n_kv_heads = pruner.num_heads.get(m.k_proj, m.n_kv_heads)
    return sum(m.n_heads for m in mods)


def heads(log) -> dict:
    rows = []
    for name in TRANSFORMERS:
        shape, base, x, y0 = _dense(name, lambda shape: torch.randint(0, 200, shape))
        dense_p = profile(base, x)
        groups = channel_groups(base, x)
        head_groups = [n for n, g in groups.items() if g.kind == "heads"]
        row = {"model": name, "macs_dense": dense_p.totals.macs, "params_dense": dense_p.totals.params,
               "heads_dense": sum(base.get_submodule(n).n_heads for n in head_groups),
               "kv_heads_dense": sum(groups[n].width for n in head_groups), "groups": len(groups)}
        for label, ratio in (("heads", {n: 0.5 for n in head_groups}), ("all", 0.5)):
            m = copy.deepcopy(base)
            keep = prune_(m, ChannelConfig(ratio=ratio), groups=groups)
            with torch.no_grad():
                y = m(x)
                zero = _zeroed_heads(base, keep)(x) if label == "heads" else None
            p = profile(m, x)
            row[label] = {"macs": p.totals.macs, "params": p.totals.params, "shape_ok": tuple(y.shape) == tuple(y0.shape),
                          "heads": sum(m.get_submodule(n).n_heads for n in head_groups),
                          "exact": p.totals.macs == transformer_macs(dense_p, m, shape[1]),
                          "max_diff_vs_zeroed": None if zero is None else float((y - zero).abs().max())}
        for label, ratio in (("tp_heads", 0.0), ("tp_all", 0.5)):
            try:
                m = copy.deepcopy(base)
                n_heads = _tp_heads(m, x, ratio)
                with torch.no_grad():
                    y = m(x)
                row[label] = {"runs": True, "heads": n_heads, "macs": profile(m, x).totals.macs}
            except Exception as exc:  # a tool failing on a model is a result
                row[label] = {"runs": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
        rows.append(row)
        log(f"heads {name}: {row['heads_dense']} -> {row['heads']['heads']}, diff {row['heads']['max_diff_vs_zeroed']}")
    return {"rows": rows}


# --- speed ----------------------------------------------------------------------------------------

def speed(log) -> dict:
    prepared = []
    shape = (1, 3, 224, 224)
    for name in ("resnet50", "vgg16", "mobilenet_v2"):
        torch.manual_seed(0)
        dense = create(name).eval()
        macs0 = profile(dense, input_shape=shape).totals.macs
        ef = copy.deepcopy(dense)
        t0 = time.perf_counter()
        prune_(ef, AutoChannelConfig(target=0.5, cost="macs", input_shape=shape, round_to=8))
        t_ef = time.perf_counter() - t0
        t0 = time.perf_counter()
        tpm, tp_ratio = tp_to_macs(dense, torch.randn(shape), macs0 * 0.5)
        t_tp = time.perf_counter() - t0
        macs = {k: profile(m, input_shape=shape).totals.macs for k, m in (("edgefit", ef), ("tp", tpm))}
        prepared.append((name, dense, ef, tpm, macs0, macs, tp_ratio, t_ef, t_tp))
        log(f"speed: {name} pruned (edgefit {t_ef:.0f} s, Torch-Pruning {t_tp:.0f} s)")
    rows = []
    t_wait = time.perf_counter()
    with bench_lock():
        log(f"speed: bench lock held after {time.perf_counter() - t_wait:.0f} s")
        for name, dense, ef, tpm, macs0, macs, tp_ratio, t_ef, t_tp in prepared:
            for batch in (1, 8):
                x = (torch.randn(batch, 3, 224, 224),)
                runs, rounds = (5, 5) if batch == 1 else (2, 3)
                res = compare_latency([dense, ef, tpm], x, rounds=rounds, runs=runs)
                rows.append({"model": name, "batch": batch, "macs_dense": macs0, "macs_edgefit": macs["edgefit"],
                             "macs_tp": macs["tp"], "tp_ratio": tp_ratio, "prune_s_edgefit": t_ef, "prune_s_tp": t_tp,
                             "dense": res[0], "edgefit": res[1], "tp": res[2], "rounds": rounds, "runs": runs})
                log(f"speed {name} b{batch}: dense {res[0][0]:.4f}s edgefit {res[1][0]:.4f}s tp {res[2][0]:.4f}s")
    return {"rows": rows}


# --- accuracy -------------------------------------------------------------------------------------

def _acc_case(name, data, shape, dense_epochs, ft_epochs, seeds, builder, log):
    out = {"dense": [], "edgefit": [], "edgefit_fmap": [], "tp": [], "macs": {}}
    for seed in seeds:
        torch.manual_seed(seed)
        dense = builder()
        train(dense, data, TrainConfig(epochs=dense_epochs, seed=seed))
        out["dense"].append(evaluate(dense, data))
        macs0 = model_cost(dense, shape)
        ef = copy.deepcopy(dense)
        prune_(ef, AutoChannelConfig(target=0.5, cost="macs", input_shape=shape))
        ratios = {}
        fm = copy.deepcopy(dense)
        groups = channel_groups(fm, input_shape=shape)
        for n, g in channel_groups(ef, input_shape=shape).items():
            ratios[n] = 1 - g.width / groups[n].width
        x = torch.from_numpy(data.x_train[:256])
        prune_(fm, ChannelConfig(ratio=ratios, importance="fmap"), groups=groups, data=(x, None))
        tpm, _ = tp_to_macs(dense, torch.zeros(shape), 0.5 * macs0, round_to=None)
        for key, m in (("edgefit", ef), ("edgefit_fmap", fm), ("tp", tpm)):
            train(m, data, TrainConfig(epochs=ft_epochs, seed=seed, lr=5e-4))
            out[key].append(evaluate(m, data))
            out["macs"][key] = model_cost(m, shape) / macs0
        log(f"accuracy {name} seed {seed}: " + ", ".join(f"{k} {out[k][-1]:.4f}" for k in ("dense", "edgefit", "edgefit_fmap", "tp")))
    return out


def accuracy(log) -> dict:
    digits = load_digits()
    res = {"lenet5_digits": _acc_case("lenet5_digits", digits, (1, 1, 8, 8), 30, 10, (0, 1, 2),
                                      lambda: create("lenet5_digits"), log)}
    up = fit_images(digits, size=32, channels=3)
    res["mobilenet_v1_0.5_32px"] = _acc_case("mobilenet_v1", up, (1, 3, 32, 32), 30, 15, (0, 1, 2),
                                             lambda: create("mobilenet_v1", alpha=0.5, num_classes=10, dropout=0.0),
                                             log)
    return res


# --- energy ---------------------------------------------------------------------------------------

def energy(log) -> dict:
    data = load_digits()
    shape = (1, 1, 8, 8)
    rows = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        dense = create("lenet5_digits")
        train(dense, data, TrainConfig(epochs=30, seed=seed))
        acc0 = evaluate(dense, data)
        e0 = model_cost(dense, shape, "energy", device="eyeriss")
        for target in (0.5, 0.3, 0.2, 0.1):
            for method in ("energy-aware", "magnitude"):
                m = copy.deepcopy(dense)
                if method == "energy-aware":
                    prune_(m, EnergyAwareConfig(target=target, device="eyeriss", input_shape=shape, finetune_epochs=1),
                           data=data)
                else:
                    prune_(m, AutoChannelConfig(target=target, cost="energy", device="eyeriss", input_shape=shape))
                train(m, data, TrainConfig(epochs=8, seed=seed, lr=5e-4))
                e = model_cost(m, shape, "energy", device="eyeriss")
                rows.append({"seed": seed, "target": target, "method": method, "dense_acc": acc0,
                             "acc": evaluate(m, data), "energy_frac": e / e0,
                             "macs_frac": model_cost(m, shape) / model_cost(dense, shape)})
                log(f"energy seed {seed} {method} {target}: acc {rows[-1]['acc']:.4f} energy {e / e0:.3f}")
    return {"rows": rows}


# --- distillation ---------------------------------------------------------------------------------
# The protocol of Hinton, Vinyals, Dean 2015, section 3 (MNIST), fixed before any run: a well-regularized
# teacher (trained on the training images jittered by +-1 pixel; the paper jittered 28x28 MNIST by up to
# 2 pixels), students with no regularization of their own trained on the same 1,437 un-jittered images for
# the same epochs, alone or on soft targets at T = 4 and T = 20 (the paper: T around 20 for large students,
# 2.5-4 for a 30-unit one) with soft weight 0.9 (x T^2) and 0.1 on the labels. Same initial weights and
# batch order for both trainings of a student; a teacher per seed; every setting below is reported.
DISTILL_SEEDS = range(5)
DISTILL_EPOCHS = 60
LONG_EPOCHS = 200
TEACHER_EPOCHS = 10
TEMPERATURES = (4.0, 20.0)
SOFT_WEIGHT = 0.9


def _students() -> dict:
    return {
        "MLP 64-30-30-10": lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 30), nn.ReLU(), nn.Linear(30, 30),
                                                 nn.ReLU(), nn.Linear(30, 10)),
        "CNN conv4-conv8-fc (small)": lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32, 10)),
        "MLP 64-800-800-10": lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 800), nn.ReLU(), nn.Linear(800, 800),
                                                   nn.ReLU(), nn.Linear(800, 10)),
    }


def jittered(data):
    """The training images shifted by -1, 0, +1 pixel in each direction (9x the images), zero-filled."""
    import numpy as np

    x, h, w = data.x_train, data.x_train.shape[-2], data.x_train.shape[-1]
    xs = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out = np.zeros_like(x)
            out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            xs.append(out)
    return dataclasses.replace(data, x_train=np.concatenate(xs), y_train=np.tile(data.y_train, 9))


def distill(log, epochs: int = DISTILL_EPOCHS, only: tuple[str, ...] | None = None) -> dict:
    from edgefit.compress.distill import DistillConfig, distill_

    data = load_digits()
    teacher_data = jittered(data)
    students = {n: b for n, b in _students().items() if only is None or n in only}
    out = {"teacher": [], "students": {name: {"params": None, "alone": [], **{str(t): [] for t in TEMPERATURES}}
                                       for name in students}}
    for seed in DISTILL_SEEDS:
        torch.manual_seed(seed)
        teacher = create("lenet5_digits")
        train(teacher, teacher_data, TrainConfig(epochs=TEACHER_EPOCHS, seed=seed, lr_decay=0.8))
        out["teacher"].append(_errors(teacher, data))
        log(f"distill seed {seed}: teacher {out['teacher'][-1]} errors")
        for name, build in students.items():
            torch.manual_seed(seed)
            s = build()
            init = copy.deepcopy(s.state_dict())
            row = out["students"][name]
            row["params"] = sum(p.numel() for p in s.parameters())
            train(s, data, TrainConfig(epochs=epochs, seed=seed))
            row["alone"].append(_errors(s, data))
            for t in TEMPERATURES:
                s.load_state_dict(init)
                distill_(s, teacher, data, DistillConfig(temperature=t, alpha=SOFT_WEIGHT, epochs=epochs, seed=seed))
                row[str(t)].append(_errors(s, data))
            log(f"distill seed {seed} {name}: alone {row['alone'][-1]}, "
                + ", ".join(f"T={t}: {row[str(t)][-1]}" for t in TEMPERATURES))
    out["protocol"] = {"seeds": list(DISTILL_SEEDS), "epochs": epochs, "teacher_epochs": TEACHER_EPOCHS,
                       "temperatures": list(TEMPERATURES), "soft_weight": SOFT_WEIGHT}
    return out


def distill_long(log) -> dict:
    """The two small students again, trained to convergence: at 60 epochs their distilled runs were
    still learning (training loss falling, training accuracy under 100%) while the students alone had
    converged, so 60 epochs compared an unfinished distillation with a finished baseline."""
    return distill(log, LONG_EPOCHS, ("MLP 64-30-30-10", "CNN conv4-conv8-fc (small)"))


def _errors(model, data) -> int:
    return round((1 - evaluate(model, data)) * len(data.y_test))


# --- report ---------------------------------------------------------------------------------------

def _ms(t):
    return f"{1e3 * t[0]:.1f} ({1e3 * t[1]:.1f}-{1e3 * t[2]:.1f})"


def _mean_sd(v):
    return f"{100 * statistics.mean(v):.2f} ± {100 * (statistics.stdev(v) if len(v) > 1 else 0):.2f}"


def _render_coverage(cov: dict) -> list[str]:
    lines: list[str] = []
    lines += ["## Coverage: every zoo CNN at 30/50/70% of its channels", "",
              "edgefit: `prune_(model, ChannelConfig(ratio=r))`, L2, every prunable group; Torch-Pruning 1.6 "
              "`MetaPruner` (L2 magnitude, last layer ignored). *exact*: the profiler's conv/Linear MACs equal "
              "the closed form from the pruned widths. ShuffleNet v1: each unit's bottleneck prunes in coupled "
              "sets of g channels through the channel shuffle (rows that straddle two blocks of the second "
              "grouped conv are kept whole, listed as `#kept` groups); its stage-wide channels stay, so its MACs "
              "fall less than the ratio (rows rerun with `--only coverage --models shufflenet_v1`; the other "
              "models' rows are from the previous run, their pruning unchanged).", "",
              "| model | ratio | groups (unprunable) | dense MACs | edgefit MACs | runs, shape, exact | "
              "Torch-Pruning MACs | runs, shape, exact |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in cov["rows"]:
        cells = []
        for tool in ("edgefit", "torch-pruning"):
            d = r[tool]
            if d["runs"]:
                cells += [f"{d['macs'] / 1e6:,.1f}M ({d['macs'] / r['macs_dense']:.0%})",
                          f"yes, {'same' if d['shape_ok'] else 'CHANGED'}, {'yes' if d['exact'] else 'no'}"]
            else:
                cells += ["-", f"fails: {d['error']}"]
        lines.append(f"| {r['model']} | {r['ratio']:.0%} | {r['groups']} ({r['unprunable']}) | "
                     f"{r['macs_dense'] / 1e6:,.1f}M | " + " | ".join(cells) + " |")
    reasons = {r["model"]: r["unprunable_reasons"] for r in cov["rows"] if "unprunable_reasons" in r}
    lines += ["", "Groups edgefit does not prune, and why (every model's input and output channels stay):", ""]
    for model, rs in reasons.items():
        other = {k: v for k, v in rs.items() if v not in ("model input", "model output")}
        if other:
            kinds = sorted(set(other.values()), key=lambda r: (len(r), r))[:3]
            lines.append(f"- {model}: {len(other)} groups besides input/output, e.g. " + "; ".join(kinds))
    lines.append("")
    return lines


def _render_heads(hd: dict) -> list[str]:
    lines = ["## Attention heads (transformers from the zoo)", "",
             "edgefit: `prune_(model, ChannelConfig(ratio={head group: 0.5}))` (half the heads, L2 of each head's "
             "q/k/v rows; a unit is one KV head with its query heads, so LLaMA's grouped-query attention loses "
             "whole KV groups), then `ratio=0.5` on every group (heads and MLP hidden units). *zeroed*: max |pruned "
             "- dense with the removed heads' out_proj columns zeroed| on a random batch. *exact*: the profiler's "
             "MACs equal the closed form (every Linear from its pruned widths + 2 x tokens^2 x heads x head_dim). "
             "Torch-Pruning 1.6 `MetaPruner` with its head options (`num_heads` for q/k/v, `prune_num_heads=True`, "
             "`head_pruning_ratio=0.5`), head counts written back to the module by hand.", "",
             "| model | dense heads, MACs | edgefit half the heads: heads, MACs, zeroed, exact | edgefit 50% of "
             "every group: heads, MACs, exact | Torch-Pruning heads only | Torch-Pruning heads + 50% channels |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in hd["rows"]:
        h, a = r["heads"], r["all"]
        tp = [f"{d['heads']} heads, {d['macs'] / 1e6:.2f}M MACs" if d["runs"] else f"fails: {d['error']}"
              for d in (r["tp_heads"], r["tp_all"])]
        lines.append(f"| {r['model']} | {r['heads_dense']}, {r['macs_dense'] / 1e6:.2f}M | {h['heads']}, "
                     f"{h['macs'] / 1e6:.2f}M, {h['max_diff_vs_zeroed']:.1e}, {'yes' if h['exact'] else 'no'} | "
                     f"{a['heads']}, {a['macs'] / 1e6:.2f}M, {'yes' if a['exact'] else 'no'} | {tp[0]} | {tp[1]} |")
    lines += ["", "nn.MultiheadAttention (the zoo's `attention='mha'` spelling) is named unprunable with the "
              "reason: it fuses q/k/v and fixes the head size at embed_dim/num_heads.", ""]
    return lines


def _render_speed(sp: dict) -> list[str]:
    lines: list[str] = []
    lines += ["## Real speed at half the MACs (224x224, one thread)", "",
              "edgefit: `AutoChannelConfig(target=0.5, cost='macs', round_to=8)` (uniform ratio found by "
              "bisection); Torch-Pruning: `MetaPruner` L2, uniform, `round_to=8`, ratio bisected to the same MAC "
              "budget. Latency in ms: median of rounds (min-max of the rounds' medians).", "",
              "| model | batch | MACs dense -> edgefit / TP | dense ms | edgefit ms | speed-up | TP ms | "
              "TP speed-up |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sp["rows"]:
        lines.append(f"| {r['model']} | {r['batch']} | {r['macs_dense'] / 1e9:.2f}G -> "
                     f"{r['macs_edgefit'] / 1e9:.2f}G ({r['macs_dense'] / r['macs_edgefit']:.2f}x) / "
                     f"{r['macs_tp'] / 1e9:.2f}G ({r['macs_dense'] / r['macs_tp']:.2f}x) | {_ms(r['dense'])} | "
                     f"{_ms(r['edgefit'])} | **{r['dense'][0] / r['edgefit'][0]:.2f}x** | {_ms(r['tp'])} | "
                     f"{r['dense'][0] / r['tp'][0]:.2f}x |")
    lines.append("")
    return lines


def _render_accuracy(acc: dict) -> list[str]:
    lines: list[str] = []
    lines += ["## Accuracy at 2x fewer MACs after fine-tuning (digits test split, 360 images; mean ± sd over "
              "3 seeds)", "",
              "Dense training and fine-tuning epochs: LeNet-5 30 + 10, MobileNet v1 0.5x (digits upscaled to "
              "32x32, 3 channels) 30 + 15; each pruned model fine-tunes at lr 5e-4.", "",
              "| model | dense % | edgefit L2 % | edgefit fmap+LS % | Torch-Pruning % | MACs kept (ef / fmap / TP) "
              "| edgefit within 1 pp? |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in ((k, v) for k, v in acc.items() if isinstance(v, dict)):
        gaps = {k: 100 * (statistics.mean(r["dense"]) - statistics.mean(r[k])) for k in ("edgefit", "edgefit_fmap")}
        lines.append(f"| {name} | {_mean_sd(r['dense'])} | {_mean_sd(r['edgefit'])} | "
                     f"{_mean_sd(r['edgefit_fmap'])} | {_mean_sd(r['tp'])} | {r['macs']['edgefit']:.0%} / "
                     f"{r['macs']['edgefit_fmap']:.0%} / {r['macs']['tp']:.0%} | " + ", ".join(f"{lab}: {'yes' if g <= 1 else 'no'} ({g:+.2f} pp)"
                                 for lab, g in zip(("L2", "fmap"), gaps.values(), strict=True)) + " |")
    lines.append("")
    return lines


def _render_energy(en: dict) -> list[str]:
    lines: list[str] = []
    lines += ["## Energy-aware vs magnitude pruning (digits LeNet-5, Eyeriss energy model)", "",
              "Each: prune to the energy target, then 8 epochs of fine-tuning (energy-aware also fine-tunes 1 "
              "epoch after each step). Mean over 3 seeds.", "",
              "| target | method | energy kept | MACs kept | accuracy % | drop (pp) |",
              "| --- | --- | --- | --- | --- | --- |"]
    keys = sorted({(r["target"], r["method"]) for r in en["rows"]}, key=lambda k: (-k[0], k[1]))
    for t, mth in keys:
        rs = [r for r in en["rows"] if r["target"] == t and r["method"] == mth]
        ef = statistics.mean(r["energy_frac"] for r in rs)
        mf = statistics.mean(r["macs_frac"] for r in rs)
        a = [r["acc"] for r in rs]
        drop = 100 * statistics.mean(r["dense_acc"] - r["acc"] for r in rs)
        lines.append(f"| {t:.0%} | {mth} | {ef:.1%} ({1 / ef:.2f}x less) | {mf:.1%} | {_mean_sd(a)} | {drop:+.2f} |")
    lines.append("")
    return lines


def _errs(v, n=360):
    return f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f} ({100 * statistics.mean(v) / n:.2f}%)"


def _distill_table(di: dict) -> list[str]:
    temps = di["protocol"]["temperatures"]
    lines = ["| student | params | alone | " + " | ".join(f"distilled T={t:g}" for t in temps)
             + " | seeds where distilled beats alone (" + ", ".join(f"T={t:g}" for t in temps) + ") |",
             "| --- | --- | --- | " + " | ".join("---" for _ in temps) + " | --- |"]
    for name, row in di["students"].items():
        n = len(row["alone"])
        wins = [f"{sum(d < a for d, a in zip(row[str(t)], row['alone'], strict=True))} of {n}" for t in temps]
        lines.append(f"| {name} | {row['params']:,} | {_errs(row['alone'])} | "
                     + " | ".join(_errs(row[str(t)]) for t in temps) + " | " + " / ".join(wins) + " |")
    lines += ["", f"Teacher: {_errs(di['teacher'])} errors. Per-seed errors (alone; "
              + "; ".join(f"T={t:g}" for t in temps) + "): "
              + "; ".join(f"{name}: {row['alone']}; " + "; ".join(str(row[str(t)]) for t in temps)
                          for name, row in di["students"].items()) + f"; teacher {di['teacher']}.", ""]
    for name, row in di["students"].items():
        best = min(temps, key=lambda t: statistics.mean(row[str(t)]))
        diff = statistics.mean(row["alone"]) - statistics.mean(row[str(best)])
        verdict = ("fewer errors with soft targets" if diff >= 1 else "more errors with soft targets" if diff <= -1
                   else "no difference of a whole test image")
        paired = "; ".join(f"T={t:g}: {_paired(row['alone'], row[str(t)])}" for t in temps)
        lines.append(f"* {name}: alone {statistics.mean(row['alone']):.1f} vs distilled at its best T={best:g} "
                     f"{statistics.mean(row[str(best)]):.1f} errors: {verdict}. Errors saved per seed (alone - "
                     f"distilled, same seed), mean ± sd: {paired}.")
    return [*lines, ""]


def _paired(alone, distilled) -> str:
    from scipy.stats import ttest_rel

    d = [a - b for a, b in zip(alone, distilled, strict=True)]
    p = float(ttest_rel(alone, distilled).pvalue) if any(d) else 1.0
    return f"{statistics.mean(d):+.1f} ± {statistics.stdev(d):.1f} {d}, paired t-test p = {p:.2f}"


def _render_distill(state: dict) -> list[str]:
    first = state.get("distill")
    if not first or "students" not in first:
        return []
    pr = first["protocol"]
    lines = ["## Knowledge distillation (digits, Hinton et al. 2015 section 3)", "",
             f"Test errors out of 360, mean ± sd over {len(pr['seeds'])} seeds (seeds {pr['seeds']}, all shown), "
             "with % of the test set. Teacher: LeNet-5 trained "
             f"{pr['teacher_epochs']} epochs on the training images jittered by ±1 pixel (9x the images; the "
             "paper's teacher was regularized by jitter and dropout), one per seed. Students: no regularization, "
             "the same 1,437 un-jittered images and the same epochs alone and distilled, Adam 1e-3, batch 64, the "
             f"same initial weights and batch order; distilled = {pr['soft_weight']} x T^2 x soft cross-entropy + "
             f"{1 - pr['soft_weight']:.1f} x hard cross-entropy. Students, temperatures, weights, epochs and "
             "seeds were fixed before each run.", "",
             "What changed from the earlier table (a 64-16-10 MLP student, 20 epochs, a LeNet-5 teacher without "
             "regularization, one teacher for all seeds): the loss was already the paper's (soft term x T^2, "
             "checked in `edgefit.compress.distill`), so no code bug; the setting was not the paper's. That "
             "student was still underfitting at 20 epochs (9% error alone) and the teacher was not regularized, "
             "so soft targets had nothing to regularize. Now: a jitter-regularized teacher per seed, students of "
             "three sizes including the paper's large unregularized MLP, the paper's temperatures, and students "
             "trained until they fit their training set.", "",
             f"### Run 1: {pr['epochs']} epochs for every student (the protocol as first fixed)", ""]
    lines += _distill_table(first)
    long = state.get("distill_long")
    if long and "students" in long:
        lines += [f"### Run 2: the two small students trained {long['protocol']['epochs']} epochs", "",
                  "Why a second run: after run 1's first seed, the training curves of the 30-30 MLP (seed 0, 200 "
                  "epochs, test errors every 10 epochs) showed the student alone at its final level from ~50 "
                  "epochs on (10-14 errors, 100% training accuracy at the end) while the distilled one was still "
                  "learning at 60 (19 errors at T=4, 11 at 200, training loss still falling): matching the "
                  "teacher's soft targets is a harder regression than fitting labels, and run 1 compared an "
                  "unfinished distillation with a finished baseline. The paper trains to convergence. Run 2 "
                  "changes only the epochs (for both arms), was fixed before it ran, and run 1 stays above as "
                  "it came out. The 800-800 MLP is not rerun (it costs most of the run): its numbers are at 60 "
                  "epochs, where its distilled runs may not have converged either.", ""]
        lines += _distill_table(long)
    lines += ["Reproduce: `.venv/bin/python benchmarks/structured_pruning.py --only distill,distill_long` "
              "(no timing; about 30 min on a shared 2-core host).", ""]
    return lines


def render(state: dict) -> str:
    lines = ["# Structured pruning: edgefit beside Torch-Pruning", "",
             "Raw numbers: `benchmarks/results/structured_pruning/*.json`.", "",
             f"Host: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads available; **shared with other jobs** (timings vary; "
             "alternating rounds, medians, spread in parentheses). Reproduce: "
             "`.venv/bin/python benchmarks/structured_pruning.py` (the timing holds /tmp/edgefit-bench.lock).", ""]
    if state.get("coverage"):
        lines += _render_coverage(state["coverage"])
    if state.get("speed"):
        lines += _render_speed(state["speed"])
    if state.get("accuracy"):
        lines += _render_accuracy(state["accuracy"])
    if state.get("energy"):
        lines += _render_energy(state["energy"])
    if state.get("heads"):
        lines += _render_heads(state["heads"])
    lines += _render_distill(state)
    return "\n".join(lines)


SECTIONS = {"coverage": coverage, "speed": speed, "accuracy": accuracy, "energy": energy, "distill": distill,
            "distill_long": distill_long, "heads": heads}


def _merge_coverage(old: dict | None, new: dict) -> dict:
    """The last run's coverage rows with the rerun models' rows replaced, in zoo order."""
    fresh = {r["model"] for r in new["rows"]}
    rows = [r for r in (old or {}).get("rows", []) if r["model"] not in fresh] + new["rows"]
    rows.sort(key=lambda r: CNNS.index(r["model"]) if r["model"] in CNNS else len(CNNS))
    return {**(old or {}), "rows": rows}


def load_state() -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RAW.glob("*.json")) if p.stem in SECTIONS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument("--models", default=None, help="coverage: only these zoo CNNs (comma-separated); "
                    "the other models' rows are kept from the last run")
    args = ap.parse_args()
    RAW.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    for name in args.only.split(","):
        t0 = time.perf_counter()
        if name == "coverage" and args.models:
            result = _merge_coverage(load_state().get("coverage"), coverage(log, args.models.split(",")))
        else:
            result = SECTIONS[name](log)
        result["seconds"] = time.perf_counter() - t0
        atomic_write(RAW / f"{name}.json", json.dumps(result, indent=1, default=str))
        atomic_write(OUT, render(load_state()) + "\n")
        log(f"{name} done in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
