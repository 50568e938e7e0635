"""Reading the reports: every file through the bounded JSON loader; one that cannot be used is Skipped, with why.

A `check --json` document brings the node's own findings (judged there, by the envdoctor it ran); a `check --save`
snapshot holds facts only, and is judged here by this envdoctor's checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from envdoctor.errors import UsageError
from envdoctor.facts import SCHEMA_VERSION, Facts, from_dict
from envdoctor.fleet.node import SEVERITY_RANK, Node, NodeFinding, node_from_facts
from envdoctor.jsonload import JsonInputError, load_json_file

SkipReason = Literal["unreadable", "not JSON", "not an envdoctor report", "other schema", "malformed"]


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: SkipReason
    detail: str


def report_paths(arguments: list[Path]) -> list[Path]:
    """Files as given; a folder gives every *.json below it (srun's %N.err files beside them are not reports).
    A path that does not exist, or a folder without any report, is a usage error: it is a mistyped command,
    not a node."""
    paths: list[Path] = []
    for argument in arguments:
        if argument.is_dir():
            found = sorted(p for p in argument.rglob("*.json") if p.is_file())
            if not found:
                raise UsageError(f"{argument}: no *.json report in this folder")
            paths += found
        elif argument.exists():
            paths.append(argument)
        else:
            raise UsageError(f"{argument}: no such file or folder")
    return list(dict.fromkeys(paths))  # a file named twice (a folder and a file in it) is read once


def load_reports(paths: list[Path]) -> tuple[list[Node], list[Skipped]]:
    nodes: list[Node] = []
    skipped: list[Skipped] = []
    for path in paths:
        loaded = load_report(path)
        (nodes if isinstance(loaded, Node) else skipped).append(loaded)  # type: ignore[arg-type]
    return nodes, skipped


def load_report(path: Path) -> Node | Skipped:
    try:
        data = load_json_file(path)
    except OSError as exc:
        return Skipped(str(path), "unreadable", exc.strerror or str(exc))
    except JsonInputError as exc:  # a truncated report (a node that died while writing) lands here
        return Skipped(str(path), "not JSON", str(exc))
    return parse_report(data, str(path))


def parse_report(data: Any, path: str) -> Node | Skipped:
    """A Node from a `check --json` document or a `check --save` snapshot, or why not."""
    document: dict[str, Any] = data if isinstance(data, dict) else {}
    facts = document.get("facts")
    raw: dict[str, Any] = facts if isinstance(facts, dict) else document
    if "system" not in raw or "schema_version" not in raw:
        return Skipped(path, "not an envdoctor report", "no envdoctor facts (schema_version, system) in it")
    # The document's and its facts' schema (they are the same in every report envdoctor writes).
    schemas = [raw["schema_version"]]
    if raw is not document and "schema_version" in document:
        schemas.append(document["schema_version"])
    other = [s for s in schemas if type(s) is not int or s != SCHEMA_VERSION]  # True == 1: bool is no schema
    if other:
        return Skipped(path, "other schema", _schema_detail(other[0]))
    try:
        facts = from_dict(Facts, raw)
        findings = _findings(document["findings"]) if raw is not document and "findings" in document else None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        return Skipped(path, "malformed", str(exc))
    if findings is None:
        return node_from_facts(facts, path, "check --save", _judge(facts))
    return node_from_facts(facts, path, "check --json", findings)


def _schema_detail(schema: Any) -> str:
    if isinstance(schema, int) and not isinstance(schema, bool):
        age = "older" if schema < SCHEMA_VERSION else "newer"
        action = "run envdoctor check on that node again with this version" if age == "older" else "upgrade envdoctor"
        return f"schema_version {schema} is {age} than this envdoctor's ({SCHEMA_VERSION}): {action}"
    return f"schema_version {schema!r} is not a number"


def _findings(raw: Any) -> list[NodeFinding]:
    """The findings of a `check --json` document, type-checked: a wrong type raises TypeError (malformed)."""
    if not isinstance(raw, list):
        raise TypeError("findings: expected a list")
    return [_finding(item, i) for i, item in enumerate(raw)]


def _finding(item: Any, index: int) -> NodeFinding:
    where = f"findings[{index}]"
    if not isinstance(item, dict):
        raise TypeError(f"{where}: expected an object")
    code, severity, title = item.get("code"), item.get("severity"), item.get("title")
    if not isinstance(code, str) or not isinstance(title, str) or severity not in SEVERITY_RANK:
        raise TypeError(f"{where}: needs a code, a title and a severity (ok, info, warning, error)")
    evidence, fix = item.get("evidence") or [], item.get("fix")
    if not isinstance(evidence, list) or not all(isinstance(e, str) for e in evidence):
        raise TypeError(f"{where}.evidence: expected a list of strings")
    if fix is not None and not isinstance(fix, str):
        raise TypeError(f"{where}.fix: expected a string")
    return NodeFinding(code, severity, title, tuple(evidence), fix)


def _judge(facts: Facts) -> list[NodeFinding]:
    """A snapshot has no findings: this envdoctor's checks judge it, as `check --from` would."""
    from envdoctor.doctor import diagnose

    return [NodeFinding(f.code, f.severity.value, f.title, tuple(f.evidence), f.fix) for f in diagnose(facts).findings]
