"""Render variables for a shell, each value quoted so that the shell reads back exactly the same string
(dotenv: unquoted, restricted to characters no reader treats specially)."""

from __future__ import annotations

import json
import re

from envdoctor.errors import UsageError

FORMATS = ("bash", "zsh", "fish", "powershell", "dotenv", "json")
_DOTENV_SAFE = re.compile(r"[A-Za-z0-9_.,:/+=-]*")


def _posix(value: str) -> str:
    # Single quotes keep everything literal; a quote itself is closed, escaped, reopened.
    return "'" + value.replace("'", "'\\''") + "'"


def _fish(value: str) -> str:
    # In fish single quotes only \\ and \' are escapes.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# PowerShell's tokenizer ends a single-quoted string at any of these, not only at ' (CharExtensions.IsSingleQuote
# in System.Management.Automation/engine/parser/CharTraits.cs); two in a row stand for the second one.
POWERSHELL_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
_POWERSHELL_QUOTE = re.compile(f"[{POWERSHELL_SINGLE_QUOTES}]")


def _powershell(name: str, value: str) -> str:
    # Windows PowerShell and PowerShell before 7.5 delete a variable assigned '' (about_Environment_Variables).
    if not value:
        raise UsageError(f"{name}: PowerShell before 7.5 cannot set a variable to an empty value")
    # Each quote doubled with itself: the string keeps exactly that character. Double quotes (" and U+201C-E)
    # are plain characters inside single quotes, and nothing else is special there.
    return "'" + _POWERSHELL_QUOTE.sub(lambda m: m.group(0) * 2, value) + "'"


def _dotenv(name: str, value: str) -> str:
    # Unquoted: docker's --env-file keeps quotes as part of the value (docker/cli#3630), which would turn a UUID
    # into a name that hides every GPU. Only characters every reader (docker, compose, python-dotenv, systemd's
    # EnvironmentFile, `set -a; . file`) takes literally are allowed; everything envdoctor emits is among them.
    if not _DOTENV_SAFE.fullmatch(value):
        raise UsageError(f"{name}: value {value!r} cannot be written safely in dotenv format")
    return f"{name}={value}"


def render(env: dict[str, str], fmt: str) -> str:
    """The text for `eval`/`source`/`Invoke-Expression`, ending in a newline."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(env, indent=2) + "\n"
    lines = []
    for name, value in env.items():
        if "\0" in value:  # no environment can hold a NUL: a shell would cut the value or the line there
            raise UsageError(f"{name}: value {value!r} holds a NUL character")
        if fmt in ("bash", "zsh"):
            lines.append(f"export {name}={_posix(value)}")
        elif fmt == "fish":
            lines.append(f"set -gx {name} {_fish(value)}")
        elif fmt == "powershell":
            lines.append(f"$env:{name} = {_powershell(name, value)}")
        else:
            lines.append(_dotenv(name, value))
    return "".join(line + "\n" for line in lines)
