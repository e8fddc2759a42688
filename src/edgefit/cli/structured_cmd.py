"""`edgefit prune`, `edgefit factorize`, `edgefit distill`, and the structured-pruning
section of `edgefit demo`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from edgefit.cli.main import app, parse_per_layer
from edgefit.errors import ConfigError


class Method(str, Enum):
    channel = "channel"
    auto = "auto"
    energy = "energy"


def _model_and_data(model: str, weights: Path | None, dataset: str | None, image_size: int | None,
                    options: list[str] | None):
    """Resolve MODEL, load weights, fit the dataset's images to the model; returns (resolved, data, shape)."""
    from edgefit.cli.profile_cmd import parse_options
    from edgefit.compress.prune.saved import is_pruned_file, resolve_pruned
    from edgefit.data import load_dataset, load_weights_
    from edgefit.data.resize import fit_images
    from edgefit.data.train import check_model_fits
    from edgefit.zoo import resolve_model

    resolved = resolve_pruned(model) if is_pruned_file(model) else resolve_model(model, **parse_options(options or []))
    if weights is not None:
        load_weights_(resolved.model, weights)
    data = None
    if dataset:
        data = load_dataset(dataset)
        shape = resolved.input_shape
        channels = shape[1] if shape is not None and len(shape) == 4 and data.x_train.ndim == 4 else None
        data = fit_images(data, image_size, channels if channels != data.sample_shape[0] else None)
        check_model_fits(resolved.model, data)
        return resolved, data, (1, *data.sample_shape)
    if resolved.input_shape is None:
        raise ConfigError(f"{model}: the input shape is unknown; give a --dataset")
    return resolved, data, tuple(resolved.input_shape)


def _save(result, output: Path, options: list[str] | None, spec: str) -> None:
    from edgefit.cli.profile_cmd import parse_options
    from edgefit.compress.prune.saved import save_model

    save_model(result.model, output, source=spec, options=parse_options(options or []), shrunk=True,
               input_shape=result.input_shape, extra={"technique": result.technique, "macs": result.macs_after,
                                                      "test_accuracy": result.accuracy_after})


def _run(resolved, config, data, shape, finetune_epochs, lr, distill, quiet):
    from edgefit.cli.compress_cmd import _Progress
    from edgefit.compress.structured import shrink

    kwargs = dict(input_shape=shape, data=data, finetune_epochs=finetune_epochs, lr=lr, distill=distill)
    if finetune_epochs and not quiet:
        with _Progress(finetune_epochs, "fine-tune") as bar:
            return shrink(resolved.model, config, on_epoch=bar, **kwargs)
    return shrink(resolved.model, config, **kwargs)


