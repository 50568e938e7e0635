"""The knowledge layer (envdoctor/knowledge/) is the bottom: it reads recipes/ and imports no check, probe or
command, and build-tf takes its CUDA, driver and oneDNN facts from it, never from the checks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from envdoctor.knowledge import cuda, names, onednn, versions

PACKAGE = Path(__file__).resolve().parent.parent / "envdoctor"


def _imports(path: Path) -> set[str]:
    """Every envdoctor module a file imports, at top level or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m.startswith("envdoctor")}


def test_knowledge_imports_only_recipes_and_itself() -> None:
    for path in (PACKAGE / "knowledge").glob("*.py"):
        others = {m for m in _imports(path) if not m.startswith("envdoctor.knowledge")} - {"envdoctor.resources"}
        assert others == set(), f"{path.name} imports {sorted(others)}"


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "buildtf").glob("*.py")) + [PACKAGE / "commands/build_tf.py"], ids=lambda p: p.name
)
def test_build_tf_does_not_import_the_checks(path: Path) -> None:
    assert not [m for m in _imports(path) if m.startswith("envdoctor.checks")]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("580.159.04", (580, 159)),
        ("12.5.1", (12, 5)),
        ("9", (9, 0)),
        ("V12.4.131", (12, 4)),
        ("2.21.0rc1", (2, 21)),
        ("", None),
        (None, None),
        ("none", None),
    ],
)
def test_one_version_parser(text: str | None, parsed: tuple[int, int] | None) -> None:
    assert versions.major_minor(text) == parsed
    assert versions.major(text) == (parsed[0] if parsed else None)


@given(st.text(alphabet="aZ9-_.İ", max_size=12))
def test_dist_name_is_packagings_canonical_name(name: str) -> None:
    # names.dist_name spells out PEP 503 to spare `check` packaging.utils' import: it must not drift from it.
    assert names.dist_name(name) == canonicalize_name(name)


def test_version_key_orders_releases_numerically() -> None:
    assert sorted(["2.12", "2.9", "2.10"], key=versions.version_key) == ["2.9", "2.10", "2.12"]
    assert versions.version_key("sm") == ()


def test_driver_table_lookups() -> None:
    assert cuda.toolkit_minimum("12.4.131", "linux") == cuda.toolkit_minimum("12.4", "linux")
    assert cuda.minor_compat_minimum(12, "linux") == "525.60.13"
    assert cuda.branch_runs_cuda(525, "12.8") and not cuda.branch_runs_cuda(470, "12.0")
    assert cuda.within_branch(None, 470) and not cuda.within_branch("525.60.13", 470)
    assert str(cuda.max_cuda_for_driver("470.256.02", "linux")) == "11.4"
    assert cuda.driver_limit((3, 7)) == {"below_cc": "5.0", "branch": "470", "architecture": "Kepler"}
    assert cuda.driver_limit((9, 0)) is None


def test_compute_capabilities() -> None:
    assert cuda.parse_cc("sm_100a") == (10, 0) and cuda.parse_cc("compute_90") == (9, 0)
    assert cuda.sass_for(["sm_80", "compute_90"], (8, 6)) == "sm_80"
    assert cuda.sass_for(["sm_90a"], (9, 1)) is None  # arch-specific SASS runs on exactly its capability
    assert cuda.first_cuda_for((12, 0)) == "12.8" and cuda.first_cuda_for((8, 6)) is None
    assert cuda.cuda_compiles_for("12.8", (12, 0)) and not cuda.cuda_compiles_for("12.5", (12, 0))
    assert not cuda.cuda_compiles_for("13.0", (7, 0))  # CUDA 13 dropped Volta


def test_onednn_policy_in_one_place() -> None:
    assert onednn.linux_x86_triggers({"avx2", "avx512_vnni", "amx_tile"}) == ["AVX512_VNNI", "AMX_TILE"]
    assert onednn.linux_x86_triggers({"avx2", "fma"}) == []
    assert [onednn.env_setting(v) for v in ("1", "TRUE", "0", "off", None)] == [True, True, False, None, None]
    from envdoctor.resources import load_recipe

    assert "onednn_default_features" not in load_recipe("tf_build.json")


def test_python_and_cuda_per_release_live_once() -> None:
    """tf_build.json's rows carry no Python range or CUDA of their own: build_releases adds the wheel table's."""
    from envdoctor.knowledge import releases
    from envdoctor.resources import load_recipe

    raw = load_recipe("tf_build.json")["releases"]
    assert all(not set(releases.SHARED) & set(row) for row in raw.values())
    built, official = releases.build_releases(), load_recipe("tf_releases.json")["releases"]
    assert set(built) <= set(official)
    for name, row in built.items():
        assert (row["python"], row["cuda"]) == (official[name]["python"], official[name]["cuda"]), name
        assert row["cudnn"].startswith(official[name]["cudnn"]), name  # the build's exact pin, the wheel's major.minor


RECIPES = sorted((PACKAGE.parent / "recipes").glob("*.json"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_each_recipe_holds_to_its_schema(path: Path) -> None:
    """recipes/schemas/<name>.schema.json: the shape the typed readers (envdoctor/knowledge/) rely on."""
    import json

    import jsonschema

    schema = json.loads((path.parent / "schemas" / f"{path.stem}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    recipe = json.loads(path.read_text(encoding="utf-8"))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(recipe)
    ]
    assert errors == []


def test_every_schema_has_its_recipe() -> None:
    schemas = {p.name.removesuffix(".schema.json") for p in (PACKAGE.parent / "recipes/schemas").glob("*.json")}
    assert schemas == {p.stem for p in RECIPES}
