"""How well do edgefit's latency predictors match measured latency on this host?

Two predictors against end-to-end measurements:

* the NetAdapt-style lookup table (`edgefit.measure.predict_latency`): each distinct
  layer configuration measured once, a model predicted as the sum of its layers;
* the pure roofline estimate on the measured ``host`` device (`edgefit.hardware.estimate`).

Workloads: every zoo CNN at its canonical input (``--reduce`` lists models run at
a smaller resolution to save time), ``--networks`` random networks built from zoo
blocks (`edgefit.measure.correction.random_block_network`, drawn from a stream the
host correction never trains on), and ``--layers`` random conv / linear layer
configurations, each predicted from the table and measured again independently.

Networks are predicted with the per-host correction (calibrated at the start of
each round on the correction's own random networks) and its 90% interval; layers
alone are predicted from the table as is (a layer alone is what the table times).

Reports the share of predictions within +-10% of the measurement (median over
rounds), the share of measurements inside the predicted interval, and the host's
state (correction factors, canary, gate timeouts, retakes, second takes), and writes
``benchmarks/results/latency_prediction.md`` atomically. ``--max-minutes`` bounds
the run: no new round starts after it (the rounds done are reported).

    flock /tmp/edgefit-bench.lock .venv/bin/python benchmarks/latency_prediction.py
    .venv/bin/python benchmarks/latency_prediction.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from edgefit._io import atomic_write
from edgefit.hardware import estimate, get_device
from edgefit.measure import (
    LatencyTable,
    SpeedGate,
    behind_gate,
    default_timer,
    faster,
    predict_latency,
    time_passes,
    wait_until_quiet,
)
from edgefit.measure.correction import random_block_network
from edgefit.measure.drift import check_drift
from edgefit.measure.features import sklearn_available
from edgefit.measure.latency import UNCONTENDED_QUANTILE, nearest_rank
from edgefit.measure.lut import feature_correction, host_correction
from edgefit.metrics import UncountedOpsWarning
from edgefit.metrics import profile as run_profile
from edgefit.zoo import create, get_spec

CNNS = (
    "lenet5",
    "alexnet",
    "vgg16",
    "squeezenet1_0",
    "googlenet",
    "resnet50",
    "resnext50_32x4d",
    "densenet121",
    "mobilenet_v1",
    "mobilenet_v2",
    "shufflenet_v1",
)
RESULTS = Path(__file__).resolve().parent / "results" / "latency_prediction.md"


def random_layer(rng: random.Random):
    """A random conv (plain, strided, depthwise or grouped) or linear layer and its input shape."""
    if rng.random() < 0.25:
        fin, fout = (
            rng.choice([64, 128, 256, 512, 1024, 2048]),
            rng.choice([10, 64, 256, 1000, 1024, 4096]),
        )
        batch = rng.choice([1, 1, 4, 16])
        return nn.Linear(fin, fout), (batch, fin), f"Linear({fin}->{fout}) batch {batch}"
    cin = rng.choice([16, 24, 32, 64, 96, 128, 256])
    hw = rng.choice([7, 14, 28, 56])
    k = rng.choice([1, 3, 3, 5])
    stride = rng.choice([1, 1, 2])
    kind = rng.choice(["plain", "plain", "depthwise", "grouped"])
    if kind == "depthwise":
        cout, groups = cin, cin
    elif kind == "grouped":
        groups = rng.choice([2, 4, 8])
        cout = cin * rng.choice([1, 2])
    else:
        cout, groups = rng.choice([16, 32, 64, 128, 256]), 1
    conv = nn.Conv2d(
        cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=rng.random() < 0.5
    )
    return conv, (1, cin, hw, hw), f"Conv2d({cin}->{cout}, k{k}, s{stride}, g{groups}) {hw}x{hw}"


def random_networks(count: int, seed: int = 0):
    """``count`` random zoo-block networks, half timed hot and half rotated: (model, shape, label)."""
    rng = random.Random(f"latency-benchmark-{seed}")
    return [random_block_network(rng, "hot" if i % 2 == 0 else "rotated") for i in range(count)]


def within(pred: float, meas: float, tol: float = 0.10) -> bool:
    return abs(pred - meas) <= tol * meas


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--layers", type=int, default=100, help="random layer configurations")
    ap.add_argument("--networks", type=int, default=20, help="random zoo-block networks")
    ap.add_argument("--runs", type=int, default=18, help="end-to-end runs per model (median)")
    ap.add_argument(
        "--block-ms",
        type=float,
        default=10.0,
        help="an end-to-end block runs back to back for at least this long (and >= runs/6 passes)",
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="rounds: every workload predicted and measured again"
    )
    ap.add_argument(
        "--table-per-round",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="build a fresh table and correction every round (default: one per run, as a user "
        "builds it once; later rounds predict from it and measure every workload again)",
    )
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=20.0,
        help="start no round that would end past this (judged by the longest round so far)",
    )
    ap.add_argument(
        "--reduce", default="", help="comma-separated models to run at 112x112 instead of 224x224"
    )
    ap.add_argument("--models", default=",".join(CNNS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: robust to other jobs on a shared machine; 0: torch default)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.3,
        help="with --no-speed-gate: wait up to this many seconds for idle CPUs (0: off)",
    )
    ap.add_argument(
        "--speed-gate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time table entries and end-to-end runs only while a reference kernel runs at full "
        "speed (edgefit.measure.SpeedGate): co-tenants of a VM slow the core down unseen",
    )
    ap.add_argument(
        "--speed-wait", type=float, default=1.0, help="longest wait for full speed, seconds"
    )
    ap.add_argument(
        "--gate-budget",
        type=float,
        default=45.0,
        help="seconds the speed gate may wait in all, per round (then it measures at once)",
    )
    ap.add_argument(
        "--drift-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="at each round's start re-measure the table's reference layers and rescale the "
        "table if the host drifted (edgefit.measure.drift)",
    )
    ap.add_argument(
        "--second-take-after",
        type=float,
        default=60.0,
        help="time a table entry measured once again when a lookup finds it at least this many "
        "seconds old and keep the faster take (so round 1 confirms every entry round 0 made; "
        "0: off)",
    )
    ap.add_argument(
        "--max-takes",
        type=int,
        default=3,
        help="takes a table entry gets at most, each on a lookup at least --second-take-after "
        "seconds times the takes so far after its first (the fastest kept)",
    )
    ap.add_argument(
        "--build-first",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="look every workload up once after calibration, before the first round predicts "
        "(the table built first, as a user builds it)",
    )
    ap.add_argument(
        "--correction-model",
        choices=("factor", "features"),
        default="factor",
        help="correct networks with the per-regime factor (the library's default) or the feature "
        "model (edgefit.measure.features); the other one is scored beside it",
    )
    ap.add_argument(
        "--calibration-networks",
        type=int,
        default=40,
        help="random networks the feature correction is fitted on",
    )
    ap.add_argument(
        "--calibration-minutes",
        type=float,
        default=5.0,
        help="start no calibration network after this (at least 8 are measured)",
    )
    ap.add_argument("--quick", action="store_true", help="3 models, 4 networks, 20 layers, 1 round")
    ap.add_argument("--output", default=str(RESULTS))
    ap.add_argument(
        "--dump", default="", help="also write the raw per-round figures as JSON to this file"
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.layers, args.networks, args.runs, args.rounds = 20, 4, 6, 1
        args.calibration_networks = 10
        args.models = "lenet5,alexnet,mobilenet_v2"
    return args


class Bench:
    """The run's state: workloads, per-round predictions and measurements, host-state counters."""

    def __init__(self, args, clock):
        self.args, self.clock = args, clock
        self.block = max(1, -(-args.runs // (2 * args.rounds)))
        self.counts = {"blocks": 0, "blocks_busy": 0, "retaken": 0, "entries": 0, "timeouts": 0}
        self.rounds: list[dict] = []  # host state per round
        self.deadline = time.time() + args.max_minutes * 60  # hard stop, even inside a round
        self.cut = 0  # workloads not reached before the deadline

    def out_of_time(self) -> bool:
        if time.time() > self.deadline:
            self.cut += 1
            return True
        return False

    def make_gate(self):
        a = self.args
        if a.speed_gate:
            return SpeedGate(max_wait_s=a.speed_wait, quiet=False, max_total_wait_s=a.gate_budget)

        def gate():
            return True if a.quiet_wait <= 0 else wait_until_quiet(max_wait_s=a.quiet_wait)

        return gate

    def e2e_block(self, gate, model, x):
        """One gated block of back-to-back passes (`time_passes`): (cpu samples, wall samples)."""

        def measure():
            w = []
            c = time_passes(
                lambda: model(x),
                timer=self.clock,
                block_s=self.args.block_ms * 1e-3,
                min_runs=self.block,
                wall=w,
            )
            return c, w

        def wait():
            self.counts["blocks"] += 1
            if gate() is False:
                self.counts["blocks_busy"] += 1

        def pick(kept, new):  # the faster take (other jobs only add time)
            return new if faster(kept[0], new[0]) is new[0] else kept

        with torch.inference_mode():
            (c, w), again = behind_gate(measure, wait, getattr(gate, "steady", None), pick=pick)
        self.counts["retaken"] += again
        return c, w

    def close_table(self, table):
        self.counts["entries"] += table.gated
        self.counts["timeouts"] += table.gate_timeouts
        self.counts["retaken"] += table.retaken


def build_workloads(args, host):
    models = [m for m in args.models.split(",") if m]
    reduced = {m for m in args.reduce.split(",") if m}
    built = []
    for name in models:
        shape = get_spec(name).input_shape
        if name in reduced:
            shape = (*shape[:2], 112, 112)
        model = create(name).eval()
        built.append(("zoo CNNs", name, shape, model))
    for i, (model, shape, label) in enumerate(random_networks(args.networks, args.seed)):
        built.append(("random networks", f"net{i:02d} {label}", shape, model))
    out = []
    for group, name, shape, model in built:
        prof = run_profile(model, input_shape=shape, name=name)
        out.append(
            {
                "group": group,
                "name": name,
                "shape": shape,
                "model": model,
                "profile": prof,
                "roof": estimate(prof, host).totals.seconds,
                "x": torch.randn(*shape),
                "cpu": [],  # per round: list of samples
                "wall": [],
                "preds": [],  # per round: Prediction
                "other": [],  # per round: (prediction, low, high) with the other correction model
                "reduced": name in reduced,
            }
        )
    layers = []
    rng = random.Random(args.seed)
    for _ in range(args.layers):
        layer, shape, label = random_layer(rng)
        layer.eval()
        prof = run_profile(layer, input_shape=shape, name=label)
        layers.append(
            {
                "label": label,
                "layer": layer,
                "shape": shape,
                "profile": prof,
                "roof": estimate(prof, host).totals.seconds,
                "preds": [],
                "meas": [],
            }
        )
    return out, layers


def run_round(bench, r, tmp, nets, layers):
    """One round: the table (fresh with --table-per-round), the host correction, every network, then every layer."""
    gate = bench.make_gate()
    clock = bench.clock
    t0 = time.time()
    path = Path(tmp) / f"lut-{r if bench.args.table_per_round else 0}.sqlite"
    table = LatencyTable(
        path, timer=clock, gate=gate, second_take_after_s=bench.args.second_take_after or None,
        max_takes=bench.args.max_takes,
    )
    state = {"round": r, "load": os.getloadavg()[0], "lookup_s": 0.0, "build_s": 0.0}
    if bench.args.drift_check:  # the session's start: has the host drifted since the table was built?
        state["drift"] = check_drift(table)
    state["drift_s"] = time.time() - t0
    if sklearn_available():  # the 40 varied networks: the feature model, and the factors beside
        state["features"] = feature_correction(
            table,
            calibrate=True,
            count=bench.args.calibration_networks,
            max_seconds=bench.args.calibration_minutes * 60,
        )
    for regime in ("hot", "rotated"):  # the per-regime factors (fitted beside the feature model)
        state[regime] = host_correction(table, regime, calibrate=True)
    state["calibration_s"] = time.time() - t0
    if bench.args.build_first and (r == 0 or bench.args.table_per_round):
        state["build_s"] = build_table(bench, table, nets, layers)
        state["lookup_s"] += state["build_s"]
    early = first_takes(bench, gate, table, nets, layers)
    for w in nets:
        if bench.out_of_time():
            continue
        c1, w1 = bench.e2e_block(gate, w["model"], w["x"])
        t1 = time.time()
        pred = predict_latency(  # the round's correction, not recalibrated mid-round
            w["model"], w["profile"], table=table, measure=False, timer=clock, correction=None,
            correction_model=bench.args.correction_model,
        )
        state["lookup_s"] += time.time() - t1
        c2, w2 = bench.e2e_block(gate, w["model"], w["x"])
        c0, w0 = early.get(id(w), ([], []))
        w["cpu"].append(c0 + c1 + c2)
        w["wall"].extend(w0 + w1 + w2)
        w["preds"].append(pred)
        other = other_correction(bench.args.correction_model, state, pred)  # scored beside
        w["other"].append((pred.table_seconds * other.factor, *other.interval(pred.table_seconds * other.factor)))
        print(
            f"round {r} {w['name'][:30]:30s} lut {pred.seconds * 1e3:8.2f} ms "
            f"[{pred.low_s * 1e3:.2f}, {pred.high_s * 1e3:.2f}]  "
            f"measured {uncontended(c1 + c2) * 1e3:8.2f} ms",
            flush=True,
        )
    for i, lay in enumerate(layers):
        if bench.out_of_time():
            continue
        t1 = time.time()
        pred = predict_latency(
            lay["layer"], lay["profile"], table=table, measure=False, timer=clock, correction=False
        )
        state["lookup_s"] += time.time() - t1
        meas = layer_truth(bench, gate, table, lay)
        if id(lay) in early:  # the faster of two takes minutes apart, as the table's entries
            meas = min(meas, early[id(lay)])
        lay["preds"].append(pred.seconds)
        lay["meas"].append(meas)
        if i % 25 == 0:
            print(f"round {r} layer {i:3d} {lay['label']:40s}", flush=True)
    bench.close_table(table)
    state["second_takes"] = table.second_takes
    state["second_take_ratios"] = list(table.second_take_ratios)
    state["seconds"] = time.time() - t0
    state["canary_best_s"] = getattr(gate, "best", None)
    state["gate_waited_s"] = getattr(gate, "waited_s", None)
    bench.rounds.append(state)


def build_table(bench, table, nets, layers) -> float:
    """Every workload looked up once before any is predicted (seconds): the table is built first, as
    a user builds it before predicting, so the round's predictions can give its entries their later
    takes (`LatencyTable` ``second_take_after_s``, ``max_takes``)."""
    t0 = time.time()
    for w in [*nets, *layers]:
        if not bench.out_of_time():
            predict_latency(w["model"] if "model" in w else w["layer"], w["profile"], table=table,
                            measure=False, timer=bench.clock, correction=False)
    return time.time() - t0


def layer_truth(bench, gate, table, lay) -> float:
    """A random layer's ground truth, timed as the table times an entry (independently), behind the gate."""
    x = torch.randn(*lay["shape"])
    with torch.inference_mode():
        meas, again = behind_gate(
            lambda layer=lay["layer"], x=x: table.timed(lambda: layer(x)).p10_s,
            gate,
            getattr(gate, "steady", None),
            pick=min,
        )
    bench.counts["retaken"] += again
    return meas


def first_takes(bench, gate, table, nets, layers) -> dict:
    """The round's first take of every ground truth, minutes before the second (by ``id`` of the workload).

    A network gets one end-to-end block here besides the two around its lookups, a
    layer one measurement besides the one after the networks: other jobs only add
    time, so a ground truth is taken at two moments minutes apart, as the table's
    entries are (second takes), and a slow episode under one take does not decide it.
    """
    out = {}
    for w in nets:
        if not bench.out_of_time():
            out[id(w)] = bench.e2e_block(gate, w["model"], w["x"])
    for lay in layers:
        if not bench.out_of_time():
            out[id(lay)] = layer_truth(bench, gate, table, lay)
    return out


def next_round_s(args, bench) -> float:
    """The next round's expected seconds: the longest round so far, or, when the table is
    kept across rounds, the last round without its calibration and lookups (the table is built)."""
    if args.table_per_round:
        return max(st["seconds"] for st in bench.rounds)
    last = bench.rounds[-1]
    return last["seconds"] - last["calibration_s"] - last["lookup_s"]


def uncontended(samples) -> float:
    """The 10th percentile (nearest rank) of one round's passes: what the table predicts."""
    return nearest_rank(sorted(samples), UNCONTENDED_QUANTILE)


OTHER = {"factor": "feature model", "features": "per-regime factor"}  # scored beside the headline's


def other_correction(model: str, state: dict, pred):
    """The correction the headline does not use, for ``pred``'s network: the feature model's
    (its factor for these features) beside the factor, the regime's factor beside the feature model."""
    fc = state.get("features")
    if model == "factor" and fc is not None and pred.features is not None:
        return fc.correction_for(pred.features, pred.regime)
    return state[pred.regime]


def within_interval(pred, meas) -> bool:
    return pred.low_s <= meas <= pred.high_s


def summarize(nets, layers, rounds_done):
    """Per workload: (group, label, shape, prediction, interval, measured, wall, roofline, per-round errors, notes)."""
    rows = []
    for w in nets:
        preds = w["preds"][:rounds_done]
        if not preds:
            continue  # not reached before the time bound
        meds = [uncontended(c) for c in w["cpu"][:rounds_done]]
        typical = [statistics.median(c) for c in w["cpu"][:rounds_done]]
        pred_s = statistics.median(p.seconds for p in preds)
        low = statistics.median(p.low_s for p in preds)
        high = statistics.median(p.high_s for p in preds)
        raw = statistics.median(p.table_seconds for p in preds)
        meas = statistics.median(meds)
        fac = w["other"][:rounds_done]
        rows.append(
            {
                "group": w["group"],
                "label": w["name"],
                "shape": w["shape"],
                "pred": pred_s,
                "raw": raw,
                "low": low,
                "high": high,
                "fpred": statistics.median(f[0] for f in fac),
                "flow": statistics.median(f[1] for f in fac),
                "fhigh": statistics.median(f[2] for f in fac),
                "meas": meas,
                "typical": statistics.median(typical),
                "wall": statistics.median(w["wall"]),
                "roof": w["roof"],
                "per_round": [p.seconds / m - 1 for p, m in zip(preds, meds, strict=True)],
                "inside_rounds": sum(
                    within_interval(p, m) for p, m in zip(preds, meds, strict=True)
                ),
                "unpredicted": len(preds[0].unpredicted),
                "new": preds[0].measured_configs,
                "regime": preds[0].regime,
                "reduced": w["reduced"],
                "meas_rounds": meds,
            }
        )
    lrows = []
    for lay in layers:
        p, m = lay["preds"][:rounds_done], lay["meas"][:rounds_done]
        if not p:
            continue
        lrows.append(
            {
                "group": "random conv/linear layers",
                "label": lay["label"],
                "pred": statistics.median(p),
                "raw": statistics.median(p),
                "fpred": statistics.median(p),
                "meas": statistics.median(m),
                "roof": lay["roof"],
                "per": list(zip(p, m, strict=True)),
                "meas_rounds": list(m),
            }
        )
    return rows, lrows


def inside_share(rows, lo, hi):
    """Share of rows whose measurement lies in [row[lo], row[hi]]."""
    if not rows:
        return float("nan")
    return sum(r[lo] <= r["meas"] <= r[hi] for r in rows) / len(rows)


def share(pairs):
    """Share of (prediction, measurement) pairs within +-10%."""
    return sum(within(p, m) for p, m in pairs) / len(pairs) if pairs else float("nan")


def med_abs_err(pairs):
    return statistics.median(abs(p - m) / m for p, m in pairs) if pairs else float("nan")


def repeatable(rows) -> int:
    """How many ``rows`` were measured within +-10% of their median over rounds in every round."""
    return sum(all(within(m, r["meas"]) for m in r["meas_rounds"]) for r in rows)


def repeatability_line(rows, lrows, rounds_done: int) -> str:
    """How well the ground truth itself repeats across rounds: a ceiling on any predictor's share."""
    if rounds_done < 2:
        return "Ground truth across rounds: one round only, so its repeatability is not known."
    return (
        f"Ground truth across rounds: {repeatable(rows)} of {len(rows)} networks and {repeatable(lrows)} "
        f"of {len(lrows)} random layers measured within +-10% of their median over rounds in every "
        "round. A workload whose own measurement moves beyond +-10% between rounds can miss the "
        "headline whatever predicts it: this is how much of the miss the host's noise explains."
    )


def pct(x):
    return "n/a" if x != x else f"{x:.0%}"


def report(args, bench, host, rows, lrows, rounds_done, elapsed):
    groups = ["zoo CNNs", "random networks"]
    by = {g: [r for r in rows if r["group"] == g] for g in groups}
    by["random conv/linear layers"] = lrows
    allrows = rows + lrows
    c = bench.counts
    lines = [
        "# Latency prediction on the host: lookup table (with its per-host correction) vs roofline",
        "",
        f"Generated by `benchmarks/latency_prediction.py` in {elapsed:.0f} s ({elapsed / 60:.1f} min; "
        f"bound: no round starts that would end past {args.max_minutes:g} min; {rounds_done} of {args.rounds} rounds done; {bench.cut} workload-rounds not reached "
        "before the bound) "
        f"on {platform.machine()} with {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, Python {sys.version.split()[0]}. **The host was shared** with "
        "other engineers' jobs during the run. Host calibration: "
        + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in host.peak_ops_per_s.items())
        + f", {host.bandwidth_bytes_per_s / 1e9:.1f} GB/s streaming bandwidth.",
        "",
        "**Latency here is the uncontended latency: the 10th percentile of short repeats.** On a "
        "shared host other jobs only ever add time, so a median over a few repeats drifts with the "
        "load while a low quantile of enough short repeats reproduces (why timeit reports the best "
        "of several runs). Every number is measured that way: a table entry is the 10th percentile "
        "of its repeats (hot layers: 10 loops of >= 1 ms; rotated layers: single calls on cold "
        "weight copies), a network (calibration and ground truth alike) is the 10th percentile of "
        "blocks of back-to-back single passes (`edgefit.measure.time_passes`), a random layer's "
        "ground truth is timed exactly as its table entry is, independently; every measurement "
        "the speed gate finds disturbed is taken again and the faster take kept. The median "
        "pass under the load of the moment is shown beside the uncontended one, and the interval's "
        "upper end is raised by the load ratio (median / 10th percentile) seen at calibration, "
        "so it spans what a user sees too.",
        "",
        (
            "Each round builds a fresh table, calibrates the host correction on its own random "
            "zoo-block networks (a stream the benchmark's networks are never drawn from), then "
            "predicts "
            if args.table_per_round
            else "The table is built once per run, as a user builds it once: the first round "
            "calibrates the host correction on its own random zoo-block networks (a stream the "
            "benchmark's networks are never drawn from) and measures every new layer "
            "configuration; every round (the first included) then predicts from that table (later "
            "rounds recalibrate only if the host's reference convolution moved 1.25x) and measures "
            "again "
        )
        + "every network (end-to-end blocks right before and after its lookups) and every random "
        "layer. "
        + (
            "Each round starts with the drift check (`edgefit.measure.drift`): ten reference "
            "layers are measured again and the table's entries rescaled by their median "
            "fresh / stored ratio when it moved beyond the noise. "
            if args.drift_check
            else "No drift check. "
        )
        + (
            f"An entry a lookup finds timed fewer than {args.max_takes} times, its first take at least "
            f"{args.second_take_after:g} s times its takes so far earlier, is timed again and the "
            "fastest take kept (`LatencyTable(second_take_after_s=..., max_takes=...)`): other jobs "
            "only add time, so the minimum of takes apart in time drops what a slow episode added "
            "to one. "
            + ("The first round looks every workload up once right after calibration, before it "
               "predicts any (the table is built first, as a user builds it), so its predictions "
               "already give the entries their second take. " if args.build_first else "")
            if args.second_take_after
            else "No second takes. "
        )
        + (
            "Networks are corrected by the per-regime factor (the median measured / table-sum ratio "
            "of the calibration networks timed in the network's regime, Student-t 90% interval from "
            "leave-one-out residuals), "
            if args.correction_model == "factor"
            else "Networks are corrected by the feature model, "
        )
        + f"fitted on up to {args.calibration_networks} random calibration networks of seven families; "
        + (
            "the feature model (`edgefit.measure.features`: ridge regression of log(measured / table "
            "sum) on the table's time shares by op kind, calls, weight and activation bytes against "
            "the cache, regime; conformal 90% interval from leave-one-out residuals) fitted on the same "
            "networks is scored beside it. "
            if args.correction_model == "factor"
            else "the per-regime factor fitted on the same networks is scored beside it. "
        )
        + "The headline is the share within +-10% of the prediction's median over rounds "
        "against the measurement's median over rounds; the interval is the median of the rounds' "
        "90% intervals. Clock: CPU time of the calling thread (1 torch thread); the wall-clock "
        "median is shown beside it. Layers alone are predicted from the table as is (a layer alone "
        "is what the table times) and carry no interval.",
        "",
        "## Share of predictions within +-10% of the measurement (median over rounds)",
        "",
        f"| workload | n | lookup table + correction | {OTHER[args.correction_model]} instead | table sum alone | roofline (host) | median abs. error | measured inside the 90% interval | inside the {OTHER[args.correction_model]}'s interval |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for g in [*groups, "random conv/linear layers"]:
        rs = by[g]
        inside = [r for r in rs if "low" in r]
        ins = inside_share(inside, "low", "high")
        lines.append(
            f"| {g} | {len(rs)} | {pct(share([(r['pred'], r['meas']) for r in rs]))} | "
            f"{pct(share([(r['fpred'], r['meas']) for r in rs]))} | "
            f"{pct(share([(r['raw'], r['meas']) for r in rs]))} | "
            f"{pct(share([(r['roof'], r['meas']) for r in rs]))} | "
            f"{med_abs_err([(r['pred'], r['meas']) for r in rs]):.1%} | {pct(ins)} | "
            f"{pct(inside_share(inside, 'flow', 'fhigh'))} |"
        )
    nets = [r for r in allrows if "low" in r]
    ins_all = inside_share(nets, "low", "high")
    rnd = sum(r["inside_rounds"] for r in rows) / max(1, sum(len(r["per_round"]) for r in rows))
    typ = sum(r["low"] <= r["typical"] <= r["high"] for r in nets) / max(1, len(nets))
    lines += [
        f"| **all** | {len(allrows)} | **{pct(share([(r['pred'], r['meas']) for r in allrows]))}** | "
        f"{pct(share([(r['fpred'], r['meas']) for r in allrows]))} | "
        f"{pct(share([(r['raw'], r['meas']) for r in allrows]))} | "
        f"{pct(share([(r['roof'], r['meas']) for r in allrows]))} | "
        f"{med_abs_err([(r['pred'], r['meas']) for r in allrows]):.1%} | {pct(ins_all)} (networks) | "
        f"{pct(inside_share(nets, 'flow', 'fhigh'))} |",
        "",
        f"Per round (each round's prediction and interval against that round's measured median), "
        f"{pct(rnd)} of the network measurements fell inside their interval; {pct(typ)} of the "
        "networks' median passes under load (what a user sees at the moment) fell inside it.",
        "",
        "## Host state",
        "",
        (
            "Speed gate: off."
            if not args.speed_gate
            else f"Speed gate: before each table entry, end-to-end block and layer measurement it waited up to "
            f"{args.speed_wait:g} s for a reference convolution to run within 12% of its best, and at most "
            f"{args.gate_budget:g} s in all per round; once that was spent it measured at once "
            "(a host that is never quiet still finishes in bounded time, and the slow measurements "
            f"show up as spread and in the interval). {c['entries'] - c['timeouts']} of {c['entries']} "
            f"gated table measurements and {c['blocks'] - c['blocks_busy']} of {c['blocks']} end-to-end "
            f"block starts began at full speed; {c['retaken']} measurements were taken again because the "
            "host slowed down under them."
        ),
        "",
        repeatability_line(rows, lrows, rounds_done),
        "",
        "| round | seconds | load average (1 min) at start | drift check: hot entries (reference layers now / entry, median and range -> scale) | drift check: rotated entries | drift check s | calibration s | feature model: networks, held-out residuals (min..max), ridge alpha | canary best (us) | gate waited (s) | hot factor | hot residuals (min..max) | hot load ratio | rotated factor | rotated residuals (min..max) | rotated load ratio |",
        "| ---: | ---: | ---: | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |",
    ]
    for st in bench.rounds:
        h, ro = st["hot"], st["rotated"]
        cb = st["canary_best_s"]
        lines.append(
            f"| {st['round']} | {st['seconds']:.0f} | {st['load']:.1f} | {drift_cells(st)} | "
            f"{st['drift_s']:.0f} | {st['calibration_s'] - st['drift_s']:.0f} | {feature_cell(st)} | "
            f"{cb * 1e6:.0f} | {st['gate_waited_s'] or 0:.0f} | "
            if cb is not None
            else f"| {st['round']} | {st['seconds']:.0f} | {st['load']:.1f} | {drift_cells(st)} | "
            f"{st['drift_s']:.0f} | {st['calibration_s'] - st['drift_s']:.0f} | {feature_cell(st)} | n/a | n/a | "
        )
        lines[-1] += (
            f"{h.factor:.3f} | {min(h.residuals):+.1%}..{max(h.residuals):+.1%} | {h.load_ratio:.2f} | "
            f"{ro.factor:.3f} | {min(ro.residuals):+.1%}..{max(ro.residuals):+.1%} | {ro.load_ratio:.2f} |"
        )
    lines += ["", second_take_line(args, bench.rounds)]
    lines += [
        "",
        "## Networks",
        "",
        "| network | input | regime | prediction (ms) | 90% interval (ms) | table sum (ms) | roofline (ms) | measured, uncontended (ms) | median pass under load (ms) | wall clock (ms) | error | error per round | new entries | unpredicted rows |",
        "| --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {'x'.join(map(str, r['shape']))}{' (reduced)' if r['reduced'] else ''} | "
            f"{r['regime']} | {r['pred'] * 1e3:.2f} | {r['low'] * 1e3:.2f}-{r['high'] * 1e3:.2f} | "
            f"{r['raw'] * 1e3:.2f} | {r['roof'] * 1e3:.2f} | {r['meas'] * 1e3:.2f} | {r['typical'] * 1e3:.2f} | {r['wall'] * 1e3:.2f} | "
            f"{(r['pred'] - r['meas']) / r['meas']:+.1%} | "
            + " ".join(f"{e:+.0%}" for e in r["per_round"])
            + f" | {r['new']} | {r['unpredicted']} |"
        )
    misses = [r for r in lrows if not within(r["pred"], r["meas"])]
    lines += [
        "",
        f"## Random layers outside +-10% ({len(misses)} of {len(lrows)})",
        "",
        "| layer | lookup table (us) | roofline (us) | measured (us) | error | table / measured per round (us) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in misses:
        per = ", ".join(f"{p * 1e6:.1f} / {m * 1e6:.1f}" for p, m in r["per"])
        lines.append(
            f"| {r['label']} | {r['pred'] * 1e6:.1f} | {r['roof'] * 1e6:.1f} | {r['meas'] * 1e6:.1f} | "
            f"{(r['pred'] - r['meas']) / r['meas']:+.1%} | {per} |"
        )
    lines.append("")
    return lines


def drift_cells(st) -> str:
    """The round's drift checks, hot and rotated, as two table cells."""
    cells = []
    for method in ("hot", "rotated"):
        d = next((d for d in st.get("drift", ()) if d.method == method), None)
        if d is None:
            cells.append("off")
        elif not d.ratios:
            cells.append("baseline stored")
        else:
            cells.append(
                f"{d.median:.2f} ({min(d.ratios):.2f}..{max(d.ratios):.2f}) -> "
                + (f"held (x{d.held:.3f} not yet confirmed)" if d.held != 1.0
                   else f"faster: {d.rebased} references re-stored, table kept" if d.rebased
                   else "kept" if d.scale == 1.0 else f"x{d.scale:.3f}")
            )
    return " | ".join(cells)


def second_take_line(args, rounds) -> str:
    """How many table entries each round timed a second time, and second / first take."""
    if not args.second_take_after:
        return "Second takes: off (every entry keeps its first take)."
    parts = []
    for st in rounds:
        ratios = st["second_take_ratios"]
        part = f"round {st['round']}: {st['second_takes']}"
        if ratios:
            part += (
                f" (new / kept take: median {statistics.median(ratios):.2f}, "
                f"{min(ratios):.2f}..{max(ratios):.2f}; "
                f"the new take faster, so kept, in {sum(r < 1 for r in ratios)})"
            )
        parts.append(part)
    return (
        f"Later takes: a lookup that found an entry due for another take (at most {args.max_takes}; "
        f"take k + 1 at least k x {args.second_take_after:g} s after the first) timed it again (behind "
        "the gate) and kept the faster (contention only adds time). " + "; ".join(parts) + "."
    )


def feature_cell(st) -> str:
    fc = st.get("features")
    if fc is None:
        return "off"
    res = fc.residuals
    return f"{len(fc.networks)}, {min(res):+.1%}..{max(res):+.1%}, {fc.coefficients()['alpha']:g}"


def raw_figures(bench, nets, layers) -> dict:
    """Every round's corrections, predictions and measurements, for analysis."""
    return {
        "rounds": [
            {"round": st["round"], "load": st["load"], "seconds": st["seconds"],
             "hot": json.loads(st["hot"].to_json()), "rotated": json.loads(st["rotated"].to_json()),
             "drift": [d.to_dict() for d in st.get("drift", ())],
             "second_takes": st["second_takes"], "second_take_ratios": st["second_take_ratios"],
             "features": json.loads(st["features"].to_json()) if st.get("features") else None,
             "coefficients": st["features"].coefficients() if st.get("features") else None}
            for st in bench.rounds
        ],
        "networks": [
            {"group": w["group"], "name": w["name"], "shape": list(w["shape"]),
             "table_s": [p.table_seconds for p in w["preds"]], "pred_s": [p.seconds for p in w["preds"]],
             "regime": [p.regime for p in w["preds"]],
             "features": [p.features for p in w["preds"]],
             "interval_s": [[p.low_s, p.high_s] for p in w["preds"]],
             "other_model": OTHER[bench.args.correction_model],
             "other_pred_s": [f[0] for f in w["other"]],
             "uncontended_s": [uncontended(c) for c in w["cpu"]],
             "median_s": [statistics.median(c) for c in w["cpu"]]}
            for w in nets
        ],
        "layers": [{"label": lay["label"], "pred_s": lay["preds"], "meas_s": lay["meas"]} for lay in layers],
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UncountedOpsWarning)
    torch.manual_seed(args.seed)
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EDGEFIT_CACHE_DIR"] = tmp  # a fresh table and host calibration: nothing stale
        bench = Bench(args, default_timer())
        bench.make_gate()()  # the host calibration (the roofline's peak and bandwidth) at full speed
        host = get_device("host")
        nets, layers = build_workloads(args, host)
        rounds_done = 0
        for r in range(args.rounds):
            if r and time.time() - t_start + next_round_s(args, bench) > args.max_minutes * 60:
                break  # another round would end past the bound
            run_round(bench, r, tmp, nets, layers)
            rounds_done += 1
    elapsed = time.time() - t_start
    rows, lrows = summarize(nets, layers, rounds_done)
    lines = report(args, bench, host, rows, lrows, rounds_done, elapsed)
    atomic_write(args.output, "\n".join(lines))
    if args.dump:
        atomic_write(args.dump, json.dumps(raw_figures(bench, nets, layers), indent=1))
    print("\n".join(lines[:20]))
    print(f"wrote {args.output} in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
