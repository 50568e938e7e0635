"""The command line: a thin typer layer. Each command lives in envdoctor/commands/ and calls its feature."""

from __future__ import annotations

import signal
import sys

import click
import typer

from envdoctor import __version__
from envdoctor.errors import EnvironmentProblem, UsageError, interrupted_line

app = typer.Typer(
    name="envdoctor",
    help="Get a machine ready for deep learning with TensorFlow, and prove that it is ready.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    suggest_commands=False,  # click suggests already: typer's would say "Did you mean 'gpus'?" twice
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
    from envdoctor.commands import build_tf, check, explain, fleet, gpus, smoke_test

    for module in (check, explain, gpus, build_tf, smoke_test, fleet):
        module.register(app)


_register_commands()


def _command_path(ctx: click.Context | None) -> str:
    """`envdoctor run`, whatever the program was called (python -m envdoctor, a venv path)."""
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["envdoctor", *names])


_interrupted = False


def _on_interrupt(signum: int, frame: object) -> None:
    """Python's own SIGINT behaviour (KeyboardInterrupt), remembered: typer hides it as exit code 130."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _invoked_command() -> str:
    """`envdoctor smoke-test` from the command line, for messages printed after click has unwound."""
    words = [w for w in sys.argv[1:2] if not w.startswith("-")]
    return " ".join(["envdoctor", *words])


def usage_line(exc: click.UsageError) -> str:
    """click's usage error as one line: click and typer print a boxed panel of five lines."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    return f"envdoctor: error: {message} (see {_command_path(exc.ctx)} --help)"


def main() -> None:
    """Entry point: usage errors exit 2, an internal failure exits 3 with one line, never a traceback."""
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        # standalone_mode=False: click's usage errors come here instead of being printed as rich panels.
        code = app(standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `envdoctor` alone: typer prints the help (stdout), exit 2
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        print(usage_line(exc), file=sys.stderr)
        sys.exit(2)
    except click.ClickException as exc:  # not raised by envdoctor's options today: still one line
        print(f"envdoctor: error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):  # click's Abort: an interrupted run (EOF or Ctrl-C)
        print(interrupted_line(_invoked_command()), file=sys.stderr)
        sys.exit(130)
    except UsageError as exc:
        print(f"envdoctor: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except EnvironmentProblem as exc:
        print(f"envdoctor: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # last resort: report, never a traceback
        from envdoctor.report.console import printable

        print(
            printable(f"envdoctor: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"), file=sys.stderr
        )
        sys.exit(3)
    if _interrupted and code == 130:  # typer turns Ctrl-C into a plain exit code 130
        print(interrupted_line(_invoked_command()), file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)
