"""The command line: a thin typer layer. Each command lives in envdoctor/commands/ and calls its feature."""

from __future__ import annotations

import sys

import typer

from envdoctor import __version__
from envdoctor.errors import UsageError

app = typer.Typer(
    name="envdoctor",
    help="Get a machine ready for deep learning with TensorFlow, and prove that it is ready.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"envdoctor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """envdoctor: check, build-tf, gpus, env, run, smoke-test."""


def _register_commands() -> None:
    from envdoctor.commands import build_tf, check, gpus, smoke_test

    for module in (check, gpus, build_tf, smoke_test):
        module.register(app)


_register_commands()


def main() -> None:
    """Entry point: usage errors exit 2, an internal failure exits 3 with one line, never a traceback."""
    try:
        app()
    except UsageError as exc:
        print(f"envdoctor: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # last resort: report, never a traceback
        print(f"envdoctor: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(3)
