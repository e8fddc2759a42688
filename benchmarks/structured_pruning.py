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
* ``distill``: a small student trained alone vs with the LeNet-5 teacher's soft targets.

    .venv/bin/python benchmarks/structured_pruning.py [--only speed]

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


def coverage(log) -> dict:
    rows = []
    for name in CNNS:
        shape = get_spec(name).input_shape
        torch.manual_seed(0)
        base = create(name).eval()
        x = torch.randn(shape)
        with torch.no_grad():
            y0 = base(x)
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


# --- speed ----------------------------------------------------------------------------------------

def _bench_lock():
    """Hold /tmp/edgefit-bench.lock while timing (pruning and bisection run outside it)."""
    import contextlib
    import fcntl

    @contextlib.contextmanager
    def held():
        with open("/tmp/edgefit-bench.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    return held()


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
    with _bench_lock():
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

def distill(log) -> dict:
    from edgefit.compress.distill import DistillConfig, distill_

    data = load_digits()
    torch.manual_seed(0)
    teacher = create("lenet5_digits")
    train(teacher, data, TrainConfig(epochs=30, seed=0))
    out = {"teacher": evaluate(teacher, data), "settings": []}
    for epochs, temperature, alpha, share in ((20, 1.0, 0.5, 1.0), (20, 2.0, 0.5, 1.0), (20, 4.0, 0.9, 1.0),
                                              (60, 1.0, 0.5, 0.1), (60, 4.0, 0.9, 0.1)):
        alone, soft = [], []
        n = int(share * len(data.y_train))
        part = dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])
        for seed in range(5):
            torch.manual_seed(seed)
            s = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
            init = copy.deepcopy(s.state_dict())
            train(s, part, TrainConfig(epochs=epochs, seed=seed))
            alone.append(1 - evaluate(s, data))
            s.load_state_dict(init)
            distill_(s, teacher, part, DistillConfig(temperature=temperature, alpha=alpha, epochs=epochs, seed=seed))
            soft.append(1 - evaluate(s, data))
        out["settings"].append({"epochs": epochs, "T": temperature, "alpha": alpha, "train_images": n,
                                "alone": alone, "soft": soft})
        log(f"distill {epochs} T={temperature} a={alpha}: alone {statistics.mean(alone):.4f} soft {statistics.mean(soft):.4f}")
    return out


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
              "the closed form from the pruned widths.", "",
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
            kinds = sorted(set(other.values()), key=len)[:3]
            lines.append(f"- {model}: {len(other)} groups besides input/output, e.g. " + "; ".join(kinds))
    lines.append("")
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


def _render_distill(di: dict) -> list[str]:
    lines: list[str] = []
    lines += ["## Knowledge distillation (digits; student 64-16-10 MLP, teacher LeNet-5 at "
              f"{100 * di['teacher']:.2f}%; test error, mean ± sd over 5 seeds)", "",
              "| student's training images | epochs | T | alpha | student alone error % | with soft targets error % "
              "| soft targets better? |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for s in di["settings"]:
        diff = statistics.mean(s["alone"]) - statistics.mean(s["soft"])
        verdict = "tie (< 1 test image)" if abs(diff) < 1 / 360 else "yes" if diff > 0 else "no"
        lines.append(f"| {s['train_images']} | {s['epochs']} | {s['T']} | {s['alpha']} | {_mean_sd(s['alone'])} | "
                     f"{_mean_sd(s['soft'])} | {verdict} |")
    lines.append("")
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
    if state.get("distill"):
        lines += _render_distill(state["distill"])
    return "\n".join(lines)


SECTIONS = {"coverage": coverage, "speed": speed, "accuracy": accuracy, "energy": energy, "distill": distill}


def load_state() -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RAW.glob("*.json")) if p.stem in SECTIONS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = ap.parse_args()
    RAW.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    for name in args.only.split(","):
        t0 = time.perf_counter()
        result = SECTIONS[name](log)
        result["seconds"] = time.perf_counter() - t0
        atomic_write(RAW / f"{name}.json", json.dumps(result, indent=1, default=str))
        atomic_write(OUT, render(load_state()) + "\n")
        log(f"{name} done in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
