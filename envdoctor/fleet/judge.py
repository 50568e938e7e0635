"""The fleet's verdict, pure: one report per host (the newest), the majority, drift, the findings by code, the gate
of --expect and the exit code. No I/O except file times, the last tie-break between two reports of a host."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from envdoctor.fleet.load import Skipped
from envdoctor.fleet.node import SEVERITY_RANK, Field, Node, Severity, Value

EXIT_OK, EXIT_PROBLEMS = 0, 1


@dataclass(frozen=True)
class Duplicate:
    """Two or more reports from one host: the newest (by collected_at) is used, the others are named."""

    host: str
    kept: str
    dropped: tuple[str, ...]


@dataclass
class FindingGroup:
    code: str
    severity: Severity  # the worst any node has for this code
    title: str  # as the first node (in host order) words it; titles carry per-node numbers
    evidence: tuple[str, ...]
    fix: str | None
    hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reference:
    """What every node must have (--expect): the fields present are compared, None meaning 'absent'."""

    values: dict[Field, Value]
    origin: str


@dataclass
class Fleet:
    nodes: list[Node]
    skipped: list[Skipped]
    duplicates: list[Duplicate]
    missing: list[str]  # hosts named by --nodes without a report
    expected: dict[Field, Value]  # the reference's values, else the majority's
    no_majority: list[Field]  # fields where the top value is shared by a tie: every node is marked
    drift: dict[str, list[Field]]  # host -> the fields where it differs from `expected`
    findings: list[FindingGroup]
    reference: Reference | None = None
    strict: bool = False

    def count(self, severity: Severity) -> int:
        return sum(node.count(severity) for node in self.nodes)

    @property
    def gate_failures(self) -> list[str]:
        return sorted(self.drift, key=natural_key) if self.reference else []

    @property
    def exit_code(self) -> int:
        """1 on error findings, an unusable or missing report, or a node that fails --expect; warnings and drift
        (without --expect) only with --strict."""
        if self.count("error") or self.skipped or self.missing or self.gate_failures:
            return EXIT_PROBLEMS
        if self.strict and (self.count("warning") or self.drift):
            return EXIT_PROBLEMS
        return EXIT_OK

    def summary(self) -> dict[str, object]:
        return {
            "nodes": len(self.nodes),
            "skipped": len(self.skipped),
            "missing": len(self.missing),
            "duplicates": len(self.duplicates),
            "drifting_nodes": len(self.drift),
            "errors": self.count("error"),
            "warnings": self.count("warning"),
            "gate": None
            if self.reference is None
            else not self.gate_failures and not self.skipped and not self.missing,
            "exit_code": self.exit_code,
        }


def judge(
    nodes: list[Node],
    skipped: list[Skipped],
    reference: Reference | None = None,
    expected_hosts: list[str] | None = None,
    strict: bool = False,
) -> Fleet:
    kept, duplicates = newest_per_host(nodes)
    kept.sort(key=lambda n: natural_key(n.host))
    if reference is not None:
        expected, ties = dict(reference.values), list[Field]()
    else:
        expected, ties = majority(kept)
    drift = {n.host: fields for n in kept if (fields := drifting(n, expected, ties))}
    return Fleet(
        nodes=kept,
        skipped=skipped,
        duplicates=duplicates,
        missing=missing_hosts(expected_hosts or [], kept),
        expected=expected,
        no_majority=ties,
        drift=drift,
        findings=group_findings(kept),
        reference=reference,
        strict=strict,
    )


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """node2 before node10."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part)


def newest_per_host(nodes: list[Node]) -> tuple[list[Node], list[Duplicate]]:
    by_host: dict[str, list[Node]] = {}
    for node in nodes:
        by_host.setdefault(node.host, []).append(node)
    kept, duplicates = [], []
    for host, reports in by_host.items():
        reports.sort(key=_age_key, reverse=True)
        kept.append(reports[0])
        if len(reports) > 1:
            duplicates.append(Duplicate(host, reports[0].path, tuple(r.path for r in reports[1:])))
    return kept, duplicates


def _age_key(node: Node) -> tuple[float, float, str]:
    """collected_at first (the time the node was examined); the file's time, then its path, break ties."""
    try:
        stamp = datetime.fromisoformat(node.collected_at or "")
        collected = (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()
    except ValueError:
        collected = float("-inf")
    try:
        modified = os.stat(node.path).st_mtime
    except OSError:
        modified = float("-inf")
    return collected, modified, node.path


def majority(nodes: list[Node]) -> tuple[dict[Field, Value], list[Field]]:
    """The most common value of each field; a field whose top count is shared has no majority."""
    expected: dict[Field, Value] = {}
    ties: list[Field] = []
    for f in Field:
        ranked = Counter(n.values[f] for n in nodes).most_common(2)
        if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
            ties.append(f)
        elif ranked:
            expected[f] = ranked[0][0]
    return expected, ties


def drifting(node: Node, expected: dict[Field, Value], ties: list[Field]) -> list[Field]:
    return [f for f in Field if f in ties or (f in expected and node.values[f] != expected[f])]


def missing_hosts(expected_hosts: list[str], nodes: list[Node]) -> list[str]:
    """Hosts named by --nodes that sent no report; a short name matches its fully qualified one."""
    have = {n.host for n in nodes} | {n.host.split(".", 1)[0] for n in nodes}
    return [h for h in dict.fromkeys(expected_hosts) if h not in have and h.split(".", 1)[0] not in have]


def group_findings(nodes: list[Node]) -> list[FindingGroup]:
    """Each finding code above ok with the hosts that have it: worst first, then the most widespread."""
    groups: dict[str, FindingGroup] = {}
    for node in nodes:
        for f in node.findings:
            if f.severity == "ok":
                continue
            group = groups.setdefault(f.code, FindingGroup(f.code, f.severity, f.title, f.evidence, f.fix))
            if SEVERITY_RANK[f.severity] > SEVERITY_RANK[group.severity]:
                group.severity = f.severity
            if not group.hosts or group.hosts[-1] != node.host:  # a code twice on one node counts once
                group.hosts.append(node.host)
    return sorted(groups.values(), key=lambda g: (-SEVERITY_RANK[g.severity], -len(g.hosts), g.code))
