"""Checks: pure judgement over Facts. Each module registers its checks with @check."""

from __future__ import annotations

from envdoctor.checks.base import CATEGORIES, REGISTRY, Finding, Severity, check
from envdoctor.facts import Facts

__all__ = ["CATEGORIES", "Finding", "Severity", "check", "run_checks"]


def _load_all() -> None:
    from envdoctor.checks import cpu, cuda, driver, environment, gpu, requirements, system, tensorflow  # noqa: F401


def run_checks(facts: Facts) -> list[Finding]:
    """Every registered check over the facts. A crashing check becomes an envdoctor.* error finding."""
    _load_all()
    findings: list[Finding] = [
        Finding(
            code="envdoctor.probe-failed",
            severity=Severity.ERROR,
            title=f"Probe '{e.probe}' failed",
            evidence=[e.message],
            fix="Please report this with `envdoctor check --json --redact` attached.",
        )
        for e in facts.probe_errors
    ]
    for fn in REGISTRY:
        try:
            findings.extend(fn(facts))
        except Exception as exc:
            findings.append(
                Finding(
                    code="envdoctor.check-failed",
                    severity=Severity.ERROR,
                    title=f"Check '{fn.__name__}' crashed",
                    evidence=[f"{type(exc).__name__}: {exc}"],
                    fix="Please report this with `envdoctor check --json --redact` attached.",
                )
            )
    return findings
