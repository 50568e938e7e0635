"""Reading a JSON file that another machine (or another person) wrote: bounded, strict, one clear error.

A snapshot is input like any other: its size, nesting, numbers and strings are bounded here, so that the checks
and renderers behind it never meet a 4,300-digit integer, an infinity, a lone surrogate or a 100,000-deep list.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MAX_BYTES = 32 << 20  # a real snapshot is 10-100 kB
MAX_DEPTH = 32  # a snapshot nests about 6 deep
MAX_STRING = 1 << 20
MAX_ITEMS = 100_000  # strings, numbers, lists and objects in all
MAX_INT_DIGITS = 19  # int64: every count and size in a snapshot fits
MAX_FLOAT = 1e18


class JsonInputError(ValueError):
    """The file cannot be used; the message is one line that says why."""


def load_json_file(path: Path) -> Any:
    """The JSON value in `path`, within the bounds above. Raises OSError or JsonInputError."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise JsonInputError(f"larger than {MAX_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"not UTF-8 text (byte {exc.start})") from None
    return loads_bounded(text)


def load_json_input(path: Path, option: str) -> Any:
    """A JSON file the user named with `option` (--from, --expect): its value, or a UsageError in one line."""
    from envdoctor.errors import UsageError

    try:
        return load_json_file(path.expanduser())
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
    except JsonInputError as exc:
        raise UsageError(f"{option} {path}: not a JSON snapshot ({exc})") from None


def loads_bounded(text: str) -> Any:
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise JsonInputError(f"nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    _check_tree(value)
    return value


def _int(token: str) -> int:
    if len(token.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonInputError(f"a number with {len(token.lstrip('-'))} digits ({token[:12]}…)")
    return int(token)


def _float(token: str) -> float:
    if len(token) > 64:
        raise JsonInputError(f"a number written with {len(token)} characters ({token[:12]}…)")
    value = float(token)
    if not math.isfinite(value) or abs(value) > MAX_FLOAT:
        raise JsonInputError(f"the number {token} is out of range")
    return value


def _constant(token: str) -> float:
    raise JsonInputError(f"{token} is not a JSON number")


def _check_tree(root: Any) -> None:
    """Depth, item count, string length and encodability of every key and value, without recursion."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    items = 0
    while stack:
        value, depth = stack.pop()
        items += 1
        if items > MAX_ITEMS:
            raise JsonInputError(f"more than {MAX_ITEMS} values")
        if depth > MAX_DEPTH:
            raise JsonInputError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_string(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_string(value)


def _check_string(text: str) -> None:
    if len(text) > MAX_STRING:
        raise JsonInputError(f"a string of {len(text)} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" escapes decode to lone surrogates, which no output can print
        raise JsonInputError(f"a string with an unpaired surrogate ({text[:40]!r})") from None
