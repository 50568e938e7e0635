"""TensorFlow's oneDNN policy (recipes/tf_releases.json "onednn"): when its oneDNN custom operations are on by
default, and which TF_ENABLE_ONEDNN_OPTS values it reads. The trigger list lives here once: the doctor, build-tf
and smoke-test --tune all ask the same question."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict, cast

from envdoctor.resources import load_recipe

RECIPE = "tf_releases.json"


class OneDnnPolicy(TypedDict):
    default_since: str  # the release from which oneDNN ops are on by default (Linux x86, trigger CPUs)
    default_on_windows_x86_since: str
    default_on_linux_x86_with: dict[str, str]  # /proc/cpuinfo flag -> TensorFlow's name for it (port.cc)
    env_true: list[str]  # TF_ENABLE_ONEDNN_OPTS values read as on (lower case)
    env_false: list[str]


def policy() -> OneDnnPolicy:
    return cast(OneDnnPolicy, load_recipe(RECIPE)["onednn"])


def linux_x86_triggers(flags: Iterable[str]) -> list[str]:
    """TensorFlow's names of the CPU features here that turn oneDNN on by default on Linux x86 (port.cc
    DefaultOneDnnPolicy); empty: off by default."""
    have = set(flags)
    return [name for flag, name in policy()["default_on_linux_x86_with"].items() if flag in have]


def env_setting(value: str | None) -> bool | None:
    """TF_ENABLE_ONEDNN_OPTS as TensorFlow reads it: True, False, or None (unset or a value it ignores)."""
    table = policy()
    if value is None or value.lower() not in table["env_true"] + table["env_false"]:
        return None
    return value.lower() in table["env_true"]
