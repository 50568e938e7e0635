"""Probes read the machine into Facts. They never judge, and never raise: failures become ProbeErrors."""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from envdoctor import __version__
from envdoctor.facts import Facts, ProbeError, printable_strings
from envdoctor.probes.files import InspectedFS, read_bytes
from envdoctor.runner import CommandResult, run_command

__all__ = ["InspectedFS", "ProbeContext", "collect", "read_bytes"]


@dataclass
class ProbeContext:
    """Where probes read from. Under --root, files come from `root` and no command or NVML is used."""

    root: Path = Path("/")
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    python: str | None = None  # interpreter whose packages to inspect (--python); None = this one
    command_timeout: float = 5.0

    @property
    def host(self) -> bool:
        return self.root == Path("/")

    @cached_property
    def fs(self) -> InspectedFS:
        """The inspected system's files: every probe reads, lists and globs through this (confined under --root)."""
        return InspectedFS(self.root)

    def read_text(self, absolute: str, limit: int = 4 << 20) -> str | None:
        """A file's text (decoded leniently, at most `limit` bytes), or None if absent or unreadable."""
        return self.fs.read_text(absolute, limit)

    def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        """Run a host command; under --root nothing runs and the result says so."""
        if not self.host:
            return CommandResult(list(argv), None, error="not run: --root given")
        return run_command(argv, timeout=timeout or self.command_timeout, env=self.env)


Probe = Callable[[ProbeContext, Facts], None]


def _probes() -> list[tuple[str, Probe]]:
    # Imported here so `envdoctor --version` stays fast. Order matters: later probes read earlier facts
    # (the CUDA library resolution needs the TensorFlow build info, for example).
    from envdoctor.probes import cpu, cuda, envvars, nvidia, system, tensorflow, tune

    return [
        ("system", system.probe),
        ("cpu", cpu.probe),
        ("env", envvars.probe),
        ("nvidia", nvidia.probe),
        ("tensorflow", tensorflow.probe),
        ("cuda", cuda.probe),
        ("tune", tune.probe),
    ]


def collect(ctx: ProbeContext | None = None, deep: bool = False) -> Facts:
    """Read every fact; a probe that crashes is recorded in facts.probe_errors."""
    ctx = ctx or ProbeContext()
    facts = Facts(
        envdoctor_version=__version__,
        collected_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        root=str(ctx.root),
        host=ctx.host,
    )
    probes = _probes()
    if deep:
        from envdoctor.probes import deep as deep_probe

        probes.append(("deep", deep_probe.probe))
    for name, probe in probes:
        started = time.perf_counter()
        try:
            probe(ctx, facts)
        except Exception as exc:  # a broken probe is a finding, never a traceback
            facts.probe_errors.append(ProbeError(name, f"{type(exc).__name__}: {exc}"))
        facts.probe_seconds[name] = round(time.perf_counter() - started, 4)
    return printable_strings(facts)
