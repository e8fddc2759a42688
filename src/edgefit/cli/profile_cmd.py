"""`edgefit profile` and `edgefit zoo`."""

from __future__ import annotations

import re
from enum import Enum

import typer

from edgefit.cli.main import app, parse_per_layer
from edgefit.errors import ConfigError, InputShapeError


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


def parse_shape(text: str) -> tuple[tuple[int, ...], ...]:
    """'1,3,224,224' or '1x3x224x224'; several inputs separated by ';'.

    Raises:
        InputShapeError: not a list of positive integers.
    """
    shapes = []
    for part in text.split(";"):
        dims = [d for d in re.split(r"[,x\u00d7 ]+", part.strip()) if d]
        try:
            shape = tuple(int(d) for d in dims)
        except ValueError:
            raise InputShapeError(f"input shape {text!r} must be integers separated by commas, e.g. 1,3,224,224") from None
        if not shape:
            raise InputShapeError(f"input shape {text!r} is empty; expected e.g. 1,3,224,224")
        if any(d <= 0 for d in shape):
            raise InputShapeError(f"input shape {text!r} has a dimension <= 0; every dimension must be positive")
        shapes.append(shape)
    return tuple(shapes)


def parse_bits(text: str) -> int | dict[str, int]:
    """'8', or per-layer patterns 'features.*=8,classifier.*=4,default=32'."""
    bits = parse_per_layer(text, int, "bits", "features.*=8,default=32")
    if bits is None:
        raise ConfigError("--bits is empty; give a bit width such as 8")
    return bits


