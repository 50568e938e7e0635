"""Where the knowledge files (recipes/) and templates (templates/) live, installed or in a checkout, and where
envdoctor keeps what it caches."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / name  # the wheel carries recipes/ and templates/ inside the package
    return installed if installed.is_dir() else _PACKAGE.parent / name


def recipes_dir() -> Path:
    return _data_dir("recipes")


def templates_dir() -> Path:
    return _data_dir("templates")


def cache_dir() -> Path:
    """envdoctor's cache: $ENVDOCTOR_CACHE_DIR, else $XDG_CACHE_HOME/envdoctor, else ~/.cache/envdoctor."""
    if os.environ.get("ENVDOCTOR_CACHE_DIR"):
        return Path(os.environ["ENVDOCTOR_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "envdoctor"


@cache
def load_recipe(name: str) -> Any:
    """Load recipes/<name> (JSON). Keys starting with '_' hold sources and comments."""
    return json.loads((recipes_dir() / name).read_text(encoding="utf-8"))
