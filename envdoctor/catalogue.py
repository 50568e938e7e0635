"""The catalogue of finding codes (recipes/findings.json): what each code means, why it matters, how to fix it.

Finding codes are a public contract: scripts match on them and users search for them. The catalogue is their one
home: `envdoctor explain CODE` prints a code's page, `python -m envdoctor.catalogue` writes docs/findings.md, and
tests/test_catalogue.py holds the checks and the catalogue to each other both ways. A code never changes meaning;
one no longer emitted stays, marked retired. Only `explain` and the docs read this file: `check` never loads it,
so its start-up time does not grow with the catalogue.
"""

from __future__ import annotations

import difflib
import sys
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, cast, get_args

from envdoctor.resources import load_recipe

SeverityName = Literal["ok", "info", "warning", "error"]
SEVERITY_NAMES: tuple[SeverityName, ...] = get_args(SeverityName)
RECIPE = "findings.json"


@dataclass(frozen=True)
class Entry:
    """One code's page."""

    code: str
    severity: tuple[SeverityName, ...]  # every severity the code can carry, lowest first
    title: str
    meaning: str
    why: str
    fix: str
    sources: tuple[str, ...]
    retired: bool

    @property
    def category(self) -> str:
        return self.code.split(".", 1)[0]


def _entry(code: str, raw: dict[str, object]) -> Entry:
    severity = cast("list[str]", raw["severity"])
    unknown = [s for s in severity if s not in SEVERITY_NAMES]
    if unknown or not severity:
        raise ValueError(f"{RECIPE}: {code}: severity {severity} is not a non-empty list of {SEVERITY_NAMES}")
    return Entry(
        code=code,
        severity=tuple(sorted(cast("list[SeverityName]", severity), key=SEVERITY_NAMES.index)),
        title=str(raw["title"]),
        meaning=str(raw["meaning"]),
        why=str(raw["why"]),
        fix=str(raw["fix"]),
        sources=tuple(cast("list[str]", raw["sources"])),
        retired=bool(raw.get("retired", False)),
    )


@cache
def entries() -> dict[str, Entry]:
    """Every catalogued code, retired ones included, sorted by code."""
    codes = cast("dict[str, dict[str, object]]", load_recipe(RECIPE)["codes"])
    return {code: _entry(code, raw) for code, raw in sorted(codes.items())}


def lookup(code: str) -> Entry | None:
    return entries().get(code)


def with_prefix(prefix: str) -> list[Entry]:
    """Codes under a prefix: `driver` and `driver.` both give the driver.* codes, `driver.too` the too-old ones."""
    return [e for e in entries().values() if e.code.startswith(prefix)]


def suggest(code: str) -> str | None:
    """The nearest catalogued code, for a did-you-mean."""
    near = difflib.get_close_matches(code, list(entries()), n=1, cutoff=0.6)
    return near[0] if near else None


def page(entry: Entry) -> str:
    """`envdoctor explain CODE`: the page as plain text."""
    head = f"{entry.code}  ({'/'.join(entry.severity)}){'  RETIRED: no longer emitted' if entry.retired else ''}"
    parts = [head, entry.title]
    for label, text in (("What it means", entry.meaning), ("Why it matters", entry.why), ("How to fix", entry.fix)):
        parts += ["", textwrap.fill(f"{label}: {text}", width=100, break_on_hyphens=False, break_long_words=False)]
    if entry.sources:
        parts += ["", "Sources:", *(f"  {s}" for s in entry.sources)]
    return "\n".join(parts)


def listing(found: list[Entry]) -> str:
    """`envdoctor explain [PREFIX]`: one line per code, grouped by category."""
    width = max(len(e.code) for e in found)
    lines: list[str] = []
    for e in found:
        if lines and not lines[-1].startswith(f"{e.category}."):
            lines.append("")
        lines.append(f"{e.code:<{width}}  {e.title}{'  (retired)' if e.retired else ''}")
    return "\n".join(lines)


def markdown() -> str:
    """docs/findings.md: every code's page, generated from the catalogue."""
    out = [
        "# Finding codes",
        "",
        "<!-- generated from recipes/findings.json by `python -m envdoctor.catalogue`; do not edit -->",
        "",
        "Every code `envdoctor check` can report. A code never changes meaning; a retired one stays listed. "
        "`envdoctor explain CODE` prints the same page.",
        "",
    ]
    out += ["| code | severity | title |", "|---|---|---|"]
    out += [
        f"| [`{e.code}`](#{_anchor(e.code)}) | {'/'.join(e.severity)} | {e.title}{' (retired)' if e.retired else ''} |"
        for e in entries().values()
    ]
    for e in entries().values():
        out += [
            "",
            f"## {e.code}",
            "",
            f"**{e.title}** — severity: {'/'.join(e.severity)}"
            + (" — **retired**: no longer emitted" if e.retired else ""),
            "",
            f"**What it means.** {e.meaning}",
            "",
            f"**Why it matters.** {e.why}",
            "",
            f"**How to fix.** {e.fix}",
        ]
        if e.sources:
            out += ["", "Sources: " + ", ".join(_link(s) for s in e.sources)]
    return "\n".join(out) + "\n"


def _anchor(code: str) -> str:
    """GitHub's heading anchor: lower case, punctuation other than '-' and '_' dropped."""
    return "".join(c for c in code.lower() if c.isalnum() or c in "-_")


def _link(source: str) -> str:
    return f"<{source}>" if source.startswith("https://") else f"[{source}]({'../' + source})"


def main(argv: list[str]) -> int:
    """Write docs/findings.md (or the file given)."""
    target = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "docs" / "findings.md"
    target.write_text(markdown(), encoding="utf-8")
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
