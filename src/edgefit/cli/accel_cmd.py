"""`edgefit dataflow`, `edgefit sparsity`, `edgefit convalgo`, and the accelerator section of `edgefit demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefit.cli.main import app
from edgefit.errors import ConfigError


def _profile(model: str, input_shape: str | None):
    import warnings

    from edgefit.cli.profile_cmd import load_model
    from edgefit.metrics import UncountedOpsWarning
    from edgefit.metrics import profile as run_profile

    resolved, shapes = load_model(model, None, input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)
        return run_profile(resolved.model, input_shape=list(shapes), name=resolved.name), resolved


def _layers(model: str, input_shape: str | None, batch: int):
    """(name, CONV/FC layers at ``batch``, uncovered rows) from a model or an energy-tool file."""
    from dataclasses import replace

    from edgefit.accel.layers import UnsupportedLayerError, layers_from_profile

    if model.endswith(".txt") and Path(model).is_file():
        from edgefit.accel.energy_tool import read_energy_tool

        return Path(model).stem, [replace(layer, n=batch) for layer in read_energy_tool(model)], []
    prof, _ = _profile(model, input_shape)
    layers, uncovered = layers_from_profile(prof, batch=batch)
    if not layers:
        raise UnsupportedLayerError(f"{prof.model}: no CONV or FC layer for the accelerator model")
    return prof.model, layers, uncovered


def _progress(total: int, label: str):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), transient=True)
    task = bar.add_task(label, total=total)
    return bar, lambda *_: bar.update(task, advance=1)


@app.command()
def dataflow(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn, pkg.mod:fn, or an energy-tool .txt file"),
    input_shape: str = typer.Option(None, "--input-shape", "-i", help="e.g. 1,3,224,224 (default: the zoo's)"),
    pes: str = typer.Option("16x16", "--pes", help="PE array ROWSxCOLS"),
    rf: str = typer.Option("512B", "--rf", help="register file per PE, e.g. 512B"),
    buffer: str = typer.Option("128KiB", "--buffer", help="global buffer, e.g. 128KiB or 108kB"),
    dataflows: str = typer.Option("rs,ws,os,nlr", "--dataflow", help="comma-separated: rs, ws, osa, osb, osc, nlr; os = osa,osb,osc"),
    batch: int = typer.Option(16, "--batch", help="batch size N"),
    same_array: bool = typer.Option(False, "--same-array", help="map every dataflow on the array as given (default: equal area)"),
    markdown: bool = typer.Option(False, "--markdown", help="Markdown tables"),
    accesses: bool = typer.Option(False, "--accesses", help="also print each layer's accesses per level and data type, and its mapping"),
    json_out: Path | None = typer.Option(None, "--json", help="write every mapping, access count and energy as JSON"),
    plot: Path | None = typer.Option(None, "--plot", help="write the stacked energy plot (.png/.svg/.pdf)"),
    energy_tool: Path | None = typer.Option(None, "--energy-tool", help="also write the layers in the energy-estimation tool's format"),
) -> None:
    """Energy of each CONV / FC layer under the WS, OS (A, B, C), NLR and RS dataflows on a spatial array."""
    from edgefit.accel.arch import SpatialArch, default_costs, parse_array, parse_bytes
    from edgefit.accel.compare import DataflowConfig, compare_layers

    rows, cols = parse_array(pes)
    arch = SpatialArch(rows, cols, parse_bytes(rf), parse_bytes(buffer), costs=default_costs(), name=f"{rows}x{cols}")
    config = DataflowConfig(arch=arch, dataflows=tuple(dataflows.split(",")), batch=batch, equal_area=not same_array)
    name, layers, uncovered = _layers(model, input_shape, batch)
    if energy_tool:
        from edgefit.accel.energy_tool import write_energy_tool

        write_energy_tool(layers, energy_tool)
        typer.echo(f"wrote {energy_tool}", err=True)
    bar, tick = _progress(len(layers) * len(config.dataflows), "mapping")
    with bar:
        report = compare_layers(name, layers, config, uncovered=uncovered, on_layer=tick)
    typer.echo(f"{name}: {rows}x{cols} PEs, {arch.rf_bytes} B RF, {arch.buffer_bytes} B buffer, batch {batch}, "
               f"{'equal area' if config.equal_area else 'same array'}; energy in units of one MAC")
    if config.equal_area:
        typer.echo("equal storage area: " + "; ".join(
            f"{d.upper()} {config.arch_for(d).rf_bytes} B RF + {config.arch_for(d).buffer_bytes} B buffer"
            for d in config.dataflows))
    typer.echo("")
    typer.echo(report.table(markdown))
    for kind in ("conv", "fc"):
        if report.rows(config.dataflows[0], kind):
            typer.echo(f"\nenergy by level, {kind.upper()} layers (normalized to {'RS' if 'rs' in config.dataflows else config.dataflows[0].upper()}):")
            typer.echo(report.breakdown_table(kind, markdown))
            typer.echo(f"\nby data type (mac = ALU), {kind.upper()} layers:")
            typer.echo(report.breakdown_table(kind, markdown, by="data"))
    if accesses:
        for d in config.dataflows:
            typer.echo(f"\n{d.upper()}: accesses (words) per level, ifmap/weight/psum, and the mapping:")
            typer.echo(report.accesses_table(d, markdown))
    for uname, kind, macs in report.uncovered:
        typer.echo(f"not covered by the model: {uname} ({kind}, {macs:,} MACs)")
    if json_out:
        import json

        from edgefit._io import atomic_write

        atomic_write(json_out, json.dumps(report.to_dict(), indent=2) + "\n")
        typer.echo(f"wrote {json_out}", err=True)
    if plot:
        from edgefit.report.accel_plots import plot_dataflow_energy

        plot_dataflow_energy(report, plot)
        typer.echo(f"wrote {plot}", err=True)


@app.command()
def sparsity(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn or pkg.mod:fn"),
    weights: Path | None = typer.Option(None, help="trained weights (.safetensors); default: train first"),
    dataset: str = typer.Option("digits", help="'digits' or a .npz; its test split is the input batch"),
    train_epochs: int = typer.Option(20, help="training epochs when no --weights is given"),
    dataflow_name: str = typer.Option("rs", "--dataflow", help="dataflow of the energy model"),
    markdown: bool = typer.Option(False, "--markdown", help="a Markdown table"),
    energy_tool: Path | None = typer.Option(None, "--energy-tool", help="also write the layers with their zero counts in the energy-estimation tool's format"),
) -> None:
    """Zeros of real activations and weights, skippable MACs, energy saved, activation compression."""
    import torch

    from edgefit.accel.sparsity import SparsityConfig, measure_sparsity
    from edgefit.data import TrainConfig, load_dataset, load_weights_
    from edgefit.data import train as train_fn
    from edgefit.data.train import check_model_fits

    config = SparsityConfig(dataflow=dataflow_name)
    data = load_dataset(dataset)
    torch.manual_seed(0)
    from edgefit.zoo import resolve_model

    resolved = resolve_model(model)
    net, name = resolved.model, resolved.name if resolved.from_zoo else None
    if weights is not None:
        load_weights_(net, weights)
        check_model_fits(net, data)
    else:
        bar, tick = _progress(train_epochs, f"train {name or model}")
        with bar:
            train_fn(net, data, TrainConfig(epochs=train_epochs), on_epoch=tick)
    report = measure_sparsity(net, torch.from_numpy(data.x_test), config, name=name or model)
    typer.echo(f"{report.model} on {report.images} {data.name} test images (16-bit activations)\n")
    typer.echo(report.table(markdown))
    if energy_tool:
        report.write_energy_tool(energy_tool)
        typer.echo(f"wrote {energy_tool}", err=True)


@app.command()
def convalgo(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn or pkg.mod:fn"),
    input_shape: str = typer.Option(None, "--input-shape", "-i", help="e.g. 1,3,224,224 (default: the zoo's)"),
    time: bool = typer.Option(False, "--time", help="also measure each algorithm on this host (median of --repeats)"),
    repeats: int = typer.Option(5, help="timing rounds"),
    leaf: int = typer.Option(64, help="Strassen's leaf size"),
    markdown: bool = typer.Option(False, "--markdown", help="a Markdown table"),
) -> None:
    """Multiplies (transforms included) of direct, im2col, Winograd, FFT and Strassen per CONV layer."""
    from edgefit.accel.fastconv import ConvAlgoConfig, compare_conv_algorithms, conv_algo_table

    config = ConvAlgoConfig(strassen_leaf=leaf, repeats=repeats)
    prof, _ = _profile(model, input_shape)
    bar, tick = _progress(sum(1 for r in prof.layers if r.kind == "Conv2d" and r.macs), "timing" if time else "counting")
    with bar:
        rows, uncovered = compare_conv_algorithms(prof, config, time=time, on_layer=tick)
    if not rows:
        raise ConfigError(f"{prof.model} has no Conv2d layer to compare algorithms on")
    typer.echo(conv_algo_table(rows, markdown))
    for name, kind, macs in uncovered:
        typer.echo(f"not covered: {name} ({kind}, {macs:,} MACs)")


def demo_section(echo) -> None:
    """AlexNet's CONV layers under the paper's six dataflows on the 256-PE array, batch 1 for speed."""
    import warnings

    from edgefit.accel.compare import DataflowConfig, compare_dataflows
    from edgefit.metrics import profile
    from edgefit.zoo import create

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prof = profile(create("alexnet", device="meta"), input_shape=(1, 3, 224, 224), name="alexnet")
    report = compare_dataflows(prof, DataflowConfig(batch=1))
    echo("AlexNet, 256 PEs, RS with 512 B RF, equal area, batch 1 (edgefit dataflow zoo:alexnet --batch 16 for the paper's)")
    echo(report.breakdown_table("conv"))
    echo("  ".join(f"{d.upper()}/RS {report.ratio(d, 'conv'):.2f}x" for d in report.config.dataflows if d != "rs"))
