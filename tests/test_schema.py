"""The published JSON Schemas (docs/check.schema.json, docs/snapshot.schema.json) are current and hold for real
outputs: `check --json` on the real H100 capture and on every fake root (tests/fixtures/*/README.md say where each
came from), and `check --save` snapshots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from envdoctor import schema

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
ROOTS = sorted((REPO / "tests/fixtures/roots").glob("*/root")) + [REPO / "tests/fixtures/h100-firecracker/idle/root"]
SNAPSHOTS = sorted((REPO / "tests/fixtures/h100-firecracker/envdoctor").glob("*facts.json"))


def _validator(name: str) -> jsonschema.protocols.Validator:
    document = json.loads((DOCS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


@pytest.mark.parametrize("name", sorted(schema.SCHEMAS))
def test_published_schema_is_current(name: str) -> None:
    assert (DOCS / name).read_text() == schema.render(schema.SCHEMAS[name]()), (
        f"docs/{name} is stale: run python -m envdoctor.schema"
    )


def _check_json(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "envdoctor", "check", "--json", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "args",
    [[], *(["--root", str(r)] for r in ROOTS), *(["--from", str(s)] for s in SNAPSHOTS)],
    ids=lambda a: Path(a[-1]).parent.name if a else "host",
)
def test_check_json_holds_to_its_schema(args: list[str]) -> None:
    document = _check_json(*args)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator("check.schema.json").iter_errors(document)]
    assert errors == []


def test_saved_snapshots_hold_to_theirs(tmp_path: Path) -> None:
    saved = tmp_path / "s.json"
    _check_json("--root", str(ROOTS[0]), "--save", str(saved))
    validator = _validator("snapshot.schema.json")
    for path in [saved, *SNAPSHOTS]:
        assert [e.message for e in validator.iter_errors(json.loads(path.read_text()))] == [], path


def test_the_schema_catches_a_wrong_shape() -> None:
    document = _check_json("--root", str(ROOTS[0]))
    document["facts"]["gpus"] = "none"
    document["findings"][0]["severity"] = "fatal"
    messages = {e.message for e in _validator("check.schema.json").iter_errors(document)}
    assert any("'none' is not of type 'array'" in m for m in messages)
    assert any("'fatal' is not one of" in m for m in messages)


def test_closed_sets_are_enums_in_the_schema_and_refused_by_the_loader() -> None:
    from envdoctor.facts import Facts, from_dict

    document = _check_json("--root", str(ROOTS[0]))
    document["facts"]["system"]["package_manager"] = "apk"  # not one envdoctor writes commands for
    errors = list(_validator("check.schema.json").iter_errors(document))
    assert [list(e.absolute_path) for e in errors] == [["facts", "system", "package_manager"]]
    assert "'apk' is not one of ['apt', 'dnf', 'yum', 'zypper', 'pacman']" in str(errors[0].context)
    with pytest.raises(TypeError, match="Facts.system.package_manager: expected one of"):
        from_dict(Facts, document["facts"])
