"""The doctor's verdict: findings, their summary and the exit code. Pure; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from envdoctor.checks import CATEGORIES, Finding, Severity, run_checks
from envdoctor.facts import Facts

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# Findings that are not problems of the machine but the step a user who came to set up TensorFlow takes next:
# the summary names them, whatever their severity, so that "No issues found!" is never the last word.
NEXT_STEP_CODES = ("tensorflow.not-installed", "tensorflow.python-unsupported")


@dataclass
class Diagnosis:
    facts: Facts
    findings: list[Finding]
    strict: bool = False
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.findings.sort(key=lambda f: (_category_rank(f.category), -f.severity.rank, f.code))
        self.counts = {s.value: sum(f.severity is s for f in self.findings) for s in Severity}

    @property
    def internal_failure(self) -> bool:
        return any(f.category == "envdoctor" for f in self.findings)

    @property
    def exit_code(self) -> int:
        if self.internal_failure:
            return EXIT_INTERNAL
        if self.counts["error"] or (self.strict and self.counts["warning"]):
            return EXIT_ERRORS
        return EXIT_OK

    def by_category(self) -> dict[str, list[Finding]]:
        groups: dict[str, list[Finding]] = {}
        for f in self.findings:
            groups.setdefault(f.category, []).append(f)
        return groups

    def worst(self, category: str) -> Severity:
        found = [f.severity for f in self.findings if f.category == category]
        return max(found, key=lambda s: s.rank) if found else Severity.OK

    def next_step(self) -> Finding | None:
        return next((f for f in self.findings if f.code in NEXT_STEP_CODES and f.fix), None)

    def summary(self) -> dict[str, object]:
        problem_categories = [c for c in self.by_category() if self.worst(c).rank >= Severity.WARNING.rank]
        step = self.next_step()
        text = summary_line(len(problem_categories), self.counts)
        return {
            "errors": self.counts["error"],
            "warnings": self.counts["warning"],
            "infos": self.counts["info"],
            "oks": self.counts["ok"],
            "categories_with_issues": problem_categories,
            "exit_code": self.exit_code,
            "text": text + (f" {step.title}." if step else ""),
            "next_step": {"code": step.code, "fix": step.fix} if step else None,
        }


def summary_line(n_categories: int, counts: dict[str, int]) -> str:
    if not n_categories:
        return "No issues found!"
    parts = [
        f"{counts['error']} error{'s' * (counts['error'] != 1)}",
        f"{counts['warning']} warning{'s' * (counts['warning'] != 1)}",
    ]
    return f"Doctor found issues in {n_categories} categor{'ies' if n_categories != 1 else 'y'} ({', '.join(parts)})."


def _category_rank(category: str) -> int:
    keys = list(CATEGORIES)
    return keys.index(category) if category in keys else len(keys)


def diagnose(facts: Facts, strict: bool = False) -> Diagnosis:
    return Diagnosis(facts, run_checks(facts), strict)
