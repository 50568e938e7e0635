"""Errors with a defined exit code, and what an interrupted command tells its user.

Three kinds, kept apart because a script acts differently on each:
- UsageError (a ValueError): the input is bad (an option, a SPEC, a snapshot). Exit 2.
- EnvironmentProblem (a RuntimeError): the input is fine, the machine is not in a state the command can work with
  (TensorFlow sees other GPUs than NVML, a CPU-only TensorFlow asked for a GPU). Exit 1, like a failed check.
- anything else is internal: exit 3, one line, never a traceback.
The public Python API (envdoctor.configure_tensorflow) raises these, so its callers can catch the standard
ValueError and RuntimeError.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad user input: one line on stderr, exit code 2, nothing on stdout."""


class EnvironmentProblem(RuntimeError):
    """The machine's state stops the command (not the user's input): one line on stderr, exit code 1."""


_kept_on_interrupt: list[str] = []


def keep_on_interrupt(note: str) -> None:
    """Say, should Ctrl-C come now, what stays behind (a log, a partial result): the CLI prints it on exit 130."""
    _kept_on_interrupt.append(note)


def interrupted_line(command: str) -> str:
    """One line for Ctrl-C: what was interrupted and what was kept. Files are written whole or not at all (a temporary
    file renamed into place), so none is ever left half-written."""
    kept = "; ".join(dict.fromkeys(_kept_on_interrupt)) or "nothing was changed or left half-written"
    return f"{command} interrupted (Ctrl-C): {kept}"
