"""The knowledge tables the checks read: well-formed, sourced, and consistent with the wheels' own facts."""

from __future__ import annotations

import pytest
from packaging.version import Version

from envdoctor.resources import load_recipe

RECIPES = ["tf_releases.json", "cuda_drivers.json", "packages.json"]


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_names_its_sources(name):
    data = load_recipe(name)
    assert data["_sources"] and all(isinstance(v, str) and v for v in data["_sources"].values())


def test_tf_releases_table():
    releases = load_recipe("tf_releases.json")["releases"]
    assert sorted(releases, key=Version) == [f"2.{m}" for m in range(12, 22)]
    for name, row in releases.items():
        lo, hi = (Version(v) for v in row["python"])
        assert lo < hi, name
        assert Version(row["cudnn"]).major in (8, 9)
        assert all(c.startswith(("sm_", "compute_")) for c in row["compute_capabilities"])
        assert any(c.startswith("compute_") for c in row["compute_capabilities"]), name  # every wheel has PTX
    # facts read from the wheels themselves (each wheel's build_info.py and METADATA on PyPI)
    assert releases["2.18"]["cuda"] == "12.5.1" and releases["2.18"]["cudnn"] == "9.3"
    assert releases["2.17"]["compute_capabilities"] == ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]
    assert releases["2.21"]["python"] == ["3.10", "3.13"]


def test_cuda_driver_table_is_monotonic():
    table = load_recipe("cuda_drivers.json")
    rows = table["toolkits"]
    assert [Version(r["cuda"]) for r in rows] == sorted(Version(r["cuda"]) for r in rows)
    linux = [Version(r["linux"]) for r in rows]
    assert linux == sorted(linux)
    for major, mins in table["minor_version_compatibility"].items():
        newest = [r for r in rows if r["cuda"].startswith(f"{major}.")][-1]
        assert Version(mins["linux"]) <= Version(newest["linux"])  # the compat floor is below every minor's own
