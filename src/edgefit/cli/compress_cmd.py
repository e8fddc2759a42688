"""`edgefit train`, `edgefit compress`, `edgefit inspect`, `edgefit sensitivity`,
and the Deep Compression section of `edgefit demo`."""

from __future__ import annotations

import json
import os
import tempfile
from enum import Enum
from pathlib import Path

import typer

from edgefit.cli.main import app, parse_per_layer
from edgefit.errors import ConfigError


class ReportFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


def _resolve(spec: str):
    """``zoo:NAME``, a bare zoo name, ``file.py:fn`` or ``pkg.mod:fn``; returns (model, zoo name or None)."""
    from edgefit.zoo import resolve_model

    resolved = resolve_model(spec)
    return resolved.model, (resolved.name if resolved.from_zoo else None)


class _Progress:
    """A rich progress bar over epochs, fed by the library's ``on_epoch`` callback."""

    def __init__(self, total: int, label: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=False)
        self.task = self.progress.add_task(label, total=total, info="")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, epoch: int, loss: float, acc: float) -> None:
        self.progress.update(self.task, advance=1, info=f"loss {loss:.4f}  test acc {100 * acc:.2f}%")


@app.command()
def train(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn or pkg.mod:fn"),
    dataset: str = typer.Option("digits", help="'digits' or a .npz with x_train, y_train, x_test, y_test"),
    epochs: int = typer.Option(40, help="training epochs"),
    lr: float = typer.Option(1e-3, help="Adam learning rate"),
    batch_size: int = typer.Option(64, help="mini-batch size"),
    seed: int = typer.Option(0, help="seed for the initial weights and the batch order"),
    threads: int = typer.Option(1, help="torch CPU threads (1 is fastest for small models)"),
    output: Path = typer.Option(..., "--output", "-o", help="weights file to write (.safetensors)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Train a model on a dataset, deterministically, and save its weights (safetensors)."""
    import torch

    from edgefit.data import TrainConfig, evaluate, load_dataset, save_weights
    from edgefit.data import train as train_fn

    cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, threads=threads)
    data = load_dataset(dataset)
    torch.manual_seed(seed)
    net, name = _resolve(model)
    if quiet:
        train_fn(net, data, cfg)
    else:
        with _Progress(epochs, f"train {name or model}") as bar:
            train_fn(net, data, cfg, on_epoch=bar)
    acc = evaluate(net, data)
    save_weights(net, output, metadata={"model": name, "dataset": data.name, "epochs": epochs, "seed": seed,
                                        "test_accuracy": acc})
    typer.echo(f"test accuracy {100 * acc:.2f}% on {data.name} ({len(data.y_test)} images); wrote {output}")


def _recipe(config: Path | None, **flags):
    from edgefit.compress.pipeline import DeepCompressionConfig

    base = DeepCompressionConfig.from_file(config).to_dict() if config else {}
    base.update({k: v for k, v in flags.items() if v is not None})
    return DeepCompressionConfig.from_dict(base)


@app.command()
def compress(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn or pkg.mod:fn"),
    weights: Path | None = typer.Option(None, help="trained fp32 weights (.safetensors); default: train first"),
    dataset: str = typer.Option("digits", help="'digits' or a .npz dataset"),
    prune: str | None = typer.Option(None, help="final sparsity: 0.95 or layer=value,... (e.g. classifier.0=0.92)"),
    bits: str | None = typer.Option(None, help="k-means bits: 4 or layer=bits,..."),
    index_bits: str | None = typer.Option(None, help="relative index bits: 5 or layer=bits,... (default: smallest)"),
    init: str | None = typer.Option(None, help="centroid init: linear, density or random"),
    prune_steps: int | None = typer.Option(None, help="gradual pruning steps"),
    prune_epochs: int | None = typer.Option(None, help="retraining epochs per pruning step"),
    finetune_epochs: int | None = typer.Option(None, help="centroid fine-tuning epochs"),
    train_epochs: int = typer.Option(40, help="dense training epochs when no --weights is given"),
    config: Path | None = typer.Option(None, "--config", help="recipe file (.yaml or .json); flags override it"),
    output: Path = typer.Option(..., "--output", "-o", help="compressed file to write (.efz)"),
    fmt: ReportFormat = typer.Option(ReportFormat.text, "--format", help="report format"),
    report: Path | None = typer.Option(None, help="also write the report to this file"),
    seeds: str | None = typer.Option(None, help="repeat from scratch per seed, e.g. 0,1,2 (>= 3, zoo models, no --weights): report the mean and spread; the .efz is the first seed's"),
) -> None:
    """Deep Compression: prune + retrain, k-means + fine-tune, Huffman; write .efz and the report."""
    from edgefit._io import atomic_write
    from edgefit.compress.recipe import run_recipe
    from edgefit.data import load_dataset

    ib = parse_per_layer(index_bits, int, "index-bits", "classifier.0=4")
    recipe = _recipe(config, prune=parse_per_layer(prune, float, "prune", "classifier.0=0.92,classifier.2=0.91"), bits=parse_per_layer(bits, int, "bits", "classifier.0=4,classifier.4=5"),
                     index_bits=ib, init=init, prune_steps=prune_steps, prune_epochs=prune_epochs,
                     finetune_epochs=finetune_epochs)
    data = load_dataset(dataset)
    if seeds is not None:
        typer.echo(_over_seeds(model, data, recipe, seeds, weights, train_epochs, output))
        return
    if weights is not None:
        rep = run_recipe(model, data, recipe, weights=weights, output=output)
    else:
        with _Progress(train_epochs, "train dense") as bar:
            rep = run_recipe(model, data, recipe, dense_epochs=train_epochs, output=output, on_train_epoch=bar)
    text = rep.render(fmt.value)
    if report is not None:
        atomic_write(report, text + "\n")
    typer.echo(text)


def _over_seeds(model, data, recipe, seeds, weights, train_epochs, output) -> str:
    """`run_recipe_seeds` for ``--seeds``: the first seed's report, then the figures over seeds."""
    from dataclasses import replace

    from edgefit.compress.recipe import run_recipe_seeds
    from edgefit.zoo import resolve_model

    if weights is not None:
        raise ConfigError("--seeds trains from scratch for each seed: drop --weights")
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r}: give whole numbers separated by commas, e.g. 0,1,2") from None
    resolved = resolve_model(model)
    if not resolved.from_zoo:
        raise ConfigError("--seeds needs a zoo model (it rebuilds the model for each seed)")
    runs = run_recipe_seeds(resolved.name, data, replace(recipe, seed=seed_list[0] if seed_list else 0),
                            seeds=seed_list, dense_epochs=train_epochs, output=output)
    return runs.reports[0].to_text() + "\n\n" + runs.summary()


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="an .efz file"),
    fmt: str = typer.Option("text", "--format", help="text or json"),
) -> None:
    """Show what is inside an .efz file (and check it decodes with valid checksums)."""
    from edgefit.compress.file import inspect_compressed

    if fmt not in ("text", "json"):
        raise ConfigError(f"--format must be text or json, got {fmt!r}")
    info = inspect_compressed(path)
    if fmt == "json":
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"{info['path']}: efz v{info['format_version']}, model {info['model'] or '(none recorded)'}, "
               f"{info['file_bytes']:,} bytes ({info['payload_bytes']:,} payload + {info['header_bytes']:,} header); "
               f"checksums OK")
    for r in info["tensors"]:
        line = f"  {r['name']:<24} {str(tuple(r['shape'])):<16} {r['encoding']:<6} {r['bytes']:>8,} B"
        if r["encoding"] in ("lut", "qlin"):
            line += f"  {r['bits']}-bit codes, {r['groups']} group(s)" + (f" x {r['levels']} levels" if "levels" in r else "")
        elif r["encoding"] != "raw":
            line += f"  kept {100 * r['kept']:.1f}%  index {r['index_bits']}b"
        if r["encoding"] in ("fixed", "huff"):
            line += f"  codebook {r['codebook']} ({r['bits']}b)"
        if r["encoding"] == "huff":
            nz = max(r["nonzero"], 1)
            line += f"  huffman {r['weight_stream_bits'] / nz:.2f}+{r['index_stream_bits'] / nz:.2f} bits/weight"
        if r["encoding"] == "raw":
            line += f"  {r['dtype']}"
        typer.echo(line)
    if info["extra"]:
        typer.echo(f"  extra: {json.dumps(info['extra'])}")


