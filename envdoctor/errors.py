"""Errors with a defined exit code."""


class UsageError(Exception):
    """Bad user input: one line on stderr, exit code 2, nothing on stdout."""
