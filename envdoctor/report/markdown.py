"""--markdown: a report to paste into a GitHub issue."""

from __future__ import annotations

from envdoctor.checks import CATEGORIES
from envdoctor.doctor import Diagnosis
from envdoctor.report.human import CATEGORY_MARKS, headline

_ICON = {"ok": "✅", "info": "ℹ️", "warning": "⚠️", "error": "❌"}


def render(diagnosis: Diagnosis, origin: str | None = None) -> str:
    facts = diagnosis.facts
    lines = [f"### envdoctor check ({facts.envdoctor_version})", "", headline(facts), ""]
    if origin:  # a --from report: say whose machine it describes
        lines[-1:-1] = ["", origin]
    lines += ["| | Category | Summary |", "|---|---|---|"]
    groups = diagnosis.by_category()
    for category, findings in groups.items():
        worst = diagnosis.worst(category).value
        lines.append(f"| {CATEGORY_MARKS[worst]} | {CATEGORIES.get(category, category)} | {_cell(findings[0].title)} |")
    lines += ["", "#### Findings", ""]
    for f in diagnosis.findings:
        if f.severity.value == "ok":
            continue
        lines.append(f"- {_ICON[f.severity.value]} **{f.title}** (`{f.code}`)")
        lines += [f"  - {e}" for e in f.evidence]
        if f.fix:
            lines += ["  - Fix:", "", "    ```bash", *[f"    {x}" for x in f.fix.splitlines()], "    ```", ""]
    lines += ["", f"**{diagnosis.summary()['text']}**", ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
