"""`edgefit demo`: the main job on built-in defaults, one section per capability.

Each capability contributes a function ``demo_section(echo) -> None`` in its
command module; the demo runs them in order.
"""

from __future__ import annotations

import importlib

import typer

from edgefit.cli.main import app

SECTIONS = (
    ("edgefit.cli.profile_cmd", "Profile: exact efficiency metrics"),
    ("edgefit.cli.hardware_cmd", "Hardware: roofline, energy and memory fit"),
    ("edgefit.cli.compress_cmd", "Deep Compression on the digits LeNet-300-100"),
    ("edgefit.cli.plan_cmd", "Fit a microcontroller: activation memory planning"),
    ("edgefit.cli.accel_cmd", "Accelerator: dataflow energy on a spatial array"),
    ("edgefit.cli.report_cmd", "HTML report: dense vs compressed LeNet-300-100 on two devices"),
    ("edgefit.cli.search_cmd", "Architecture search on the digits cell space"),
    ("edgefit.cli.structured_cmd", "Structured pruning: the digits LeNet-5 at half its MACs"),
    ("edgefit.cli.adapt_cmd", "NetAdapt: a digits convnet under a host-latency budget"),
    ("edgefit.cli.quantize_cmd", "Reduced precision: the lectures' families on the digits LeNet-300-100"),
)


@app.command()
def demo(
    only: str = typer.Option("", help="Run one section: profile, hardware, compress, plan, accel, report, search, structured, adapt, quantize."),
) -> None:
    """Run edgefit's main jobs on zoo models and bundled data."""
    shorts = [name.rsplit(".", 1)[1].removesuffix("_cmd") for name, _ in SECTIONS]
    if only and only not in shorts:
        from edgefit.cli.main import fail

        raise fail(f"--only {only!r}: no such section; sections: {', '.join(shorts)}")
    for (module_name, title), short in zip(SECTIONS, shorts, strict=True):
        if only and only != short:
            continue
        module = importlib.import_module(module_name)
        section = getattr(module, "demo_section", None)
        if section is None:
            continue
        typer.echo(f"\n=== {title} ===\n")
        section(typer.echo)
