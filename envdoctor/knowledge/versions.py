"""The one version parser: every "580.159.04", "12.5.1", "2.21.0rc1", "8.6" envdoctor compares goes through here."""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

_VERSION = re.compile(r"\d+(?:\.\d+)*(?:(?:a|b|rc|\.dev|\.post)\d+)?")


def version(text: str | None) -> Version | None:
    """A lenient Version: "580.159.04", "12.5.1", "2.21.0rc1", "9", "V12.4.131"; None when there is none."""
    if not text:
        return None
    match = _VERSION.search(str(text))
    try:
        return Version(match.group(0)) if match else None
    except InvalidVersion:
        return None


def major_minor(text: str | None) -> tuple[int, int] | None:
    """(12, 5) for "12.5.1"; a bare major "9" gives (9, 0)."""
    v = version(text)
    return (v.major, v.minor) if v else None


def major(text: str | None) -> int | None:
    """The leading number: a driver's branch (580 for "580.159.04"), a CUDA or cuDNN major."""
    v = version(text)
    return v.major if v else None


def version_key(text: str) -> tuple[int, ...]:
    """A sort key for dotted release numbers from the recipes ("2.9" < "2.12"); () when there is no version."""
    v = version(text)
    return v.release if v else ()
