"""`edgefit devices`, `roofline`, `bench` and `predict`: hardware models and real measurement."""

from __future__ import annotations

import json

import typer

from edgefit.cli.main import app
from edgefit.errors import ConfigError
from edgefit.report import estimate_summary, estimate_table
from edgefit.units import human_seconds


def _parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"{what} {text!r}: expected integers separated by commas, e.g. 1,2,4,8"
        ) from None
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"{what} {text!r}: expected positive integers, e.g. 1,2,4,8")
    return values


def _profile(
    model: str, input_shape: str | None, bits: int | None, activation_bits: int | None, option: list[str]
):
    import warnings

    from edgefit.cli.profile_cmd import load_model, widths_of
    from edgefit.metrics import UncountedOpsWarning
    from edgefit.metrics import profile as run_profile

    resolved, shapes = load_model(model, option, input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)
        prof = run_profile(
            resolved.model,
            input_shape=list(shapes),
            input_dtype=resolved.input_dtype or "float32",
            name=resolved.name,
            **widths_of(resolved.model, bits, activation_bits),
        )
    return resolved, shapes, prof


@app.command()
def devices(
    as_json: bool = typer.Option(
        False, "--json", help="print every number with its source as JSON"
    ),
    measure_host: bool = typer.Option(
        False, "--measure-host", help="also measure (or load) the host now"
    ),
) -> None:
    """List the built-in devices: peak compute per precision, bandwidth, memory, power."""
    import edgefit.measure  # noqa: F401 - registers the measured 'host' device
    from edgefit.hardware import get_device, list_devices
    from edgefit.report.latency import devices_table

    names = [n for n in list_devices() if n != "host" or measure_host]
    devs = [get_device(n) for n in names]
    if as_json:
        typer.echo(json.dumps([d.to_dict() for d in devs], indent=2))
        return
    typer.echo(devices_table(devs, host_placeholder=not measure_host))
    typer.echo("\nEvery number has a source: edgefit devices --json, or docs/hardware.md.")


@app.command()
def roofline(
    model: str = typer.Argument(
        ..., help="zoo:NAME, path/to/file.py:callable, package.module:callable or a quantized .efz"
    ),
    device: str = typer.Option("host", "--device", "-d", help="device name or YAML file"),
    precision: str = typer.Option(
        None, "--precision", "-p",
        help="run every layer at fp32, fp16, bf16, int16, int8, int4 or binary (default: each layer at its own widths)",
    ),
    input_shape: str = typer.Option(None, "--input-shape", "-i", help="e.g. 1,3,224,224"),
    bits: int = typer.Option(None, "--bits", "-b", help="weight bit width (default: a quantized .efz's real widths, else 32)"),
    activation_bits: int = typer.Option(
        None, "--activation-bits", help="activation bit width (default: --bits)"
    ),
    plot: str = typer.Option(
        None, "--plot", help="write the roofline with every layer to FILE.png"
    ),
    bars: str = typer.Option(
        None, "--bars", help="write per-layer time and energy bars to FILE.png"
    ),
    top: int = typer.Option(
        0, "--top", help="show only the N slowest layers in the table (0: all)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the estimate as JSON"),
    option: list[str] = typer.Option([], "--option", help="builder option KEY=VALUE (repeatable)"),
) -> None:
    """Per-layer roofline, latency and energy of MODEL on a device, and whether it fits."""
    import edgefit.measure  # noqa: F401 - registers the measured 'host' device
    from edgefit.hardware import estimate, get_device

    if top < 0:
        raise ConfigError(f"--top must be >= 0 (0: all layers), got {top}")
    _, _, prof = _profile(model, input_shape, bits, activation_bits, option)
    est = estimate(prof, get_device(device), precision=precision)
    if plot or bars:
        from edgefit.report.plots import plot_layer_bars, plot_roofline

        if plot:
            plot_roofline(est, plot)
        if bars:
            plot_layer_bars(est, bars)
    if as_json:
        typer.echo(json.dumps(est.to_dict(), indent=2, default=str))
        return
    typer.echo(estimate_table(est, top=top or None))
    typer.echo("")
    for line in estimate_summary(est):
        typer.echo(line)
    for path in (plot, bars):
        if path:
            typer.echo(f"wrote {path}")