@app.command()
def sensitivity(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn or pkg.mod:fn"),
    weights: Path = typer.Option(..., help="trained weights (.safetensors)"),
    dataset: str = typer.Option("digits", help="'digits' or a .npz dataset"),
    max_drop: float = typer.Option(0.01, help="accuracy drop allowed when picking per-layer sparsities"),
    plot: Path | None = typer.Option(None, help="write the accuracy-vs-sparsity plot here (.png/.svg)"),
) -> None:
    """Per-layer pruning sensitivity scan; prints the table and the picked sparsities."""
    from edgefit.compress.prune import pick_sparsities, plot_sensitivity, sensitivity_scan
    from edgefit.data import load_dataset, load_weights_

    data = load_dataset(dataset)
    net, _ = _resolve(model)
    load_weights_(net, weights)
    res = sensitivity_scan(net, data)
    picked = pick_sparsities(res, max_drop)
    typer.echo("layer".ljust(16) + "".join(f"{100 * s:>7.0f}%" for s in res.sparsities) + "   picked")
    for name, accs in res.accuracy.items():
        typer.echo(name.ljust(16) + "".join(f"{100 * a:>7.1f}%" for a in accs) + f"   {picked[name]:.2f}")
    typer.echo("--prune " + ",".join(f"{k}={v}" for k, v in picked.items()))
    if plot is not None:
        plot_sensitivity(res, plot)
        typer.echo(f"wrote {plot}")


