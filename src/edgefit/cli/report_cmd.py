"""`edgefit report`: one self-contained HTML page of a model (and others beside it) on devices,
and the report step of `edgefit demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefit.cli.main import app

_DEVICES_HELP = "device name or YAML file (repeatable); default: stm32f746 and jetson_orin_nano"


@app.command()
def report(
    model: str = typer.Argument(..., help="zoo:NAME, file.py:fn, pkg.mod:fn, weights.safetensors or model.efz"),
    compare: list[str] = typer.Option([], "--compare", "-c", help="another model beside it (repeatable)"),
    device: list[str] = typer.Option([], "--device", "-d", help=_DEVICES_HELP),
    dataset: str = typer.Option(None, "--dataset", help="'digits' or a .npz: accuracy of trained models"),
    input_shape: str = typer.Option(None, "--input-shape", "-i", help="e.g. 1,3,224,224 (for models from files)"),
    sensitivity: bool = typer.Option(False, "--sensitivity", help="scan per-layer pruning sensitivity (needs --dataset)"),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="time the models on this host"),
    section: list[Path] = typer.Option([], "--section", help="extra sections from a JSON file (repeatable; see docs/report.md)"),
    title: str = typer.Option(None, "--title", help="page title"),
    output: Path = typer.Option(..., "--output", "-o", help="the .html file to write (atomically)"),
) -> None:
    """Write one HTML page: summary cards, rooflines, per-layer table and bars, stages, comparisons."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgefit.cli.profile_cmd import parse_shape
    from edgefit.report.html import DEFAULT_DEVICES, html_report, load_sections

    extra = [s for path in section for s in load_sections(path)]
    models = [model, *compare]
    steps = 3 * len(models) + 1
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("report", total=steps)
        result = html_report(
            models, output, devices=device or DEFAULT_DEVICES, dataset=dataset,
            input_shape=parse_shape(input_shape) if input_shape else None, measure=measure,
            sensitivity=sensitivity, extra_sections=extra, title=title,
            on_step=lambda msg: bar.update(task, advance=1, description=msg),
        )
    typer.echo(f"wrote {result.path} ({result.bytes:,} bytes, {result.seconds:.1f}s); open it in a browser")


def demo_section(echo) -> None:
    """The dense and the Deep Compression digits LeNet-300-100 side by side on two devices, as one page."""
    from edgefit.cli import compress_cmd
    from edgefit.report.html import html_report

    if not (compress_cmd.DEMO_DENSE.is_file() and compress_cmd.DEMO_EFZ.is_file()):
        echo("(running the Deep Compression step first for its files)")
        compress_cmd.demo_section(lambda *_: None)
    output = compress_cmd.DEMO_DIR / "report.html"
    result = html_report([compress_cmd.DEMO_DENSE, compress_cmd.DEMO_EFZ], output,
                         devices=("stm32f746", "jetson_orin_nano"), dataset="digits",
                         title="LeNet-300-100 on digits: dense vs Deep Compression")
    dense, small = result.results
    echo(f"dense {dense.file_bytes:,} B -> compressed {small.file_bytes:,} B on disk; test accuracy "
         f"{100 * dense.accuracy:.2f}% -> {100 * small.accuracy:.2f}%; STM32F746 energy "
         f"{_joules(dense, 'stm32f746')} -> {_joules(small, 'stm32f746')}")
    echo(f"wrote the HTML report in {result.seconds:.1f}s ({result.bytes:,} bytes); open it in a browser:\n"
         f"  {result.path.resolve()}")


def _joules(res, device: str) -> str:
    from edgefit.units import human_joules

    return human_joules(res.estimates[device].totals.joules)
