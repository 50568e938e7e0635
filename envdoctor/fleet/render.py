"""The fleet's renderings: one JSON document, Markdown, the terminal table (rich) and one self-contained HTML page
(jinja2, templates/fleet/report.html.j2). All of them show the same rows, drift and findings."""

from __future__ import annotations

from typing import Any

from envdoctor import __version__
from envdoctor.fleet.judge import Fleet, natural_key
from envdoctor.fleet.node import Field, Node, Value
from envdoctor.report.console import printable

FLEET_KIND = "envdoctor-fleet"
FLEET_SCHEMA = 1
DRIFT_MARK = "≠"  # before a value that differs from the majority (or the reference): visible without colour
COLUMNS = ("host", "GPUs", "driver", "CUDA", "cuDNN", "TensorFlow (build)", "Python", "errors", "warnings")
_ICON = {"error": "✗", "warning": "!", "info": "i"}


def shown(value: Value) -> str:
    return "—" if value is None else str(value)


def cells(node: Node, fleet: Fleet) -> list[tuple[str, bool]]:
    """The row of a node: (text, drifting) per column."""
    drift = set(fleet.drift.get(node.host, []))
    tf = shown(node.values[Field.TENSORFLOW]) + (f" ({node.tf_build})" if node.tf_build else "")
    return [
        (node.host, False),
        (node.gpus, Field.GPU_COUNT in drift),
        *[(shown(node.values[f]), f in drift) for f in (Field.DRIVER, Field.CUDA, Field.CUDNN)],
        (tf, Field.TENSORFLOW in drift),
        (node.python or "—", False),
        (str(node.count("error")), False),
        (str(node.count("warning")), False),
    ]


def expected_line(fleet: Fleet) -> str:
    """`majority: driver 580.95.05, CUDA 12.8.93, …` (or `expected (ref.json): …`), ties named."""
    name = f"expected ({fleet.reference.origin})" if fleet.reference else "majority"
    parts = [f"{f.label} {shown(fleet.expected[f])}" for f in Field if f in fleet.expected]
    parts += [f"{f.label}: no majority" for f in fleet.no_majority]
    return f"{name}: {', '.join(parts) or 'nothing to compare'}"


def headline(fleet: Fleet) -> str:
    counts = (
        (len(fleet.skipped), "skipped"),
        (len(fleet.missing), "missing"),
        (len(fleet.duplicates), "duplicate host(s)"),
    )
    extra = [f"{count} {what}" for count, what in counts if count]
    return f"envdoctor fleet · {len(fleet.nodes)} node(s)" + (f" ({', '.join(extra)})" if extra else "")


def verdict(fleet: Fleet) -> str:
    words = [
        f"{fleet.count('error')} error(s)",
        f"{fleet.count('warning')} warning(s)",
        f"{len(fleet.drift)} node(s) drifting",
    ]
    if fleet.reference:
        failed = len(fleet.gate_failures) + len(fleet.skipped) + len(fleet.missing)
        words.append("gate passed" if not failed else f"gate FAILED ({failed} node(s) or report(s))")
    return ", ".join(words) + f" (exit {fleet.exit_code})."


def drift_details(fleet: Fleet) -> list[str]:
    """`node07: driver 570.86.15 (majority 580.95.05)` for each drifting node."""
    base = "expected" if fleet.reference else "majority"
    by_host = {n.host: n for n in fleet.nodes}
    lines = []
    for host, fields in sorted(fleet.drift.items(), key=lambda item: natural_key(item[0])):
        parts = [
            f"{f.label} {shown(by_host[host].values[f])}"
            + (f" ({base} {shown(fleet.expected[f])})" if f in fleet.expected else " (no majority)")
            for f in fields
        ]
        lines.append(f"{host}: {', '.join(parts)}")
    return lines


def problems(fleet: Fleet) -> list[str]:
    """The reports that could not be used, the hosts without one, the hosts with two: never silently dropped."""
    lines = [f"skipped {s.path}: {s.reason} ({s.detail})" for s in fleet.skipped]
    lines += [f"missing: no report from {host}" for host in fleet.missing]
    lines += [
        f"duplicate: {d.host} has {len(d.dropped) + 1} reports; the newest, {d.kept}, is used "
        f"(ignored: {', '.join(d.dropped)})"
        for d in fleet.duplicates
    ]
    return lines


# ------------------------------------------------------------------------------------------------ JSON


def fleet_dict(fleet: Fleet) -> dict[str, Any]:
    return {
        "kind": FLEET_KIND,
        "schema_version": FLEET_SCHEMA,
        "envdoctor_version": __version__,
        "reference": fleet.reference.origin if fleet.reference else None,
        "expected": {f.value: fleet.expected[f] for f in Field if f in fleet.expected},
        "no_majority": [f.value for f in fleet.no_majority],
        "nodes": [_node_dict(n, fleet) for n in fleet.nodes],
        "findings": [
            {
                "code": g.code,
                "severity": g.severity,
                "title": g.title,
                "evidence": list(g.evidence),
                "fix": g.fix,
                "hosts": g.hosts,
            }
            for g in fleet.findings
        ],
        "skipped": [{"path": s.path, "reason": s.reason, "detail": s.detail} for s in fleet.skipped],
        "missing": fleet.missing,
        "duplicates": [{"host": d.host, "kept": d.kept, "ignored": list(d.dropped)} for d in fleet.duplicates],
        "gate_failures": fleet.gate_failures,
        "summary": fleet.summary(),
    }