@app.command()
def bench(
    model: str = typer.Argument(
        ..., help="zoo:NAME, path/to/file.py:callable or package.module:callable"
    ),
    runs: int = typer.Option(30, "--runs", "-n", help="timed runs (median and p90 reported)"),
    warmup: int = typer.Option(5, "--warmup", help="untimed runs first"),
    batch_sizes: str = typer.Option(
        "1,2,4,8", "--batch-sizes", help="throughput sweep, e.g. 1,2,4,8,16"
    ),
    sweep_runs: int = typer.Option(5, "--sweep-runs", help="timed runs per batch size"),
    input_shape: str = typer.Option(None, "--input-shape", "-i", help="e.g. 1,3,224,224"),
    threads: int = typer.Option(0, "--threads", help="torch threads (0: torch's default)"),
    as_json: bool = typer.Option(False, "--json", help="print results as JSON"),
    option: list[str] = typer.Option([], "--option", help="builder option KEY=VALUE (repeatable)"),
    runtime: str = typer.Option(
        "torch", "--runtime", help="torch; onnxruntime or torch-int8: fp32 and int8 on that runtime side by side"
    ),
) -> None:
    """Measure MODEL's latency (median, p90) and throughput over batch sizes on this host, beside the estimate."""
    import torch
    from rich.progress import Progress

    import edgefit.measure  # noqa: F401 - registers the measured 'host' device
    from edgefit.measure.compare import bench_model
    from edgefit.report import bench_lines

    if runs < 1 or warmup < 0 or sweep_runs < 1:
        raise ConfigError("--runs and --sweep-runs must be >= 1 and --warmup >= 0")
    batches = _parse_ints(batch_sizes, "--batch-sizes")
    if runtime != "torch":
        from edgefit.cli.quantize_cmd import bench_runtime

        return bench_runtime(model, runtime, runs, warmup, batches, input_shape, threads, as_json, option)
    if threads:
        torch.set_num_threads(threads)
    resolved, shapes, prof = _profile(model, input_shape, 32, None, option)
    with Progress(transient=True, disable=as_json) as progress:
        task = progress.add_task("latency", total=runs)
        task2 = progress.add_task("batch sweep", total=len(batches) * sweep_runs if len(shapes) == 1 else 0)
        result = bench_model(
            resolved.model, prof, shapes, input_dtype=resolved.input_dtype or "float32", runs=runs,
            warmup=warmup, batch_sizes=batches, sweep_runs=sweep_runs,
            on_step=lambda: progress.advance(task), on_sweep_step=lambda: progress.advance(task2),
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    for line in bench_lines(result):
        typer.echo(line)


@app.command()
def predict(
    model: str = typer.Argument(
        ..., help="zoo:NAME, path/to/file.py:callable or package.module:callable"
    ),
    device: str = typer.Option(
        "host", "--device", "-d", help="only 'host': the lookup table is measured here"
    ),
    runs: int = typer.Option(20, "--runs", "-n", help="timed end-to-end runs for the comparison"),
    input_shape: str = typer.Option(None, "--input-shape", "-i", help="e.g. 1,3,224,224"),
    threads: int = typer.Option(0, "--threads", help="torch threads (0: torch's default)"),
    layers: bool = typer.Option(False, "--layers", help="also print each layer's predicted time"),
    speed_gate: bool = typer.Option(
        True,
        "--speed-gate/--no-speed-gate",
        help="measure only while a reference kernel runs at full speed (a shared or virtual "
        "machine's co-tenants slow the core unseen); waits at most 1 s each time",
    ),
    as_json: bool = typer.Option(False, "--json", help="print results as JSON"),
    option: list[str] = typer.Option([], "--option", help="builder option KEY=VALUE (repeatable)"),
    calibrate: bool = typer.Option(
        True,
        "--calibrate/--no-calibrate",
        help="correct the table's sum per host (calibrated once on random zoo-block networks, "
        "again when the host's speed changed) and give an interval; --no-calibrate uses a "
        "stored correction only",
    ),
    confidence: float = typer.Option(0.9, "--confidence", help="the interval's confidence"),
    correction_model: str = typer.Option(
        "factor",
        "--correction-model",
        help="factor: one measured / table-sum ratio per timing regime (default, the more "
        "accurate in the benchmark); features: a regression on the network's features "
        "(nn-Meter style, needs scikit-learn)",
    ),
    budget_ms: float = typer.Option(
        None, "--budget-ms", help="also say whether this budget is met with --confidence"
    ),
    gate_budget_s: float = typer.Option(
        30.0,
        "--gate-budget",
        help="seconds the speed gate may wait in all (then it measures at once): bounds the "
        "time a table build takes on a host that is never quiet",
    ),
    second_take_after: float = typer.Option(
        300.0,
        "--second-take-after",
        help="time a table entry measured once again when it is at least this many seconds old "
        "and keep the faster take (a shared host only adds time); 0: never",
    ),
    max_takes: int = typer.Option(
        2,
        "--max-takes",
        help="takes a table entry gets at most: take k + 1 on a lookup at least k x "
        "--second-take-after after the first, the fastest kept",
    ),
    drift_check: bool = typer.Option(
        True,
        "--drift-check/--no-drift-check",
        help="re-time the table's reference layers first and rescale its entries if the host's "
        "speed drifted since they were stored",
    ),
) -> None:
    """Predict MODEL's latency from a per-layer lookup table (NetAdapt) and compare with a measurement.

    Latency is the uncontended latency (the 10th percentile of short repeats: other jobs only add time); the median under the current load is printed beside it.
    """
    import torch

    import edgefit.measure  # noqa: F401 - registers the measured 'host' device
    from edgefit.hardware import estimate, get_device
    from edgefit.measure import LatencyTable, SpeedGate, predict_latency
    from edgefit.report.latency import host_state_lines, layer_lines, prediction_lines

    if device.strip().lower() != "host":
        raise ConfigError(
            f"predict measures layers on this machine; use --device host (got {device!r})"
        )
    from edgefit.measure.correction import check_correction_model

    check_correction_model(correction_model)  # before anything is built or timed
    if threads:
        torch.set_num_threads(threads)
    resolved, shapes, prof = _profile(model, input_shape, 32, None, option)
    if any(p.is_meta for p in resolved.model.parameters()):
        raise ConfigError(
            f"{model}: the model has no real weights (built on meta); cannot measure it"
        )
    gate = SpeedGate(quiet=False, max_wait_s=1.0, max_total_wait_s=gate_budget_s)
    table = LatencyTable(
        gate=gate if speed_gate else None,
        drift_check=drift_check,
        second_take_after_s=second_take_after or None,
        max_takes=max_takes,
    )
    pred = predict_latency(
        resolved.model,
        prof,
        input_dtype=resolved.input_dtype or "float32",
        table=table,
        runs=runs,
        correction=True if calibrate else None,
        confidence=confidence,
        correction_model=correction_model,
    )
    budget_s = budget_ms * 1e-3 if budget_ms is not None else None
    est = estimate(prof, get_device("host"))
    if as_json:
        d = pred.to_dict()
        d["roofline_s"] = est.totals.seconds
        d["budget_met"] = pred.budget_met(budget_s, confidence) if budget_s is not None else None
        typer.echo(json.dumps(d, indent=2))
        return
    lines = layer_lines(pred) if layers else []
    lines += prediction_lines(
        pred, roofline_s=est.totals.seconds, budget_s=budget_s, threads=torch.get_num_threads()
    )
    for line in lines + host_state_lines(pred, table):
        typer.echo(line)


def demo_section(echo) -> None:
    """Roofline and energy of MobileNetV2 on STM32F746 and Jetson Orin Nano, with the fit verdict."""
    import warnings

    import edgefit.measure  # noqa: F401 - registers the measured 'host' device
    from edgefit.hardware import estimate, get_device
    from edgefit.metrics import UncountedOpsWarning
    from edgefit.metrics import profile as run_profile
    from edgefit.zoo import create, get_spec

    name = "mobilenet_v2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)
        prof = run_profile(
            create(name, device="meta"), input_shape=get_spec(name).input_shape, name=name
        )
        prof8 = run_profile(
            create(name, device="meta"), input_shape=get_spec(name).input_shape, bits=8, name=name
        )
    for dev_name, p in (
        ("stm32f746", prof8),
        ("jetson_orin_nano", prof),
        ("jetson_orin_nano", prof8),
    ):
        est = estimate(p, get_device(dev_name))
        for line in estimate_summary(est):
            echo(line)
        slowest = sorted(est.layers, key=lambda r: r.seconds, reverse=True)[:3]
        echo(
            "  slowest layers: "
            + ", ".join(f"{r.name} ({r.bound}, {human_seconds(r.seconds)})" for r in slowest)
        )
        echo("")
    echo(
        "Pictures: edgefit roofline zoo:mobilenet_v2 --device jetson_orin_nano --plot roofline.png --bars layers.png"
    )
