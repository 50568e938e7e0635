"""`envdoctor explain [CODE|PREFIX]`: a finding code's page from the catalogue, or the codes under a prefix."""

from __future__ import annotations

from typing import Optional

import typer

from envdoctor.errors import UsageError

EXAMPLES = """Examples:

envdoctor explain driver.too-old-for-tf

envdoctor explain driver

envdoctor explain"""


def register(app: typer.Typer) -> None:
    app.command(
        "explain",
        help="Explain a finding code (what it means, why it matters, how to fix it), or list the codes under a prefix.",
        epilog=EXAMPLES,
    )(explain)


def explain(
    code: Optional[str] = typer.Argument(
        None, metavar="[CODE|PREFIX]", help="A finding code (driver.nouveau) or a prefix (driver); none: every code."
    ),
) -> None:
    from envdoctor import catalogue
    from envdoctor.report.console import reader_may_leave

    query = (code or "").strip()
    entry = catalogue.lookup(query)
    found = catalogue.with_prefix(query) if entry is None else []
    if entry is None and not found:
        near = catalogue.suggest(query)
        hint = f": did you mean {near}?" if near else " (envdoctor explain lists every code)"
        raise UsageError(f"unknown finding code {query!r}{hint}")  # repr: control characters escaped
    with reader_may_leave():  # `explain | head` keeps exit code 0
        typer.echo(catalogue.page(entry) if entry else catalogue.listing(found))
