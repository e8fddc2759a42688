"""`edgefit quantize` (every reduced-precision family, with quantization-aware
training, into a bit-packed .efz), `edgefit export` (ONNX, float or int8 QDQ)
and the precision sweep of `edgefit demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefit.cli.compress_cmd import _Progress, _resolve
from edgefit.cli.main import app, parse_per_layer


@app.command()
def quantize(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn or pkg.mod:fn"),
    weights: Path | None = typer.Option(None, help="trained fp32 weights (.safetensors); default: train first"),
    method: str = typer.Option("linear", help="linear, fixed, binaryconnect, bwn, twn, ttq, bnn, xnor, lognet, kmeans"),
    bits: str | None = typer.Option(None, help="weight bits (where the family has a choice): 5, or per layer"
                                    " (lognet, linear, kmeans): conv=5,fc=4 (every conv / fc layer) or layer=bits,..."),
    act_bits: int | None = typer.Option(None, help="activation bits (linear, fixed, lognet, kmeans: calibrated on the data)"),
    calibration: str | None = typer.Option(None, help="linear/kmeans activation range: minmax, percentile or mse"),
    keep_first_last: bool = typer.Option(False, help="keep the first and last layers in float"),
    dataset: str = typer.Option("digits", help="'digits' or a .npz dataset"),
    epochs: int = typer.Option(0, help="quantization-aware training epochs (0: post-training quantization)"),
    lr: float = typer.Option(1e-3, help="training learning rate (Adam)"),
    train_epochs: int = typer.Option(40, help="float training epochs when no --weights is given"),
    seed: int = typer.Option(0, help="seed"),
    output: Path = typer.Option(..., "--output", "-o", help="quantized file to write (.efz)"),
) -> None:
    """Quantize a model with one of the lectures' precision families and write a bit-packed .efz."""
    import torch

    from edgefit.compress.file import save_compressed
    from edgefit.compress.quantize import expand_kinds
    from edgefit.compress.quantize.recipe import make_config, quantize_model
    from edgefit.data import TrainConfig, load_dataset, load_weights_
    from edgefit.data import train as train_fn
    from edgefit.data.train import check_model_fits

    opts = {"calibration": calibration, "keep_first_last": keep_first_last or None}
    tc = TrainConfig(epochs=epochs, lr=lr, seed=seed)
    data = load_dataset(dataset)
    torch.manual_seed(seed)
    net, name = _resolve(model)
    widths = expand_kinds(parse_per_layer(bits, int, "bits", "conv=5,fc=4"), net)
    config = make_config(method, bits=widths, act_bits=act_bits, **opts)
    if weights is not None:
        load_weights_(net, weights)
        check_model_fits(net, data)
    else:
        with _Progress(train_epochs, "train float") as bar:
            train_fn(net, data, TrainConfig(epochs=train_epochs, seed=seed), on_epoch=bar)
    if epochs:
        with _Progress(epochs, f"train {method}") as bar:
            res = quantize_model(net, data, config, train_config=tc, on_epoch=bar)
    else:
        res = quantize_model(net, data, config)
    saved = save_compressed(net, output, model_name=name, extra={"method": method, "accuracy": res.accuracy})
    fp32 = sum(t.numel() * 4 for t in net.state_dict().values())
    for layer, why in res.skipped.items():
        typer.echo(f"kept in float: {layer}: {why}")
    typer.echo(f"{method}: test accuracy {100 * res.accuracy['float']:.2f}% -> {100 * res.accuracy['quantized']:.2f}%;"
               f" wrote {output} ({saved.file_bytes:,} bytes, {fp32 / saved.file_bytes:.1f}x smaller than fp32)")


@app.command()
def precision(
    path: Path = typer.Argument(..., help="a quantized .efz file (it names its zoo model)"),
    device: str | None = typer.Option(None, help="also estimate on this device (name or YAML file)"),
) -> None:
    """Per-layer weight/activation bits of a quantized file, what each MAC becomes, size and device estimate."""
    from edgefit.compress.file import resolve_compressed
    from edgefit.compress.quantize.precision import precision_report

    resolved = resolve_compressed(path)
    typer.echo(precision_report(resolved.model, resolved.input_shape, device=device).to_text())


RUNTIME_TITLES = {
    "onnxruntime": "ONNX Runtime (CPU provider, {t} thread(s)); int8 = QDQ, per-channel int8 weights",
    "torch-int8": "torch (CPU, {t} thread(s)): the fastest fp32 with batch norms folded (NCHW, channels-last or"
                  " TorchScript) vs the faster int8 on torch.ao kernels (FX graph mode, x86 engine, per-channel int8"
                  " weights; Python or TorchScript)",
}
TORCH_SIDES = {"fp32": "fp32 BN folded", "fp32_channels_last": "fp32 BN folded channels-last",
               "fp32_torchscript": "fp32 BN folded TorchScript", "fp32_eager": "fp32 eager",
               "int8": "int8", "int8_torchscript": "int8 TorchScript"}


