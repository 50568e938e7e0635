"""The one way envdoctor makes a rich Console: colour only on a terminal, NO_COLOR honoured, no wrapping at 80
columns when the output goes to a file or a pipe."""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
PIPE_WIDTH = 200  # rich assumes 80 columns off a terminal, which folds tables and plans into unreadable cells


def printable(text: str) -> str:
    """Text safe for a terminal: control characters (ESC starts a terminal command: a hostile snapshot could set
    the window title or clear the screen) are shown as \\xNN; newlines and tabs stay."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def make_console(stream: TextIO | None = None, stderr: bool = False, **options: Any) -> Any:
    from rich.console import Console

    if os.environ.get("NO_COLOR"):  # no-color.org: no escape codes at all, not even bold
        options.setdefault("color_system", None)
    console = Console(file=stream, stderr=stderr, highlight=False, **options)
    console.on_broken_pipe = _broken_pipe  # type: ignore[method-assign]  # rich's own exits 1 (our "error findings")
    if not console.is_terminal:
        if "COLUMNS" not in os.environ:
            console.width = PIPE_WIDTH
        # rich pads cells and titles to the width: trim for readers (a TextIO in all but name)
        console.file = _RstripLines(console.file)  # type: ignore[assignment,arg-type]
    return console


class _RstripLines:
    """A text stream that drops the trailing spaces of every line it passes on; the rest is delegated.

    Only for output off a terminal: there rich pads grid cells and centred titles with spaces up to the console
    width (PIPE_WIDTH), which diffs, `grep ...$` and copy-paste then carry along."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._partial = ""  # text after the last newline, held until its line ends

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if lines:
            self._stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._partial:  # rich flushes after each print: an unfinished line goes out as it is
            self._stream.write(self._partial)
            self._partial = ""
        self._stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ...: the wrapped stream's
        return getattr(self._stream, name)


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
