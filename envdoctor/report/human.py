"""Human output in the style of flutter doctor: one line per category, details with -v, a summary line.

Colour only on a terminal; NO_COLOR is respected (rich handles both).
"""

from __future__ import annotations

from typing import TextIO

from envdoctor.checks import CATEGORIES, Finding, Severity
from envdoctor.doctor import Diagnosis
from envdoctor.facts import Facts

CATEGORY_MARKS = {"ok": "✓", "info": "✓", "warning": "!", "error": "✗"}
FINDING_MARKS = {"ok": "✓", "info": "•", "warning": "!", "error": "✗"}
STYLES = {"ok": "green", "info": "cyan", "warning": "yellow", "error": "bold red"}


def headline(facts: Facts) -> str:
    s = facts.system
    inspected = inspected_python(facts)
    own = f"Python {s.python_version}" if s.python_version and not inspected else None
    parts = [s.distro_name or s.os or "unknown OS", s.arch, own]
    if not facts.host:
        parts.append(f"root {facts.root}")
    return " · ".join(p for p in [*parts, inspected] if p)


def inspected_python(facts: Facts) -> str | None:
    """'inspecting /usr/bin/python3 (Python 3.11.2, system)' when the diagnosed interpreter is not envdoctor's."""
    tf = facts.tensorflow
    if not tf.python_executable or tf.python_executable == facts.system.python_executable:
        return None
    about = ", ".join(p for p in (f"Python {tf.python_version}" if tf.python_version else None, tf.python_env) if p)
    return f"inspecting {tf.python_executable}" + (f" ({about})" if about else "")


def snapshot_origin(facts: Facts, path: str) -> str:
    """Where a --from report comes from: the file, and the machine and time it records (if it does)."""
    host = f" on {facts.system.hostname}" if facts.system.hostname else ""
    when = f" at {facts.collected_at}" if facts.collected_at else ""
    return f"from snapshot {path}" + (f", taken{host}{when}" if host or when else "")


def render(
    diagnosis: Diagnosis,
    verbose: bool = False,
    stream: TextIO | None = None,
    scrub=None,
    rerun: str = "envdoctor check",
    origin: str | None = None,
) -> None:
    """scrub: Callable[[str], str] | None; rerun: the command that repeats this run's inputs (for the -v hint);
    origin: where a --from snapshot came from."""
    from rich.text import Text

    from envdoctor.report.console import make_console, printable

    console = make_console(stream, soft_wrap=True)
    clean = scrub or (lambda s: s)

    def line(text: str, style: str | None = None, indent: int = 0) -> None:
        console.print(Text(" " * indent + printable(clean(text)), style=style or ""))

    line(f"envdoctor {diagnosis.facts.envdoctor_version} · {headline(diagnosis.facts)}", "bold")
    if origin:
        line(origin, "bold")
    if not verbose:
        line(f"(run `{rerun} -v` for every detail)", "dim")
    for category, findings in diagnosis.by_category().items():
        worst = diagnosis.worst(category).value
        title = CATEGORIES.get(category, category)
        summary = _category_summary(findings)
        mark = "☠" if category == "envdoctor" else CATEGORY_MARKS[worst]
        line(f"[{mark}] {title}" + (f" — {summary}" if summary else ""), STYLES[worst])
        for f in findings:
            if f.severity is Severity.OK and not verbose:
                continue
            if f.severity is Severity.OK and f.title == summary:
                _details(line, f, verbose)
                continue
            line(
                f"{FINDING_MARKS[f.severity.value]} {f.title}" + (f"  [{f.code}]" if verbose else ""),
                STYLES[f.severity.value],
                indent=4,
            )
            _details(line, f, verbose or f.severity.rank >= Severity.WARNING.rank)
    counts = diagnosis.counts
    text = str(diagnosis.summary()["text"])
    style = "bold red" if counts["error"] else "yellow" if counts["warning"] else "green"
    console.print()
    line(("• " if text.startswith("No") else "! ") + str(text), style)
    step = diagnosis.next_step()
    if step and step.fix:
        for number, fix_line in enumerate(step.fix.splitlines()):
            line(("next: " if number == 0 else "      ") + fix_line, "bold", indent=2)


def _details(line, finding: Finding, show: bool) -> None:
    if not show:
        return
    for evidence in finding.evidence:
        line(evidence, "dim", indent=8)
    if finding.fix:
        fix_lines = finding.fix.splitlines()
        line(f"fix: {fix_lines[0]}", "bold", indent=8)
        for extra in fix_lines[1:]:
            line(f"     {extra}", "bold", indent=8)


def _category_summary(findings: list[Finding]) -> str:
    """The OK finding's title when the category has one, else nothing (its problems are listed below)."""
    oks = [f for f in findings if f.severity is Severity.OK]
    return oks[0].title if oks else ""