def bench_runtime(model: str, runtime: str, runs: int, warmup: int, batches, input_shape, threads: int,
                  as_json: bool, option) -> None:
    """`edgefit bench --runtime onnxruntime|torch-int8`: fp32 and int8 latency on one runtime side by side."""
    import json

    from rich.progress import Progress

    from edgefit.accel.onnx import bench_onnxruntime
    from edgefit.accel.torch_int8 import bench_torch_int8
    from edgefit.cli.hardware_cmd import _profile
    from edgefit.errors import ConfigError

    bench = {"onnxruntime": bench_onnxruntime, "torch-int8": bench_torch_int8}.get(runtime)
    if bench is None:
        raise ConfigError(f"--runtime must be torch, onnxruntime or torch-int8, got {runtime!r}")
    resolved, shapes, _ = _profile(model, input_shape, 32, None, option)
    if len(shapes) != 1:
        raise ConfigError(f"--runtime {runtime} takes a model with one input")
    with Progress(transient=True, disable=as_json) as progress:
        sides = 6 if runtime == "torch-int8" else 2
        task = progress.add_task(f"{runtime} fp32 + int8", total=sides * len(batches) * (runs + warmup))
        rows = bench(resolved.model, shapes[0], batches=batches, runs=runs, warmup=warmup,
                     threads=threads or 1, on_step=lambda: progress.advance(task))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{model} on " + RUNTIME_TITLES[runtime].format(t=threads or 1))
    for r in rows:
        base, fast8 = r.get("baseline", "fp32"), r.get("int8_side", "int8")
        name = TORCH_SIDES.get if "baseline" in r else str  # ONNX Runtime rows: plain fp32 / int8
        typer.echo(f"  batch {r['batch']:>3}: {name(base)} {1e3 * r[base]['median_s']:.2f} ms"
                   f" (p90 {1e3 * r[base]['p90_s']:.2f}), {name(fast8)} {1e3 * r[fast8]['median_s']:.2f} ms"
                   f" (p90 {1e3 * r[fast8]['p90_s']:.2f}) -> {r['speedup']:.2f}x"
                   + "".join(f"; {TORCH_SIDES[k]} {1e3 * r[k]['median_s']:.2f} ms"
                             for k in TORCH_SIDES if k in r and k not in (base, fast8)))
        for side, why in r.get("not_timed", {}).items():
            typer.echo(f"  batch {r['batch']:>3}: {TORCH_SIDES[side]} not timed: {why}")


@app.command()
def export(
    model: str = typer.Argument(..., help="zoo:NAME, file.py:fn, pkg.mod:fn, or an .efz file"),
    fmt: str = typer.Option("onnx", "--format", help="onnx"),
    weights: Path | None = typer.Option(None, help="weights (.safetensors) for a zoo/code model"),
    int8: bool = typer.Option(False, "--int8", help="int8 QDQ (ONNX Runtime static quantization)"),
    first_float: bool = typer.Option(False, "--keep-first-float", help="with --int8: leave the first conv/linear fp32"),
    dataset: str = typer.Option("digits", help="calibration inputs for --int8 ('digits' or a .npz)"),
    input_shape: str | None = typer.Option(None, "--input-shape", "-i", help="e.g. 1,3,224,224 (default: the zoo's)"),
    output: Path = typer.Option(..., "--output", "-o", help="file to write (.onnx)"),
) -> None:
    """Export a dense, pruned, k-means or quantized model to ONNX (float or int8) and check it against PyTorch."""
    from edgefit.accel.onnx import export_checked
    from edgefit.errors import ConfigError

    if fmt != "onnx":
        raise ConfigError(f"--format must be onnx, got {fmt!r}")
    net, shape = _export_source(model, weights, input_shape)
    calibration = None
    if int8:
        from edgefit.data import load_dataset

        calibration = load_dataset(dataset).x_train[:512]
    check = export_checked(net, output, shape, calibration=calibration, keep_first_float=first_float)
    typer.echo(f"wrote {output} ({check.file_bytes:,} bytes); ONNX Runtime vs PyTorch on {check.inputs}"
               f" {'calibration' if int8 else 'random'} inputs: max |difference| {check.max_abs_diff:.3g}"
               f" ({100 * check.relative_diff:.2g}% of the largest output" + (", int8 vs float)" if int8 else ")"))


