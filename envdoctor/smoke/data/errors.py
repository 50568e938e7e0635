"""How the data package fails: one clear line for the user, and whose fault it is (the machine's, or the --data
they named), which decides the exit code."""

from __future__ import annotations


class DataError(Exception):
    """The data could not be found, fetched or read: one clear line for the user. A state of the machine or the
    network (no cache, no source reachable): exit 1, like any EnvironmentProblem."""


class LocalDataError(DataError):
    """The archive or folder the user named (--data PATH) cannot be used: bad input, exit 2."""


def exit_error(exc: DataError) -> Exception:
    """The CLI's error for a DataError: a usage error (exit 2) for the user's own --data, else an environment
    problem (exit 1): a failed download or an unusable cache is no misuse of the command line."""
    from envdoctor.errors import EnvironmentProblem, UsageError

    return UsageError(str(exc)) if isinstance(exc, LocalDataError) else EnvironmentProblem(str(exc))


def one_line(exc: BaseException) -> str:
    """An exception's text on one line: a usage error is one stderr line."""
    return " ".join(str(exc).split())


def os_reason(exc: OSError) -> str:
    """ "Not a directory" rather than "[Errno 20] Not a directory: '/x/afile/sub'": the caller names the path."""
    return exc.strerror or one_line(exc)
