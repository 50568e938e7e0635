"""Findings and the check registry. A check is a pure function: Facts in, Findings out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from envdoctor.facts import Facts


class Severity(str, Enum):
    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ["ok", "info", "warning", "error"].index(self.value)


# Categories, in the order the report shows them.
CATEGORIES = {
    "system": "System",
    "cpu": "CPU",
    "driver": "NVIDIA driver",
    "gpu": "GPUs",
    "cuda": "CUDA & cuDNN",
    "tensorflow": "TensorFlow",
    "environment": "Environment variables",
    "envdoctor": "envdoctor itself",
}


@dataclass
class Finding:
    code: str  # stable, e.g. "driver.version-mismatch"
    severity: Severity
    title: str  # one line, what is true
    evidence: list[str] = field(default_factory=list)  # the facts it rests on
    fix: str | None = None  # a copy-pasteable command, or the precise step

    @property
    def category(self) -> str:
        return self.code.split(".", 1)[0]


Check = Callable[[Facts], Iterable[Finding]]
REGISTRY: list[Check] = []


def check(fn: Check) -> Check:
    """Register a check function."""
    REGISTRY.append(fn)
    return fn
