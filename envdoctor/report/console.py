"""The one way envdoctor makes a rich Console: colour only on a terminal, NO_COLOR honoured, no wrapping at 80
columns when the output goes to a file or a pipe."""

from __future__ import annotations

import os
from typing import Any, TextIO

PIPE_WIDTH = 200  # rich assumes 80 columns off a terminal, which folds tables and plans into unreadable cells


def make_console(stream: TextIO | None = None, stderr: bool = False, **options: Any) -> Any:
    from rich.console import Console

    if os.environ.get("NO_COLOR"):  # no-color.org: no escape codes at all, not even bold
        options.setdefault("color_system", None)
    console = Console(file=stream, stderr=stderr, highlight=False, **options)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console