@app.command()
def prune(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn, pkg.mod:fn or a pruned .safetensors"),
    weights: Path | None = typer.Option(None, help="trained weights (.safetensors)"),
    method: Method = typer.Option(Method.channel, help="channel (given ratios), auto (ratios for a target), "
                                                       "energy (energy-aware)"),
    ratio: str = typer.Option("0.5", help="fraction of channels to remove: 0.5 or group=value,..."),
    importance: str = typer.Option("l2", help="l1, l2, bn_scale, taylor, fmap or random"),
    scope: str = typer.Option("local", help="local (ratio per group) or global (ranked across groups)"),
    target: float = typer.Option(0.5, help="auto/energy: keep this fraction of the cost"),
    cost: str = typer.Option("macs", help="auto: macs, params, latency, energy or lut"),
    device: str | None = typer.Option(None, help="device for cost latency/energy and for --method energy"),
    dataset: str | None = typer.Option(None, help="'digits' or a .npz: accuracy and fine-tuning"),
    image_size: int | None = typer.Option(None, help="upscale the dataset's images to this size (e.g. 32)"),
    finetune_epochs: int = typer.Option(0, help="fine-tuning epochs after pruning"),
    lr: float = typer.Option(1e-3, help="fine-tuning learning rate"),
    distill: bool = typer.Option(False, help="fine-tune by distillation from the unpruned model"),
    option: list[str] | None = typer.Option(None, "--option", help="builder option key=value (repeatable)"),
    output: Path = typer.Option(..., "--output", "-o", help="pruned model file to write (.safetensors)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Remove channels across dependency groups; save a smaller model that `edgefit profile` reads."""
    from edgefit.compress.prune import AutoChannelConfig, ChannelConfig, EnergyAwareConfig

    if output.suffix != ".safetensors":
        raise ConfigError(f"--output must end in .safetensors, got {output}")
    resolved, data, shape = _model_and_data(model, weights, dataset, image_size, option)
    if method is Method.channel:
        config = ChannelConfig(ratio=parse_per_layer(ratio, float, "ratio", "layer1.0.conv1=0.5"),
                               importance=importance, scope=scope, input_shape=shape)
    elif method is Method.auto:
        config = AutoChannelConfig(target=target, cost=cost, device=device, importance=importance, input_shape=shape)
    else:
        config = EnergyAwareConfig(target=target, device=device or "eyeriss", importance=importance,
                                   input_shape=shape, finetune_epochs=1 if data is not None else 0)
    result = _run(resolved, config, data, shape, finetune_epochs, lr, distill, quiet)
    _save(result, output, option, model)
    typer.echo(result.render())
    typer.echo(f"wrote {output}")


@app.command()
def factorize(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn, pkg.mod:fn or a pruned .safetensors"),
    weights: Path | None = typer.Option(None, help="trained weights (.safetensors)"),
    method: str = typer.Option("svd", help="svd (Linear), lowrank or separable (k x k convs)"),
    rank: str | None = typer.Option(None, help="rank: 8 or layer=rank,..."),
    energy: float | None = typer.Option(None, help="keep this fraction of the squared singular values"),
    param_ratio: float | None = typer.Option(None, help="at most this fraction of each layer's weights"),
    dataset: str | None = typer.Option(None, help="'digits' or a .npz: accuracy and fine-tuning"),
    image_size: int | None = typer.Option(None, help="upscale the dataset's images to this size"),
    finetune_epochs: int = typer.Option(0, help="fine-tuning epochs after factorizing"),
    lr: float = typer.Option(1e-3, help="fine-tuning learning rate"),
    distill: bool = typer.Option(False, help="fine-tune by distillation from the original model"),
    option: list[str] | None = typer.Option(None, "--option", help="builder option key=value (repeatable)"),
    output: Path = typer.Option(..., "--output", "-o", help="model file to write (.safetensors)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Low-rank (SVD) or separable factorization of layers; save the smaller model."""
    from edgefit.compress.factorize import FactorizeConfig

    if output.suffix != ".safetensors":
        raise ConfigError(f"--output must end in .safetensors, got {output}")
    config = FactorizeConfig(method=method, rank=parse_per_layer(rank, int, "rank", "classifier.0=16"),
                             energy=energy, param_ratio=param_ratio)
    resolved, data, shape = _model_and_data(model, weights, dataset, image_size, option)
    result = _run(resolved, config, data, shape, finetune_epochs, lr, distill, quiet)
    _save(result, output, option, model)
    typer.echo(result.render())
    typer.echo(f"wrote {output}")


@app.command(name="distill")
def distill_cmd(
    teacher: str = typer.Option(..., help="teacher MODEL (zoo name, file.py:fn or a pruned .safetensors)"),
    teacher_weights: Path | None = typer.Option(None, help="teacher weights (.safetensors)"),
    student: str = typer.Option(..., help="student MODEL"),
    student_weights: Path | None = typer.Option(None, help="student starting weights"),
    dataset: str = typer.Option("digits", help="'digits' or a .npz"),
    image_size: int | None = typer.Option(None, help="upscale the dataset's images to this size"),
    temperature: float = typer.Option(4.0, help="softmax temperature T"),
    alpha: float = typer.Option(0.9, help="weight of the soft loss (1 - alpha for the labels)"),
    epochs: int = typer.Option(30, help="training epochs"),
    lr: float = typer.Option(1e-3, help="Adam learning rate"),
    seed: int = typer.Option(0, help="seed"),
    output: Path = typer.Option(..., "--output", "-o", help="student weights to write (.safetensors)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Knowledge distillation (Hinton et al.): train the student on the teacher's soft targets."""
    import torch

    from edgefit.cli.compress_cmd import _Progress
    from edgefit.compress.distill import DistillConfig, distill_
    from edgefit.compress.prune.saved import save_model
    from edgefit.data import evaluate

    config = DistillConfig(temperature=temperature, alpha=alpha, epochs=epochs, lr=lr, seed=seed)
    t, data, _ = _model_and_data(teacher, teacher_weights, dataset, image_size, None)
    torch.manual_seed(seed)
    s, _, _ = _model_and_data(student, student_weights, dataset, image_size, None)
    if quiet:
        distill_(s.model, t.model, data, config)
    else:
        with _Progress(epochs, "distill") as bar:
            distill_(s.model, t.model, data, config, on_epoch=bar)
    t_acc, s_acc = evaluate(t.model, data), evaluate(s.model, data)
    save_model(s.model, output, source=student, input_shape=(1, *data.sample_shape),
               extra={"dataset": data.name, "distilled_from": teacher, "temperature": temperature,
                      "alpha": alpha, "test_accuracy": s_acc})
    typer.echo(f"teacher {100 * t_acc:.2f}%, student {100 * s_acc:.2f}% on {data.name} "
               f"({len(data.y_test)} images); wrote {output}")


def demo_section(echo) -> None:
    """The digits LeNet-5 pruned to half its MACs: accuracy and measured latency before/after."""
    import copy

    import torch

    from edgefit.compress.prune import AutoChannelConfig
    from edgefit.compress.structured import compare_latency, shrink
    from edgefit.data import TrainConfig, load_digits, train
    from edgefit.zoo import create

    data = load_digits()
    torch.manual_seed(0)
    model = create("lenet5_digits")
    train(model, data, TrainConfig(epochs=15))
    dense = copy.deepcopy(model)
    config = AutoChannelConfig(target=0.5, cost="macs", input_shape=(1, 1, 8, 8))
    result = shrink(model, config, input_shape=(1, 1, 8, 8), data=data, finetune_epochs=5)
    echo(result.render())
    x = (torch.from_numpy(data.x_test[:64]),)
    (before, lo0, hi0), (after, lo1, hi1) = compare_latency([dense, result.model], x, rounds=5, runs=20)
    echo(f"measured on this host, batch 64, one thread: {1e3 * before:.3f} ms -> {1e3 * after:.3f} ms "
         f"({before / after:.2f}x faster; median of 5 alternating rounds, spread {1e3 * lo0:.3f}-{1e3 * hi0:.3f} "
         f"and {1e3 * lo1:.3f}-{1e3 * hi1:.3f} ms)")