# Tuned on the digits split (benchmarks/deep_compression.py): 95% / 97% / 80% pruned, 4-bit clusters.
DEMO_RECIPE = dict(
    prune={"classifier.0": 0.95, "classifier.2": 0.97, "classifier.4": 0.8},
    bits=4,
)
DENSE_EPOCHS = 60
# The demo keeps its dense and compressed files (the report step reads them); one directory per user.
DEMO_DIR = Path(tempfile.gettempdir()) / f"edgefit-demo-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
DEMO_DENSE = DEMO_DIR / "lenet_300_100_digits.dense.safetensors"
DEMO_EFZ = DEMO_DIR / "lenet_300_100_digits.efz"


def demo_section(echo) -> None:
    """Deep Compression of the digits LeNet-300-100: train, prune, quantize, Huffman, file, reload."""
    import time

    import torch

    from edgefit.compress.file import load_compressed
    from edgefit.compress.pipeline import DeepCompressionConfig
    from edgefit.compress.recipe import run_recipe
    from edgefit.data import TrainConfig, evaluate, load_digits, save_weights
    from edgefit.data import train as train_fn
    from edgefit.zoo import create

    t0 = time.perf_counter()
    data = load_digits()
    # The dense weights and the .efz stay in DEMO_DIR: the report step compares them.
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(DEMO_RECIPE.get("seed", 0))
    net = create("lenet_300_100_digits")
    train_fn(net, data, TrainConfig(epochs=DENSE_EPOCHS, lr=1e-3))
    echo(f"trained the dense 64-300-100-10 MLP on digits ({len(data.y_train)} train / {len(data.y_test)} test)"
         f" in {time.perf_counter() - t0:.1f}s")
    save_weights(net, DEMO_DENSE, metadata={"model": "lenet_300_100_digits", "dataset": data.name})
    path = DEMO_EFZ
    rep = run_recipe("zoo:lenet_300_100_digits", data, DeepCompressionConfig(**DEMO_RECIPE),
                     weights=DEMO_DENSE, output=path)
    loaded = load_compressed(path)
    acc = evaluate(loaded, data)
    echo(rep.to_text())
    echo(f"\nload_compressed({path.name}) rebuilt the model from the zoo: test accuracy {100 * acc:.2f}%"
         f" ({path.stat().st_size:,} bytes on disk; one seed: benchmarks/deep_compression.py gives the"
         f" mean over 3); total {time.perf_counter() - t0:.1f}s")
