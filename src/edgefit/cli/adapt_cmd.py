"""`edgefit adapt`: NetAdapt to latency, energy, memory and MAC budgets, and its `edgefit demo` section."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefit.cli.main import app


def _progress_line(member, info) -> str:
    from edgefit.search.netadapt.family import column

    res = ", ".join(f"{column(k)[0].split(' [')[0]} {v * column(k)[1]:.4g}{column(k)[0].split('[')[1][:-1]}"
                    for k, v in member.resources.items())
    score = "" if member.score is None else f"val {100 * member.score:.2f}%"
    if member.iteration == -1:
        return f"final: {res}, {score} after long-term fine-tune"
    if member.iteration == 0:
        return f"start: {res}, {score}"
    return f"iteration {member.iteration}: shrank {member.block} ({info['proposals']} proposals) -> {res}, {score}"


@app.command()
def adapt(
    model: str = typer.Argument(..., help="zoo:NAME (or NAME), file.py:fn or pkg.mod:fn"),
    budget: list[str] = typer.Option(..., "--budget", "-b", help="resource=value[@device], e.g. latency=50%, macs=0.37G, peak_activations=320KB, energy=2mJ@jetson_orin_nano (repeat for several)"),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="the family and run state; the same command resumes"),
    weights: Path | None = typer.Option(None, help="trained weights (.safetensors); default: train first"),
    dataset: str = typer.Option("digits", help="'digits' or a .npz dataset"),
    resolution: int | None = typer.Option(None, help="resize the dataset's images to this size (e.g. 32)"),
    device: str = typer.Option("host", help="where latency/energy budgets without @device are taken; host = measured lookup table"),
    workers: int = typer.Option(1, help="proposals fine-tuned in parallel"),
    executor: str | None = typer.Option(None, help="serial, process (default) or ray"),
    ray_address: str | None = typer.Option(None, help="a running Ray cluster (implies --executor ray); default: ray.init() in-process"),
    initial_reduction: float = typer.Option(0.025, help="first iteration's cut, share of the starting resource"),
    decay: float = typer.Option(0.96, help="each iteration's cut is this times the previous"),
    short_term_epochs: float = typer.Option(1.0, help="fine-tuning per proposal (below 1: a share of one epoch)"),
    long_term_epochs: int = typer.Option(10, help="fine-tuning of the final network"),
    selection: str = typer.Option("accuracy", help="accuracy (paper) or ratio (score drop / resource drop)"),
    channel_step: int = typer.Option(8, help="channels removed in multiples of this"),
    max_iterations: int = typer.Option(100, help="give up after this many iterations"),
    bits: int = typer.Option(32, help="bit width of model size, peak activations and device estimates"),
    train_epochs: int = typer.Option(20, help="training epochs when no --weights is given"),
    lut: Path | None = typer.Option(None, help="latency lookup table file (default: the cache dir's)"),
    seed: int = typer.Option(0, help="seed of every fine-tune"),
    relative_to: str = typer.Option("total", help="what a % budget is a share of: total, or reducible (above the network with every block at --channel-step channels)"),
    interpolate: bool = typer.Option(False, help="interpolate the latency table for unmeasured channel counts instead of measuring them"),
) -> None:
    """NetAdapt: shrink one block per iteration until every budget is met; keep the whole family."""
    from edgefit.search.netadapt import NetAdaptConfig
    from edgefit.search.netadapt.run import adapt_model

    cfg = NetAdaptConfig.from_options(
        budget, workers=workers, executor=executor, ray_address=ray_address, initial_reduction=initial_reduction,
        decay=decay, short_term_epochs=short_term_epochs, long_term_epochs=long_term_epochs, selection=selection,
        channel_step=channel_step, max_iterations=max_iterations, seed=seed, device=device, bits=bits,
        relative_to=relative_to, interpolate=interpolate)
    result = adapt_model(model, budgets=budget, output_dir=output_dir, weights=weights, dataset=dataset,
                         resolution=resolution, train_epochs=train_epochs, config=cfg, lut=lut,
                         on_iteration=lambda m, info: typer.echo(_progress_line(m, info)))
    if result.resumed_from is not None:
        typer.echo(f"(resumed after iteration {result.resumed_from})")
    for label, how in result.how.items():
        typer.echo(f"{label}: {how}")
    typer.echo((output_dir / "family.md").read_text())  # ends with the final network's host check, if any
    typer.echo(f"{result.message}. Family in {output_dir}/ (family.md, family.png, model.py:final)")
    if not result.met:
        typer.echo(f"warning: budget not met: {result.message}", err=True)
        raise typer.Exit(code=1)


def demo_section(echo) -> None:
    """A few NetAdapt iterations on a small digits convnet under a host-latency budget."""
    import tempfile

    from edgefit.search.netadapt.run import adapt_model

    out = Path(tempfile.mkdtemp(prefix="edgefit-netadapt-"))
    echo("edgefit adapt edgefit.search.netadapt.run:demo_model --budget latency=70% ...")
    result = adapt_model(
        "edgefit.search.netadapt.run:demo_model",
        budgets=["latency=70%"], output_dir=out, train_epochs=6,
        initial_reduction=0.1, short_term_epochs=1, long_term_epochs=4,
        on_iteration=lambda m, info: echo(_progress_line(m, info)),
    )
    echo(f"{result.message}; family in {out}")
    if result.measured is not None:
        from edgefit.search.host_check import check_markdown

        echo(f"final network, {check_markdown(result.measured)}")
