"""--markdown: a report to paste into a GitHub issue."""

from __future__ import annotations

import re

from envdoctor.checks import CATEGORIES
from envdoctor.doctor import Diagnosis
from envdoctor.report.console import printable
from envdoctor.report.human import CATEGORY_MARKS, headline

_ICON = {"ok": "✅", "info": "ℹ️", "warning": "⚠️", "error": "❌"}


def render(diagnosis: Diagnosis, origin: str | None = None) -> str:
    facts = diagnosis.facts
    lines = [f"### envdoctor check ({facts.envdoctor_version})", "", _one_line(headline(facts)), ""]
    if origin:  # a --from report: say whose machine it describes
        lines[-1:-1] = ["", _one_line(origin)]
    lines += ["| | Category | Summary |", "|---|---|---|"]
    groups = diagnosis.by_category()
    for category, findings in groups.items():
        worst = diagnosis.worst(category).value
        lines.append(f"| {CATEGORY_MARKS[worst]} | {CATEGORIES.get(category, category)} | {_cell(findings[0].title)} |")
    lines += ["", "#### Findings", ""]
    for f in diagnosis.findings:
        if f.severity.value == "ok":
            continue
        lines.append(f"- {_ICON[f.severity.value]} **{_one_line(f.title)}** (`{f.code}`)")
        lines += [f"  - {_one_line(e)}" for e in f.evidence]
        if f.fix:
            fence = _fence(f.fix)
            lines += ["  - Fix:", "", f"    {fence}bash", *[f"    {x}" for x in f.fix.splitlines()], f"    {fence}", ""]
    lines += ["", f"**{diagnosis.summary()['text']}**", ""]
    return printable("\n".join(lines))


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _one_line(text: str) -> str:
    """A value from the facts stays on its list item: a newline in it would start new Markdown."""
    return " ".join(text.splitlines())


def _fence(code: str) -> str:
    """A code fence longer than any backtick run inside: CommonMark closes a fence only with one as long."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    return "`" * max(3, longest + 1)