def parse_options(items: list[str]) -> dict:
    """['alpha=0.5', 'attention=mha'] -> {'alpha': 0.5, 'attention': 'mha'}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
        out[key.strip()] = _literal(value.strip())
    return out


def _literal(v: str):
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def load_model(spec: str, options: list[str] | None = None, input_shape: str | None = None):
    """Resolve MODEL and its example input shapes and dtype for a command."""
    from edgefit.compress.prune.saved import is_pruned_file, resolve_pruned
    from edgefit.zoo import resolve_model

    if str(spec).endswith(".efz"):
        from edgefit.compress.file import resolve_compressed

        resolved = resolve_compressed(spec)
    elif is_pruned_file(spec):
        resolved = resolve_pruned(spec)
    else:
        resolved = resolve_model(spec, **parse_options(options or []))
    if input_shape:
        shapes = parse_shape(input_shape)
    elif resolved.input_shape is not None:
        shapes = (tuple(resolved.input_shape),)
    else:
        raise InputShapeError(f"{spec}: the input shape is unknown; give it with --input-shape, e.g. 1,3,224,224")
    return resolved, shapes


def widths_of(model, bits: str | int | None, activation_bits: int | None) -> dict:
    """``bits=`` / ``activation_bits=`` of the profile: the flags when given, else the
    real per-layer widths of a quantized model (an ``.efz``), else 32."""
    from edgefit.compress.quantize.precision import model_widths

    own = model_widths(model) if bits is None else {}
    out = own or {"bits": 32 if bits is None else (parse_bits(bits) if isinstance(bits, str) else bits)}
    if activation_bits is not None:
        out["activation_bits"] = activation_bits
    return out


def write_or_print(text: str, output: str | None) -> None:
    if output:
        from edgefit._io import atomic_write

        atomic_write(output, text if text.endswith("\n") else text + "\n")
        typer.echo(f"wrote {output}", err=True)
    else:
        typer.echo(text)


@app.command()
def profile(
    model: str = typer.Argument(..., help="zoo:NAME, path/to/file.py:callable, package.module:callable, a pruned .safetensors or a quantized .efz"),
    input_shape: str = typer.Option(None, "--input-shape", "-i", help="e.g. 1,3,224,224; several inputs separated by ';'"),
    input_dtype: str = typer.Option(None, "--input-dtype", help="float32 (default) or int64 for token ids"),
    bits: str = typer.Option(None, "--bits", "-b", help="weight bit width, or per-layer 'pattern=bits,...,default=32' (default: a quantized .efz's real widths, else 32)"),
    activation_bits: int = typer.Option(None, "--activation-bits", help="activation bit width (default: --bits; without --bits, a quantized .efz's real widths)"),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, json, csv or markdown"),
    output: str = typer.Option(None, "--output", "-o", help="write to FILE (atomically) instead of stdout"),
    device: str = typer.Option(None, "--device", "-d", help="add roofline, time and energy on a device (name or YAML file)"),
    all_layers: bool = typer.Option(False, "--all-layers", help="also show rows with no params, MACs or activations"),
    option: list[str] = typer.Option([], "--option", help="builder option KEY=VALUE (repeatable), e.g. alpha=0.5"),
) -> None:
    """Exact params, size, MACs, FLOPs and activations per layer, without running the model."""
    import warnings

    from edgefit.metrics import UncountedOpsWarning
    from edgefit.metrics import profile as run_profile

    resolved, shapes = load_model(model, option, input_shape)
    dtype = input_dtype or resolved.input_dtype or "float32"
    if dtype not in ("float32", "float16", "bfloat16", "int64", "int32"):
        raise ConfigError(f"--input-dtype {dtype!r}: expected float32, float16, bfloat16, int64 or int32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncountedOpsWarning)  # the report lists them
        prof = run_profile(
            resolved.model,
            input_shape=list(shapes),
            input_dtype=dtype,
            name=resolved.name,
            **widths_of(resolved.model, bits, activation_bits),
        )
    est = None
    if device:
        import edgefit.measure  # noqa: F401 - registers the measured 'host' device
        from edgefit.hardware import estimate, get_device

        est = estimate(prof, get_device(device))
    from edgefit.report import render_profile

    text = render_profile(prof, fmt.value, all_layers=all_layers, estimate=est)
    write_or_print(text, output)


def zoo_rows():
    """(name, family, input shape, params, MACs) for every zoo model, built on meta."""
    import warnings

    from edgefit.metrics import profile as run_profile
    from edgefit.zoo import create, get_spec, list_models

    rows = []
    for name in list_models():
        spec = get_spec(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = run_profile(create(name, device="meta"), input_shape=spec.input_shape, input_dtype=spec.input_dtype)
        rows.append((name, spec.family, spec.input_shape, p.totals.params, p.totals.macs, p.totals.activations))
    return rows


@app.command()
def zoo(
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, json or markdown"),
) -> None:
    """List the zoo models with their parameters and MACs at their canonical input."""
    from edgefit.units import si

    rows = zoo_rows()
    if fmt is Format.json:
        import json

        typer.echo(json.dumps([
            {"name": n, "family": f, "input_shape": list(s), "params": p, "macs": m, "activations": a}
            for n, f, s, p, m, a in rows
        ], indent=2))
        return
    header = ("model", "family", "input", "params", "MACs", "activations")
    body = [(n, f, "x".join(map(str, s)), *(si(v, compact=True) for v in (p, m, a))) for n, f, s, p, m, a in rows]
    if fmt is Format.markdown:
        typer.echo("| " + " | ".join(header) + " |\n|---|---|---|---:|---:|---:|")
        for r in body:
            typer.echo("| " + " | ".join(r) + " |")
        return
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for r in [header, *body]:
        typer.echo("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def demo_section(echo) -> None:
    """The AlexNet table as the lectures show it, then a line per zoo model."""
    from edgefit.metrics import profile as run_profile
    from edgefit.report import profile_table
    from edgefit.units import si
    from edgefit.zoo import create

    p = run_profile(create("alexnet", device="meta"), input_shape=(1, 3, 224, 224), name="alexnet")
    echo(profile_table(p))
    echo("\nEvery zoo model at its canonical input (weights never allocated: built on meta):")
    for name, _family, shape, params, macs, acts in zoo_rows():
        echo(f"  {name:24s} {'x'.join(map(str, shape)):>14s}  {si(params, compact=True):>7s} params  "
             f"{si(macs, compact=True):>7s} MACs  {si(acts, compact=True):>7s} activations")
