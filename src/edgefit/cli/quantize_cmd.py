"""`edgefit quantize` (every reduced-precision family, with quantization-aware
training, into a bit-packed .efz), `edgefit export` (ONNX, float or int8 QDQ)
and the precision sweep of `edgefit demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefit.cli.compress_cmd import _Progress, _resolve
from edgefit.cli.main import app


@app.command()
def quantize(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn or pkg.mod:fn"),
    weights: Path | None = typer.Option(None, help="trained fp32 weights (.safetensors); default: train first"),
    method: str = typer.Option("linear", help="linear, fixed, binaryconnect, bwn, twn, ttq, bnn, xnor, lognet, kmeans"),
    bits: int | None = typer.Option(None, help="weight bits (where the family has a choice)"),
    act_bits: int | None = typer.Option(None, help="activation bits (linear, fixed, lognet: calibrated on the data)"),
    calibration: str | None = typer.Option(None, help="linear activation range: minmax, percentile or mse"),
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
    from edgefit.compress.quantize.recipe import make_config, quantize_model
    from edgefit.data import TrainConfig, load_dataset, load_weights_
    from edgefit.data import train as train_fn
    from edgefit.data.train import check_model_fits

    opts = {"calibration": calibration, "keep_first_last": keep_first_last or None}
    if method in ("twn", "ttq", "kmeans", "binaryconnect", "bwn", "bnn", "xnor"):
        opts.pop("calibration")
    config = make_config(method, bits=bits, act_bits=act_bits, **opts)
    tc = TrainConfig(epochs=epochs, lr=lr, seed=seed)
    data = load_dataset(dataset)
    torch.manual_seed(seed)
    net, name = _resolve(model)
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
    from edgefit.compress.file import load_compressed
    from edgefit.compress.quantize.precision import efz_precisions, precision_report
    from edgefit.zoo import get_spec

    from edgefit.compress.encode.container import read_efz

    name = read_efz(path, decode=False).model
    if not name:
        from edgefit.errors import ConfigError

        raise ConfigError(f"{path.name} records no zoo model; use edgefit.compress.quantize.precision_report(model, ...)")
    model = load_compressed(path)
    rep = precision_report(model, get_spec(name).input_shape, precisions=efz_precisions(path), device=device)
    typer.echo(rep.to_text())
