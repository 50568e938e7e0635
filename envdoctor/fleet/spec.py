"""--expect's reference: a node's report (`check --json` / `--save`), or a spec written by `fleet --write-spec`.

A spec is a small JSON object a person may edit: drop a field and it is no longer compared.

    {"kind": "envdoctor-fleet-spec", "schema_version": 1, "driver": "580.95.05", "cuda": "12.8.93",
     "cudnn": "9.10.2", "tensorflow": "2.20.0", "gpu_count": 8}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envdoctor.errors import UsageError
from envdoctor.fleet.judge import Reference
from envdoctor.fleet.load import Skipped, parse_report
from envdoctor.fleet.node import Field, Value
from envdoctor.jsonload import load_json_input

SPEC_KIND = "envdoctor-fleet-spec"
SPEC_SCHEMA = 1
_META = ("kind", "schema_version", "from")


def load_reference(path: Path) -> Reference:
    """The reference in `path`; anything unusable is a usage error (one line, exit 2): a gate must not pass
    because its reference could not be read."""
    data = load_json_input(path, "--expect")
    if isinstance(data, dict) and data.get("kind") == SPEC_KIND:
        return Reference(_spec_values(data, path), str(path))
    node = parse_report(data, str(path))
    if isinstance(node, Skipped):
        raise UsageError(f"--expect {path}: {node.reason} ({node.detail})")
    return Reference(dict(node.values), str(path))


def _spec_values(data: dict[str, Any], path: Path) -> dict[Field, Value]:
    if data.get("schema_version") != SPEC_SCHEMA:
        raise UsageError(
            f"--expect {path}: spec schema_version {data.get('schema_version')!r}, this envdoctor reads {SPEC_SCHEMA}"
        )
    known = {f.value: f for f in Field}
    unknown = [k for k in data if k not in known and k not in _META]
    if unknown:  # a typo ("drivers") would otherwise drop that field from the gate without a word
        raise UsageError(
            f"--expect {path}: unknown field(s) {', '.join(map(repr, unknown))}; a spec has {', '.join(known)}"
        )
    values: dict[Field, Value] = {}
    for key, value in data.items():
        if key in known:
            values[known[key]] = _checked(known[key], value, path)
    return values


def _checked(f: Field, value: Any, path: Path) -> Value:
    if value is None:
        return None
    if f is Field.GPU_COUNT:
        if type(value) is not int or value < 0:
            raise UsageError(f"--expect {path}: gpu_count must be a whole number, not {value!r}")
        return value
    if not isinstance(value, str):
        raise UsageError(f"--expect {path}: {f.value} must be a version string or null, not {value!r}")
    return value


def spec_document(expected: dict[Field, Value], origin: str) -> dict[str, Any]:
    """The spec of --write-spec: the fleet's majority (one report: that node's values)."""
    return {
        "kind": SPEC_KIND,
        "schema_version": SPEC_SCHEMA,
        "from": origin,
        **{f.value: expected[f] for f in Field if f in expected},
    }
