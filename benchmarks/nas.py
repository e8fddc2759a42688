"""Architecture search on the digits: every optimizer with the same budget, beside random search.

On the lectures' cell space (``cell``: 12 operations x connections, 497,664
architectures), each optimizer runs ``--samples`` samples for each of ``--seeds``
seeds, with two objectives, validation accuracy (approximate: a few epochs on the
search split) and host latency (the lookup table, warmed before anything is
searched, so no sample is timed), and the hard constraint latency@host <= the
median latency of the twelve single-operation networks. Reported per optimizer:
the best accuracy under the constraint, the hypervolume of the accuracy/latency
front (reference: accuracy 0, the latency limit), wall time and time_nas; then
whether it beats random search and by how much (means over seeds, with spread).

Then throughput: the same random search (same architectures) inline, on one Ray
worker and on two Ray workers (Ray started once, not timed), alternated over
``--rounds`` rounds; samples per minute are medians with their range.

The host is shared: run under the benchmark lock so that no other timing overlaps,

    flock /tmp/edgefit-bench.lock .venv/bin/python benchmarks/nas.py [--samples 20] [--seeds 3]

and the result is written atomically to ``benchmarks/results/nas.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import edgefit
from edgefit._io import atomic_write
from edgefit.data import load_digits
from edgefit.search import search
from edgefit.search.nas import (
    CoordinateConfig,
    DartsConfig,
    EvalConfig,
    EvolutionConfig,
    GPConfig,
    NSGA2Config,
    RandomConfig,
    ReinforceConfig,
    TPEConfig,
    hypervolume_2d,
    load_space,
)

OUT = Path(__file__).parent / "results" / "nas.md"
COSTS = ("latency@host", "macs")  # macs: nothing is timed (no lock needed), wall times are left out


def optimizers(samples: int, seed: int) -> dict:
    startup = max(2, samples // 4)
    return {
        "random": RandomConfig(seed=seed),
        "coordinate": CoordinateConfig(seed=seed),
        "evolution": EvolutionConfig(population=max(4, samples // 4), sample=3, seed=seed),
        "reinforce": ReinforceConfig(seed=seed),
        "tpe": TPEConfig(startup_trials=startup, seed=seed),
        "gp": GPConfig(startup_trials=startup, seed=seed),
        "nsga2": NSGA2Config(population=max(4, samples // 4), seed=seed),
        "darts": DartsConfig(epochs=5, seed=seed),
    }


def warm_table(space, table, cost: str = "latency@host") -> tuple[float, list[float]]:
    """Score the twelve single-operation networks (measuring every layer configuration of the
    space once for latency@host); return their median cost and the costs."""
    from edgefit.search.nas.objectives import compute_metrics

    lat = []
    for op in space.params["node1.op"]:
        arch = {**space.smallest(), **{k: op for k in space.params if k.endswith(".op")}}
        lat.append(compute_metrics(space.build(arch), space.input_shape(), [cost], latency_table=table)[cost])
    return statistics.median(lat), lat


def mean_sd(xs) -> str:
    xs = list(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4g} ± {sd:.2g}"


def run_optimizers(space, data, args, table, limit, checkpoint=None) -> dict:
    """Every optimizer for every seed; ``checkpoint(results)`` after each run (partial tables)."""
    results: dict = {}
    for seed in range(args.seeds):
        for name, config in optimizers(args.samples, seed).items():
            if args.only and name not in args.only.split(","):
                continue
            t0 = time.perf_counter()
            res = search(space, config, objectives=["accuracy", args.cost], constraints=[f"{args.cost}<={limit}"],
                         trials=args.samples, data=data, latency_table=table,
                         eval_config=EvalConfig(epochs=args.epochs, train_fraction=args.train_fraction, seed=seed))
            wall = time.perf_counter() - t0
            ok = res.feasible
            best = max((r.values["accuracy"] for r in ok), default=0.0)
            hv = hypervolume_2d([(r.values["accuracy"], r.values[args.cost]) for r in ok],
                                ("maximize", "minimize"), (0.0, limit))
            results.setdefault(name, []).append(
                {"seed": seed, "best": best, "hv": hv, "wall": wall, "time_nas": res.time_nas["time_nas_seconds"],
                 "feasible": len(ok), "supernet": res.time_nas["supernet_seconds"]})
            print(f"{name:10s} seed {seed}: best {100 * best:.2f}%  hv {hv * 1e3:.4f}  wall {wall:.0f}s", flush=True)
            if checkpoint is not None:
                checkpoint(results)
    return results


def throughput(space, data, args) -> dict:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(edgefit.__file__).resolve().parents[1])}})
    rates: dict = {"inline": [], "ray, 1 worker": [], "ray, 2 workers": []}
    try:
        for _ in range(args.rounds):
            for label, kw in (("inline", {}), ("ray, 1 worker", {"workers": 1, "ray_address": "local"}),
                              ("ray, 2 workers", {"workers": 2, "ray_address": "local"})):
                t0 = time.perf_counter()
                search(space, RandomConfig(seed=0), objectives=["accuracy", "params"], trials=args.ray_samples,
                       data=data, eval_config=EvalConfig(epochs=args.epochs, train_fraction=args.train_fraction), **kw)
                rates[label].append(60 * args.ray_samples / (time.perf_counter() - t0))
                print(f"{label}: {rates[label][-1]:.1f} samples/min", flush=True)
    finally:
        ray.shutdown()
    return rates


def _setup_lines(args, limit, lat, load_before, load_after, seconds) -> list[str]:
    timed = args.cost == "latency@host"
    lock = ("the run held the benchmark lock, so no other *timing* overlapped, but training jobs did"
            if timed else "nothing is timed in this mode (MACs are exact counts), so it ran without the lock")
    L = [f"Host: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. **The host was shared** with other "
         f"engineers' jobs (load average {load_before:.1f} before, {load_after:.1f} after, on 2 CPUs); {lock}.", ""]
    if timed:
        cost = (f"latency@host (lookup table, warmed first: single-op networks {min(lat) * 1e3:.3f} to "
                f"{max(lat) * 1e3:.3f} ms); constraint latency@host <= {limit * 1e3:.3f} ms (their median)")
    else:
        cost = (f"MACs (exact: single-op networks {min(lat):,.0f} to {max(lat):,.0f}); constraint "
                f"macs <= {limit:,.0f} (their median)")
    L.append(f"Space `cell` ({load_space('cell').size:,} architectures); objectives accuracy (validation split "
             f"held out of the training split, {args.epochs} epochs on {int(100 * args.train_fraction)}% of the "
             f"rest) and {cost}. Budget {args.samples} samples per run, seeds 0..{args.seeds - 1}; means ± "
             f"standard deviation over seeds. Command: `{' '.join(['benchmarks/nas.py', *sys.argv[1:]])}`.")
    return [*L, ""]


def report(args, results, rates, limit, lat, load_before, load_after, seconds) -> str:
    timed = args.cost == "latency@host"
    L = [f"# Architecture search on the digits: every optimizer, same budget (accuracy vs {args.cost})", ""]
    L += _setup_lines(args, limit, lat, load_before, load_after, seconds)
    head = "| optimizer | best accuracy under the constraint (%) | hypervolume | feasible samples |"
    L += [head + (" wall (s) | time_nas (s) |" if timed else ""), "| --- | ---: | ---: | ---: |" + (" ---: | ---: |" if timed else "")]
    hv_scale = 1e3 if timed else 1e-6
    for name, runs in results.items():
        row = (f"| {name} | {mean_sd(100 * r['best'] for r in runs)} | {mean_sd(hv_scale * r['hv'] for r in runs)} | "
               f"{mean_sd(r['feasible'] for r in runs)} |")
        if timed:
            row += f" {mean_sd(r['wall'] for r in runs)} | {mean_sd(r['time_nas'] for r in runs)} |"
        L.append(row)
    unit = "accuracy x ms" if timed else "accuracy x million MACs"
    L += ["", f"Hypervolume in {unit}, reference point (accuracy 0, the constraint)."]
    if timed:
        L += ["DARTS's time_nas includes its one-shot supernet "
              f"({mean_sd(r['supernet'] for r in results.get('darts', [{'supernet': 0}]))} s)."]
    L.append("")
    if "random" in results:
        base_acc = statistics.mean(r["best"] for r in results["random"])
        base_hv = statistics.mean(r["hv"] for r in results["random"])
        L += ["## Against random search", "", "| optimizer | best accuracy vs random (pp) | hypervolume vs random | beats random? |",
              "| --- | ---: | ---: | --- |"]
        for name, runs in results.items():
            if name == "random":
                continue
            d_acc = 100 * (statistics.mean(r["best"] for r in runs) - base_acc)
            hv = statistics.mean(r["hv"] for r in runs)
            d_hv = hv / base_hv - 1 if base_hv else (float("inf") if hv > 0 else 0.0)
            verdict = "yes" if d_acc > 0 and d_hv > 0 else ("on accuracy" if d_acc > 0 else ("on hypervolume" if d_hv > 0 else "no"))
            L.append(f"| {name} | {d_acc:+.2f} | {100 * d_hv:+.1f}% | {verdict} |")
        L += ["", f"One test image is 0.28 pp; the validation split has {int(round(1437 * 0.2))} images (0.35 pp each), "
              "so differences of a point or two between means are within the seed spread shown above. "
              "Accuracies are the search's approximate ones (a short training), good for ranking, not final.", "",
              "Reading: samples rejected by the constraint are never trained and count in the budget. Coordinate "
              "descent, evolution and REINFORCE rank them by how far they break it and walk into the feasible "
              "region; TPE treats them as the worst trials. Optuna's GP and NSGA-II samplers leave pruned trials "
              "out, so their few random start-up samples are all they learn from: with the same seed they repeat "
              "random search's results exactly. DARTS optimizes accuracy alone (its supernet has no cost term, "
              "unlike FBNet or ProxylessNAS), so its argmax architecture often breaks a cost cap.", ""]
    if rates:
        L += ["## Samples per minute, 1 and 2 Ray workers", "",
              f"Random search, the same {args.ray_samples} architectures each time, accuracy + params (no latency "
              f"table), {args.rounds} alternated rounds; Ray started once beforehand (its ~20 s start is not counted).", "",
              "| runner | samples/min (median) | range | speed-up vs 1 Ray worker |", "| --- | ---: | --- | ---: |"]
        one = statistics.median(rates["ray, 1 worker"])
        for label, xs in rates.items():
            med = statistics.median(xs)
            L.append(f"| {label} | {med:.1f} | {min(xs):.1f} to {max(xs):.1f} | {med / one:.2f}x |")
        two = statistics.median(rates["ray, 2 workers"]) / one
        L += ["", f"Target >= 1.6x with 2 workers on 2 cores: measured {two:.2f}x "
              f"({'met' if two >= 1.6 else 'not met'}). Two workers only help when a second core is free: with the "
              f"load average above 2 during the run, the second worker competes with other engineers' processes "
              f"for the same 2 CPUs."]
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--train-fraction", type=float, default=0.5)
    ap.add_argument("--only", default="", help="comma-separated optimizers")
    ap.add_argument("--ray-samples", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--cost", choices=COSTS, default="latency@host",
                    help="the cost objective; macs times nothing (no Ray throughput, no wall times)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from edgefit.measure import SpeedGate
    from edgefit.measure.lut import LatencyTable

    start, load_before = time.perf_counter(), os.getloadavg()[0]
    space, data = load_space("cell"), load_digits()
    rates = {} if args.no_ray or args.cost == "macs" else throughput(space, data, args)
    with tempfile.TemporaryDirectory() as tmp:
        table = LatencyTable(Path(tmp) / "lut.sqlite", gate=SpeedGate(max_wait_s=2.0))
        limit, lat = warm_table(space, table, args.cost)

        def checkpoint(results, final=False):
            text = report(args, results, rates, limit, lat, load_before, os.getloadavg()[0],
                          time.perf_counter() - start)
            if not final:
                text = text.replace("\n", "\n\n**Partial: the run was still going when this was written.**\n", 1)
            atomic_write(args.out, text)
            return text

        results = run_optimizers(space, data, args, table, limit, checkpoint)
        print(checkpoint(results, final=True))


if __name__ == "__main__":
    main()
