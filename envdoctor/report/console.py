"""The one way envdoctor makes a rich Console: colour only on a terminal, NO_COLOR honoured, no wrapping at 80
columns when the output goes to a file or a pipe."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

PIPE_WIDTH = 200  # rich assumes 80 columns off a terminal, which folds tables and plans into unreadable cells


def make_console(stream: TextIO | None = None, stderr: bool = False, **options: Any) -> Any:
    from rich.console import Console

    if os.environ.get("NO_COLOR"):  # no-color.org: no escape codes at all, not even bold
        options.setdefault("color_system", None)
    console = Console(file=stream, stderr=stderr, highlight=False, **options)
    console.on_broken_pipe = _broken_pipe  # rich's own exits 1, which `check` uses for "error findings"
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def _broken_pipe() -> None:
    raise BrokenPipeError(errno.EPIPE, "stdout closed by its reader")


def silence_stdout() -> None:
    """The reader of stdout went away (`envdoctor check | head -1`): point it at /dev/null, so that later
    writes and the interpreter's final flush succeed instead of failing again with a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real stdout (an embedding, a test harness)
        pass


@contextmanager
def reader_may_leave() -> Iterator[None]:
    """Output for a reader that may stop early (`envdoctor check | head -1`): a closed pipe ends the output
    quietly, and the command's exit code stays its own (rich and click would turn it into 1, "error findings")."""
    try:
        yield
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
    except BrokenPipeError:
        silence_stdout()