def _export_source(model: str, weights: Path | None, input_shape: str | None):
    from edgefit.errors import ConfigError

    known = None
    if model.endswith(".efz"):
        from edgefit.compress.file import resolve_compressed

        resolved = resolve_compressed(model)
        net, known = resolved.model, resolved.input_shape
    else:
        from edgefit.data import load_weights_
        from edgefit.zoo import get_spec

        net, zoo = _resolve(model)
        if weights is not None:
            load_weights_(net, weights)
        known = tuple(get_spec(zoo).input_shape) if zoo else None
    if input_shape:
        from edgefit.cli.profile_cmd import parse_shape

        known = parse_shape(input_shape)[0]
    if known is None:
        raise ConfigError("give --input-shape for a model that is not from the zoo")
    return net.eval(), tuple(known)


DEMO_SWEEP = (  # (method, options, QAT epochs, lr); LogNet at the lectures' widths: 4-bit fc layers here
    ("linear", {"bits": 8, "act_bits": 8}, 0, 0),
    ("fixed", {"bits": 8, "act_bits": 10}, 0, 0),
    ("lognet", {"bits": {"conv": 5, "fc": 4}, "act_bits": 4}, 2, 1e-4),
    ("kmeans", {"bits": 4}, 0, 0),
    ("ttq", {}, 2, 1e-3),
    ("bwn", {}, 2, 1e-3),
    ("xnor", {}, 2, 1e-2),
)


def _demo_rates(model, echo) -> None:
    """The last (XNOR) model's layers at their real widths on a device with and one without binary rates."""
    from edgefit.compress.quantize.precision import precision_report

    for device in ("a100", "raspberry_pi_5"):
        est = precision_report(model, (1, 64), device=device).estimate
        at = ", ".join(f"{r.name} {r.precision}" for r in est.layers if r.weight_bytes)
        fell = "; ".join(f"{f.layer} wants {f.wanted}, ran at {f.ran_at}" for f in est.fallbacks)
        echo(f"xnor layers on {est.device.display_name}: {at}" + (f" (fell back: {fell})" if fell else ""))


def _bits_label(cfg) -> str:
    """A config's weight width(s): ``5`` or, with one per layer, ``4-5``."""
    bits = getattr(cfg, "bits", 1)
    widths = sorted(set(bits.values())) if isinstance(bits, dict) else [bits]
    return str(widths[0]) if len(widths) == 1 else f"{widths[0]}-{widths[-1]}"


def demo_section(echo) -> None:
    """A precision sweep on the digits LeNet-300-100: accuracy and bytes on disk side by side."""
    import copy
    import tempfile
    import time

    import torch

    from edgefit.compress.file import save_compressed
    from edgefit.compress.quantize import expand_kinds
    from edgefit.compress.quantize.recipe import make_config, quantize_model
    from edgefit.data import TrainConfig, load_digits, save_weights
    from edgefit.data import train as train_fn
    from edgefit.zoo import create

    t0 = time.perf_counter()
    data = load_digits()
    torch.manual_seed(0)
    net = create("lenet_300_100_digits")
    train_fn(net, data, TrainConfig(epochs=15))
    with tempfile.TemporaryDirectory(prefix="edgefit-demo-") as tmp:
        fp32 = save_weights(net, f"{tmp}/f.safetensors").stat().st_size
        echo(f"{'method':<8} {'W/A bits':<9} {'QAT':>3}  {'accuracy':>16}  {'bytes':>7}  ratio")
        for name, opts, epochs, lr in DEMO_SWEEP:
            q = copy.deepcopy(net)
            cfg = make_config(name, **{k: expand_kinds(v, q) if k == "bits" else v for k, v in opts.items()})
            res = quantize_model(q, data, cfg, train_config=TrainConfig(epochs=epochs, lr=lr) if epochs else None)
            size = save_compressed(q, f"{tmp}/q.efz").file_bytes
            wa = f"{_bits_label(cfg) if name != 'ttq' else 2}/{opts.get('act_bits', 1 if name == 'xnor' else 32)}"
            echo(f"{name:<8} {wa:<9} {epochs:>3}  {100 * res.accuracy['float']:6.2f}% -> {100 * res.accuracy['quantized']:6.2f}%"
                 f"  {size:>7,}  {fp32 / size:5.1f}x")
        _demo_rates(q, echo)
    echo(f"(fp32 safetensors file {fp32:,} bytes; every layer quantized; QAT = epochs of quantization-aware"
         f" training; {time.perf_counter() - t0:.1f}s)")