def _node_dict(node: Node, fleet: Fleet) -> dict[str, Any]:
    return {
        "host": node.host,
        "path": node.path,
        "source": node.source,
        "collected_at": node.collected_at,
        "envdoctor_version": node.envdoctor_version,
        "gpus": node.gpus,
        **{f.value: node.values[f] for f in Field},
        "tf_build": node.tf_build,
        "python": node.python,
        "errors": node.count("error"),
        "warnings": node.count("warning"),
        "infos": node.count("info"),
        "drift": [f.value for f in fleet.drift.get(node.host, [])],
        "findings": sorted({f.code for f in node.findings if f.severity != "ok"}),
    }


# -------------------------------------------------------------------------------------------- Markdown


def markdown(fleet: Fleet) -> str:
    lines = [
        f"### {headline(fleet)}",
        "",
        _md(expected_line(fleet)),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for node in fleet.nodes:
        row = [f"**{DRIFT_MARK} {_md(text)}**" if drifting else _md(text) for text, drifting in cells(node, fleet)]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"{DRIFT_MARK} marks a value that differs from the {_base(fleet)}.", ""]
    if fleet.drift:
        lines += ["#### Drift", "", *[f"- {_md(line)}" for line in drift_details(fleet)], ""]
    if fleet.findings:
        lines += ["#### Findings", ""]
        lines += [
            f"- **{g.severity}** `{g.code}` on {len(g.hosts)} node(s): {_md(', '.join(g.hosts))}: {_md(g.title)}"
            for g in fleet.findings
        ]
        lines.append("")
    if problems(fleet):
        lines += ["#### Reports", "", *[f"- {_md(line)}" for line in problems(fleet)], ""]
    lines += [f"**{verdict(fleet)}**", ""]
    return printable("\n".join(lines))


def _base(fleet: Fleet) -> str:
    return f"reference ({fleet.reference.origin})" if fleet.reference else "majority"


def _md(text: str) -> str:
    """One table cell or list item: no newline, no column break."""
    return " ".join(text.splitlines()).replace("|", "\\|")


# ---------------------------------------------------------------------------------------------- terminal


def print_text(fleet: Fleet, verbose: bool = False) -> None:
    from rich.table import Table
    from rich.text import Text

    from envdoctor.report.console import make_console

    console = make_console(markup=False)  # host names and versions come from files: text, never markup
    console.print(printable(headline(fleet)), soft_wrap=True)
    console.print(printable(expected_line(fleet)), soft_wrap=True)
    table = Table()
    for column in COLUMNS:
        table.add_column(column, overflow="fold", justify="right" if column in ("errors", "warnings") else "left")
    for node in fleet.nodes:
        table.add_row(
            *(
                Text(f"{DRIFT_MARK} {printable(text)}", style="bold red") if drifting else Text(printable(text))
                for text, drifting in cells(node, fleet)
            )
        )
    console.print(table)
    if fleet.drift:
        console.print(f"{DRIFT_MARK} marks a value that differs from the {printable(_base(fleet))}:")
        for line in drift_details(fleet):
            console.print(f"  {printable(line)}", soft_wrap=True)
    _print_findings(console, fleet, verbose)
    for line in problems(fleet):
        console.print(Text(printable(line), style="yellow"), soft_wrap=True)
    console.print(verdict(fleet), style="bold")


def _print_findings(console: Any, fleet: Fleet, verbose: bool) -> None:
    if not fleet.findings:
        return
    console.print("Findings:")
    for g in fleet.findings:
        hosts = g.hosts if verbose or len(g.hosts) <= 8 else [*g.hosts[:8], f"… (+{len(g.hosts) - 8})"]
        console.print(
            f"[{_ICON.get(g.severity, '?')}] {g.code} on {len(g.hosts)} node(s): {printable(', '.join(hosts))}",
            soft_wrap=True,
        )
        console.print(f"    {printable(g.title)}", soft_wrap=True)
        if verbose and g.fix:
            console.print("    fix: " + printable(g.fix).replace("\n", "\n         "), soft_wrap=True)


# -------------------------------------------------------------------------------------------------- HTML


def html(fleet: Fleet) -> str:
    """One page, no network: CSS and the sorting script are inline; every value is escaped by jinja2."""
    import jinja2

    from envdoctor.resources import templates_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "fleet")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    rows = [
        {
            "cells": [(printable(text), drifting) for text, drifting in cells(node, fleet)],
            "findings": sorted({f.code for f in node.findings if f.severity != "ok"}),
            "errors": node.count("error"),
        }
        for node in fleet.nodes
    ]
    return env.get_template("report.html.j2").render(
        headline=headline(fleet),
        expected=expected_line(fleet),
        columns=COLUMNS,
        rows=rows,
        findings=fleet.findings,
        drift=drift_details(fleet),
        problems=problems(fleet),
        verdict=verdict(fleet),
        mark=DRIFT_MARK,
        base=_base(fleet),
        anchor=anchor,
    )


def anchor(code: str) -> str:
    """An id for a finding code (codes are dotted words: `gpu.memory-in-use`)."""
    return "finding-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in code)
