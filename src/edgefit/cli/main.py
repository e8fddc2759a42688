"""The `edgefit` command: a thin typer app.

Each command module (`profile_cmd`, `hardware_cmd`, `compress_cmd`) registers its
commands on `app`; commands parse options, call the library and print. Any
`EdgefitError` becomes one line on stderr and exit code 2 (`--debug` shows the
traceback instead).
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="edgefit",
    help="Make deep neural networks fit edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_STATE = {"debug": False}

# Command modules; each registers its commands on `app` when imported.
COMMAND_MODULES = (
    "edgefit.cli.profile_cmd",
    "edgefit.cli.hardware_cmd",
    "edgefit.cli.compress_cmd",
    "edgefit.cli.accel_cmd",
    "edgefit.cli.quantize_cmd",
    "edgefit.cli.demo_cmd",
    "edgefit.cli.plan_cmd",
    "edgefit.cli.report_cmd",
    "edgefit.cli.search_cmd",
    "edgefit.cli.structured_cmd",
    "edgefit.cli.adapt_cmd",
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    _STATE["debug"] = debug


def fail(message: str) -> typer.Exit:
    """Print one error line to stderr; return the exit to raise (code 2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def parse_per_layer(text: str | None, kind: type, flag: str, example: str):
    """``"8"`` -> 8; ``"fc1=4,default=8"`` -> {"fc1": 4, "default": 8}; ``None``/``""`` -> None.

    One parser for every option that takes a value or per-layer ``pattern=value`` pairs.

    Raises:
        ConfigError: a value does not parse as ``kind`` or a pair has an empty side.
    """
    from edgefit.errors import ConfigError

    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if "=" not in text:
            return kind(text)
        out = {}
        for part in text.split(","):
            key, _, value = part.partition("=")
            if not key.strip() or not value.strip():
                raise ValueError(part)
            out[key.strip()] = kind(value.strip())
        return out
    except ValueError:
        raise ConfigError(
            f"--{flag} {text!r}: give one value or layer=value pairs separated by commas, e.g. {example}"
        ) from None


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not an absent module
                raise


def _usage_message(exc: BaseException) -> str | None:
    """One line for a command-line usage error (bad value, unknown option...), else None.

    Typer raises click's exception types, from click itself or from the copy some
    typer releases vendor; both have ``format_message()`` and ``exit_code``.
    """
    fmt = getattr(exc, "format_message", None)
    if not callable(fmt) or not hasattr(exc, "exit_code"):
        return None
    return " ".join(str(fmt()).split()).replace("Value error, ", "")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edgefit` script."""
    from edgefit.errors import EdgefitError

    _load_commands()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:  # accepted anywhere on the line, not only before the command
        argv = ["--debug", *[a for a in argv if a != "--debug"]]
    try:
        code = app(args=argv, standalone_mode=False)  # a command's typer.Exit(code) comes back here
    except EdgefitError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # usage errors, and anything unexpected
        usage = _usage_message(exc)
        if usage == "":  # `edgefit` alone: the help was shown, nothing went wrong
            return 0
        if usage is not None:
            typer.echo(f"error: {usage} (see edgefit --help)", err=True)
            return 2
        if debug:
            raise
        typer.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
