"""Where the knowledge files (recipes/) and templates (templates/) live, installed or in a checkout."""

from __future__ import annotations

import json
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


@cache
def load_recipe(name: str) -> Any:
    """Load recipes/<name> (JSON). Keys starting with '_' hold sources and comments."""
    return json.loads((recipes_dir() / name).read_text(encoding="utf-8"))
