"""Errors with a defined exit code, and what an interrupted command tells its user."""

from __future__ import annotations


class UsageError(Exception):
    """Bad user input: one line on stderr, exit code 2, nothing on stdout."""


_kept_on_interrupt: list[str] = []


def keep_on_interrupt(note: str) -> None:
    """Say, should Ctrl-C come now, what stays behind (a log, a partial result): the CLI prints it on exit 130."""
    _kept_on_interrupt.append(note)


def interrupted_line(command: str) -> str:
    """One line for Ctrl-C: what was interrupted and what was kept. Files are written whole or not at all (a temporary
    file renamed into place), so none is ever left half-written."""
    kept = "; ".join(dict.fromkeys(_kept_on_interrupt)) or "nothing was changed or left half-written"
    return f"{command} interrupted (Ctrl-C): {kept}"
