"""TensorFlow releases: what each official wheel is (recipes/tf_releases.json: Python range, CUDA, cuDNN, compute
capabilities) and how each is built from source (recipes/tf_build.json). A release's Python range and CUDA live
once, in tf_releases.json; the build table's rows get them from there (`build_releases`)."""

from __future__ import annotations

from functools import cache
from typing import Any, TypedDict, cast

from envdoctor.knowledge.versions import major_minor, version, version_key
from envdoctor.resources import load_recipe

WHEELS = "tf_releases.json"
BUILD = "tf_build.json"
SHARED = ("python", "cuda")  # facts of the official wheel that the build table takes from the wheel table


class Release(TypedDict, total=False):
    """A row of tf_releases.json (`releases` 2.12+, `older_releases` 2.4-2.11)."""

    python: list[str]  # [lowest, highest] "3.X"
    cuda: str
    cudnn: str  # major.minor the wheel was built against
    cudnn_wheel: str  # the [and-cuda] extra's cuDNN requirement (2.14+)
    compute_capabilities: list[str]  # sm_XY (SASS) and compute_XY (PTX) entries of the official wheel
    windows_gpu: bool
    conda_cuda: list[str]  # before the [and-cuda] extra: TensorFlow's own conda install line (2.12, 2.13, older)
    cudnn_pip: str


def wheels() -> dict[str, Any]:
    return cast("dict[str, Any]", load_recipe(WHEELS))


@cache
def release_rows() -> dict[str, Release]:
    """Every TensorFlow release the table knows (2.4 on), oldest first: `older_releases` then `releases`."""
    table = wheels()
    rows = {**table.get("older_releases", {}), **table["releases"]}
    return dict(sorted(rows.items(), key=lambda kv: version_key(kv[0])))


def tf_release(tf_version: str | None) -> Release | None:
    """The row for a TensorFlow version (by major.minor), or None if not in the table."""
    mm = major_minor(tf_version)
    return release_rows().get(f"{mm[0]}.{mm[1]}") if mm else None


@cache
def build_releases() -> dict[str, dict[str, Any]]:
    """tf_build.json's rows (2.12+), each with the Python range and CUDA of the official wheel added."""
    rows = cast("dict[str, dict[str, Any]]", load_recipe(BUILD)["releases"])
    official = wheels()["releases"]
    return {name: {**row, **{key: official[name][key] for key in SHARED}} for name, row in rows.items()}


@cache
def build_table() -> dict[str, Any]:
    """tf_build.json with its `releases` completed by `build_releases`."""
    return {**cast("dict[str, Any]", load_recipe(BUILD)), "releases": build_releases()}


def stock_wheel_instructions(tf_version: str | None) -> list[str]:
    """The x86 instructions (cpuinfo names) the stock wheel of this release is compiled for, from the build table
    (recipes/tf_build.json, per release: -mavx, and -mf16c from 2.21). A release the table does not know: the newest
    known one's for a newer release, else AVX, which every stock wheel since 1.6 requires."""
    releases = load_recipe(BUILD)["releases"]
    mm = major_minor(tf_version)
    key = f"{mm[0]}.{mm[1]}" if mm else None
    if key not in releases and mm is not None:
        newest = max(releases, key=lambda r: major_minor(r) or (0, 0))
        key = newest if mm > (major_minor(newest) or (0, 0)) else None
    return list(releases[key]["stock_wheel_x86"]) if key in releases else ["avx"]


def supports_python(row: Release, python: tuple[int, int] | None) -> bool:
    """A release-table row's Python range holds this (major, minor); None (unknown) fits every row."""
    lo, hi = (major_minor(v) for v in row["python"])
    return python is None or (lo is not None and hi is not None and lo <= python <= hi)


def releases_for_python(python: tuple[int, int] | None) -> list[str]:
    """Release names (major.minor) in the table whose wheels exist for this Python."""
    return [name for name, row in release_rows().items() if supports_python(row, python)]


def has_and_cuda_extra(release: str | None) -> bool | None:
    """Whether TensorFlow `release` ("2.17.0", "2.14.*", "2.12") has the [and-cuda] extra; None if unknown."""
    pinned, since = version(release), version(wheels()["and_cuda_extra_since"])
    return None if pinned is None or since is None else pinned >= since
