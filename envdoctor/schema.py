"""The published JSON Schema of `check --json` and of `check --save` snapshots, derived from the facts' dataclasses.

One source: the schema is built from envdoctor/facts.py's type hints, so a new fact is in the schema the moment it
is in the facts; `python -m envdoctor.schema` writes docs/check.schema.json and docs/snapshot.schema.json, and a
test fails when those files are stale. The documents carry `schema_version` (facts.SCHEMA_VERSION): a consumer
(a CI pipeline, `envdoctor fleet`) checks it before trusting the shape.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from envdoctor.facts import SCHEMA_VERSION, Facts, _type_hints

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SEVERITIES = ["ok", "info", "warning", "error"]


def type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one Python type as facts.to_dict() writes it; dataclasses go to `$defs` once."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return {}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [type_schema(arg, defs) for arg in typing.get_args(tp)]}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin is list:
        (item,) = typing.get_args(tp)
        return {"type": "array", "items": type_schema(item, defs)}
    if origin is dict:
        _, item = typing.get_args(tp)
        return {"type": "object", "additionalProperties": type_schema(item, defs)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [member.value for member in tp]}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # a placeholder first: a dataclass that refers to itself must not recurse forever
            hints = _type_hints(tp)
            defs[name] = {
                "type": "object",
                "description": (tp.__doc__ or "").split("\n\n")[0].strip() if tp.__doc__ else "",
                "properties": {f.name: type_schema(hints[f.name], defs) for f in dataclasses.fields(tp)},
                "required": [f.name for f in dataclasses.fields(tp)],
                "additionalProperties": False,
            }
            if not defs[name]["description"]:
                del defs[name]["description"]
        return {"$ref": f"#/$defs/{name}"}
    simple = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"no JSON Schema for {tp!r}")


def snapshot_schema() -> dict[str, Any]:
    """What `check --save` writes and `check --from` reads: the facts alone. No field is required: a snapshot saved
    by an earlier envdoctor of the same schema_version lacks the facts added since, which load as absent."""
    defs: dict[str, Any] = {}
    root = type_schema(Facts, defs)
    for definition in defs.values():
        definition.pop("required", None)
    return {
        "$schema": DRAFT,
        "$id": "https://envdoctor.invalid/schema/snapshot.schema.json",
        "title": f"envdoctor facts snapshot (schema_version {SCHEMA_VERSION})",
        **root,
        "$defs": defs,
    }


def check_schema() -> dict[str, Any]:
    """What `check --json` writes: schema_version, envdoctor_version, facts, findings, summary."""
    defs: dict[str, Any] = {}
    facts = type_schema(Facts, defs)
    finding = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": r"^[a-z0-9]+(\.[a-z0-9-]+)+$"},
            "category": {"type": "string"},
            "severity": {"enum": SEVERITIES},
            "title": {"type": "string"},
            "evidence": {"type": "array", "items": {"type": "string"}},
            "fix": {"type": ["string", "null"]},
        },
        "required": ["code", "category", "severity", "title", "evidence", "fix"],
        "additionalProperties": False,
    }
    count = {"type": "integer", "minimum": 0}
    summary = {
        "type": "object",
        "properties": {
            "errors": count,
            "warnings": count,
            "infos": count,
            "oks": count,
            "categories_with_issues": {"type": "array", "items": {"type": "string"}},
            "exit_code": {"enum": [0, 1, 3]},
            "text": {"type": "string"},
            "next_step": {
                "anyOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "properties": {"code": {"type": "string"}, "fix": {"type": "string"}},
                        "required": ["code", "fix"],
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "required": ["errors", "warnings", "infos", "oks", "categories_with_issues", "exit_code", "text"],
        "additionalProperties": False,
    }
    return {
        "$schema": DRAFT,
        "$id": "https://envdoctor.invalid/schema/check.schema.json",
        "title": f"envdoctor check --json (schema_version {SCHEMA_VERSION})",
        "type": "object",
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "envdoctor_version": {"type": "string"},
            "facts": facts,
            "findings": {"type": "array", "items": {"$ref": "#/$defs/Finding"}},
            "summary": {"$ref": "#/$defs/Summary"},
        },
        "required": ["schema_version", "envdoctor_version", "facts", "findings", "summary"],
        "additionalProperties": False,
        "$defs": {**defs, "Finding": finding, "Summary": summary},
    }


SCHEMAS = {"check.schema.json": check_schema, "snapshot.schema.json": snapshot_schema}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Write the schemas into the folder given (default: docs/ of this checkout)."""
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "docs"
    for name, build in SCHEMAS.items():
        (folder / name).write_text(render(build()), encoding="utf-8")
        print(folder / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
