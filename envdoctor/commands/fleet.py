"""`envdoctor fleet REPORT...`: many nodes' check reports in one table, drift marked, optionally gated (--expect)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from envdoctor.errors import UsageError

EXAMPLES = """Examples:

srun --ntasks-per-node=1 --output 'reports/%N.json' --error 'reports/%N.err' envdoctor check --json

envdoctor fleet reports/

envdoctor fleet reports/ --html fleet.html --nodes "$(scontrol show hostnames "$SLURM_JOB_NODELIST")"

envdoctor fleet reports/node01.json --write-spec cluster-spec.json

envdoctor fleet reports/ --expect cluster-spec.json"""


def register(app: typer.Typer) -> None:
    app.command("fleet", epilog=EXAMPLES)(fleet)


def fleet(
    reports: list[Path] = typer.Argument(..., help="check --json / --save files, or folders of them (*.json)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
    markdown: bool = typer.Option(False, "--markdown", help="Markdown for pasting into an issue."),
    html: Optional[Path] = typer.Option(
        None, "--html", metavar="FILE", help="Also write a self-contained HTML page to FILE."
    ),
    expect: Optional[Path] = typer.Option(
        None,
        "--expect",
        help="A node's report or a spec: every node must match its driver, CUDA, cuDNN, TensorFlow and GPU count.",
    ),
    write_spec: Optional[Path] = typer.Option(
        None, "--write-spec", help="Write the majority's values as a spec for --expect."
    ),
    nodes: Optional[str] = typer.Option(
        None,
        "--nodes",
        help="Hosts that must have a report (comma- or space-separated): the others are reported missing.",
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings and drift too."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Every host of every finding, and the fixes."),
) -> None:
    """One table of many nodes' `envdoctor check` reports: drift from the majority marked, findings by code.

    Exit codes: 0 fine; 1 error findings, a report that could not be used or is missing, a node that fails
    --expect (warnings and drift too with --strict); 2 usage error.
    """
    from envdoctor.fleet import judge, load, render, spec

    if as_json and markdown:
        raise UsageError("--json and --markdown cannot be combined")
    reference = spec.load_reference(expect) if expect else None
    paths = load.report_paths(reports)
    loaded, skipped = load.load_reports(paths)
    result = judge.judge(loaded, skipped, reference, _host_list(nodes), strict)
    if write_spec:
        _write(write_spec, "--write-spec", render_spec(result))
    if html:
        _write(html, "--html", render.html(result))
    from envdoctor.report.console import reader_may_leave

    with reader_may_leave():  # `fleet reports/ | head`: the exit code stays the verdict's
        if as_json:
            from envdoctor.report.jsonout import dumps

            sys.stdout.write(dumps(render.fleet_dict(result)) + "\n")
        elif markdown:
            sys.stdout.write(render.markdown(result) + "\n")
        else:
            render.print_text(result, verbose)
    raise typer.Exit(result.exit_code)


def _host_list(text: str | None) -> list[str]:
    """`node01,node02` or `scontrol show hostnames` output (one per line)."""
    if text is None:
        return []
    hosts = text.replace(",", " ").split()
    if not hosts:
        raise UsageError("--nodes names no host")
    return hosts


def render_spec(result) -> str:
    from envdoctor.fleet.spec import spec_document
    from envdoctor.report.jsonout import dumps

    if not result.nodes:
        raise UsageError("--write-spec: no usable report to take the values from")
    if result.no_majority:
        fields = ", ".join(f.label for f in result.no_majority)
        raise UsageError(f"--write-spec: the reports have no majority for {fields}; give the one node to copy")
    origin = result.nodes[0].path if len(result.nodes) == 1 else f"majority of {len(result.nodes)} nodes"
    return dumps(spec_document(result.expected, origin)) + "\n"


def _write(path: Path, option: str, text: str) -> None:
    from envdoctor import atomic

    path = path.expanduser()
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a directory")
    try:
        atomic.write_text(path, text)
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror or exc}") from None
