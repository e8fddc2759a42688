"""`edgefit search`: hardware-aware neural architecture search, and its `edgefit demo` section."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from edgefit.cli.compress_cmd import _Progress
from edgefit.cli.main import app


class SearchFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


class _TrialBar(_Progress):
    """The progress bar over samples, fed by the library's ``on_trial`` callback."""

    def __call__(self, record, finished: int, total: int) -> None:
        from edgefit.search.nas.result import format_value

        info = "  ".join(f"{k} {format_value(k, v)}" for k, v in record.values.items()) or "rejected by a constraint"
        self.progress.update(self.task, completed=finished, info=f"trial {record.number}: {info}")


@app.command("search")
def search_command(
    space: str = typer.Option("mbv2", "--space", help="built-in space (mbv2, cell) or a .yaml space file"),
    algorithm: str = typer.Option("random", "--algorithm", "-a",
                                  help="random, coordinate, evolution, reinforce, tpe, gp, nsga2, darts"),
    trials: int = typer.Option(20, "--trials", "-n", help="finished samples wanted in the study"),
    objective: list[str] = typer.Option(["accuracy"], "--objective", "-O",
                                        help="accuracy, latency@host, latency@DEVICE, energy@DEVICE, size, peak_memory, macs, params; repeat for multi-objective"),
    constraint: list[str] = typer.Option([], "--constraint", "-c",
                                         help="fits@DEVICE or METRIC<=VALUE (latency@host<=2ms, size<=64KB); repeatable"),
    storage: str = typer.Option("sqlite:///edgefit_nas.db", "--storage",
                                help="Optuna storage URL; rerun the same command to resume"),
    study_name: str | None = typer.Option(None, "--study-name", help="default: SPACE-ALGORITHM-OBJECTIVES"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster address (auto after `ray start --head`)"),
    workers: int | None = typer.Option(None, "--workers", "-w",
                                       help="trials in flight (default 1, or all CPUs of --ray-address); > 1 starts Ray in process"),
    dataset: str = typer.Option("digits", help="'digits' or a .npz dataset for the accuracy objective"),
    epochs: int = typer.Option(3, help="training epochs per sample (approximate accuracy)"),
    train_fraction: float = typer.Option(1.0, help="share of the training set used per sample"),
    seed: int = typer.Option(0, help="seeds the optimizer and the training"),
    output_dir: Path = typer.Option(Path("nas_results"), "--output-dir", "-o",
                                    help="where the front's architectures and the plot are written"),
    fmt: SearchFormat = typer.Option(SearchFormat.table, "--format", help="how the result is printed"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Search an architecture space; print the Pareto front and time_nas; write the front out loadable."""
    from edgefit.search.nas import EvalConfig, optimizer_config
    from edgefit.search.nas.runner import search

    config = optimizer_config(algorithm, seed=seed)
    eval_config = EvalConfig(epochs=epochs, train_fraction=train_fraction, seed=seed)
    kwargs = dict(objectives=objective, constraints=constraint, trials=trials, storage=storage,
                  study_name=study_name, data=dataset, eval_config=eval_config, workers=workers,
                  ray_address=ray_address)
    if quiet:
        result = search(space, config, **kwargs)
    else:
        with _TrialBar(trials, f"search {space} / {config.name}") as bar:
            result = search(space, config, on_trial=bar, **kwargs)
    _print_result(result, fmt, output_dir)


def _print_result(result, fmt: SearchFormat, output_dir: Path) -> None:
    if not result.feasible:
        from edgefit.errors import ConfigError

        raise ConfigError(f"none of the {len(result.records)} samples met the constraints {result.constraints}")
    paths = result.export(output_dir)
    plot = result.plot(output_dir / "pareto.png")
    if fmt is SearchFormat.json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    title = "Pareto front" if len(result.objectives) > 1 else "best samples"
    typer.echo(f"{title} of study {result.study_name!r} ({len(result.records)} samples, space size {result.space.size:,}):")
    typer.echo(result.to_markdown() if fmt is SearchFormat.markdown else result.table())
    typer.echo(result.time_nas_line())
    for line in result.host_latency_lines():
        typer.echo(line)
    if result.recovered:
        typer.echo(f"recovered trials left running by a dead process: {result.recovered} (retried)")
    first = next(p for p in paths if p.suffix == ".py")
    shape = ",".join(map(str, result.space.input_shape()))
    typer.echo(f"wrote {sum(p.name.startswith('arch_') and p.suffix == '.json' for p in paths)} architectures to {output_dir}/ and the plot {plot}; e.g.")
    typer.echo(f"  edgefit profile {first}:build --input-shape {shape}")


def demo_section(echo) -> None:
    """A short multi-objective evolution on the digits cell space (accuracy against MACs, must fit an STM32)."""
    from edgefit.search.nas import EvalConfig, EvolutionConfig
    from edgefit.search.nas.runner import search

    result = search("cell", EvolutionConfig(population=4, sample=2), objectives=["accuracy", "macs"],
                    constraints=["fits@stm32f746"], trials=6,
                    eval_config=EvalConfig(epochs=2, train_fraction=0.3))
    echo(result.table())
    echo(result.time_nas_line())
