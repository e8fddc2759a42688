"""`edgefit plan`: plan a model's activation memory for a device, and say what still does not fit."""

from __future__ import annotations

import json

import typer

from edgefit.cli.main import app, parse_per_layer
from edgefit.errors import ConfigError


def parse_patches(text: str):
    """``auto`` -> "auto", ``none``/``0`` -> None, ``4`` -> 4."""
    t = text.strip().lower()
    if t == "auto":
        return "auto"
    if t in ("none", "no", "0", "off"):
        return None
    try:
        return int(t)
    except ValueError:
        raise ConfigError(f"--patches {text!r}: give auto, none, or patches per side (e.g. 4)") from None


def parse_bytes(text: str | None) -> int | None:
    """``256KB`` -> 262144, ``1MB``, ``300000``; KB = 1024 bytes as datasheets count."""
    if not text:
        return None
    t = text.strip().upper().replace(" ", "").removesuffix("B")
    scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t) * scale
    except ValueError:
        raise ConfigError(f"--target {text!r}: give bytes, e.g. 256KB or 300000") from None
    if value <= 0:
        raise ConfigError(f"--target {text!r}: must be positive")
    return int(value)


def parse_split(text: str | None):
    if text is None:
        return None
    return int(text) if text.isdigit() else text


@app.command()
def plan(
    model: str = typer.Argument(..., help="zoo:NAME, path/to/file.py:callable or package.module:callable"),
    device: str = typer.Option("stm32f746", "--device", "-d", help="device name or device YAML file"),
    bits: str = typer.Option("8", "--bits", "-b", help="weight bit width, or per-layer 'pattern=bits,...,default=8'"),
    activation_bits: int = typer.Option(None, "--activation-bits", help="activation bit width (default: --bits)"),
    patches: str = typer.Option("auto", "--patches", "-p", help="auto, none, or patches per side (4 = 4x4)"),
    split: str = typer.Option(None, "--split", help="end the patched stage after this module (its path, or how many modules of the chain)"),
    max_extra_macs: float = typer.Option(0.2, "--max-extra-macs", help="most extra MACs patches may add (0.2 = 20%)"),
    no_inplace: bool = typer.Option(False, "--no-inplace", help="do not plan ops in place"),
    target: str = typer.Option(None, "--target", help="peak the patches must reach (e.g. 256KB); default: lowest"),
    input_shape: str = typer.Option(None, "--input-shape", "-i", help="e.g. 1,3,144,144"),
    option: list[str] = typer.Option([], "--option", help="builder option KEY=VALUE (repeatable), e.g. width_mult=0.35"),
    output: str = typer.Option(None, "--output", "-o", help="write the report to FILE (atomically) instead of stdout"),
    layers: bool = typer.Option(False, "--layers", help="also print the per-layer memory table"),
    plot: str = typer.Option(None, "--plot", help="write the per-layer memory picture (png, svg, pdf)"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
) -> None:
    """Plan activation memory (arena, in-place, patches) and judge it against a device."""
    from rich.console import Console

    from edgefit.cli.profile_cmd import load_model, write_or_print
    from edgefit.hardware.mcu import plan as run_plan
    from edgefit.report.memory import layer_table, memory_figure, plan_lines
    from edgefit.report.plots import save_figure

    bit_spec = parse_per_layer(bits, int, "bits", "classifier.*=4,default=8")
    resolved, shapes = load_model(model, option, input_shape)
    with Console(stderr=True).status(f"planning {resolved.name}..."):
        dp = run_plan(
            resolved.model, device, input_shape=list(shapes[0]), input_dtype=resolved.input_dtype or "float32",
            bits=bit_spec, activation_bits=activation_bits, patches=parse_patches(patches), split=parse_split(split),
            max_extra_macs=max_extra_macs, inplace=not no_inplace, target_bytes=parse_bytes(target),
            name=resolved.name,
        )
    if as_json:
        d = dp.memory.to_dict()
        d.update(device=dp.device.name, today=dp.before.message, verdict=dp.fit.message, fits=dp.fits,
                 advice=list(dp.advice))
        text = json.dumps(d, indent=2)
    else:
        text = "\n".join(plan_lines(dp) + (["", layer_table(dp.memory)] if layers else []))
    write_or_print(text, output)
    if plot:
        fig = memory_figure(dp.memory, capacity_bytes=dp.device.activation_ram_bytes,
                            capacity_label=f"{dp.device.display_name} {dp.device.activation_memory}")
        save_figure(fig, plot)
        typer.echo(f"wrote {plot}", err=True)


def demo_section(echo) -> None:
    """MobileNetV2 on the STM32F746: today's verdict, then the plan that makes a smaller variant fit."""
    from edgefit.hardware.mcu import plan as run_plan
    from edgefit.report.memory import plan_lines
    from edgefit.zoo import create

    dp = run_plan(create("mobilenet_v2", device="meta"), "stm32f746", input_shape=(1, 3, 224, 224), bits=8,
                  name="mobilenet_v2")
    echo(f"today, MobileNetV2 1.0-224 int8: {dp.before.message}")
    echo(f"planned (in place, {dp.memory.patch.patches}x{dp.memory.patch.patches} patches): {dp.fit.message}")
    echo("")
    small = create("mobilenet_v2", width_mult=0.35, num_classes=100, device="meta")
    dp = run_plan(small, "stm32f746", input_shape=(1, 3, 144, 144), bits=8,
                  name="mobilenet_v2(width_mult=0.35, num_classes=100)")
    for line in plan_lines(dp):
        echo(line)
    echo("")
    echo("Try: edgefit plan zoo:mobilenet_v2 --option width_mult=0.35 --option resolution=144 --layers "
         "--plot memory.png")
