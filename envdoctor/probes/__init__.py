"""Probes read the machine into Facts. They never judge, and never raise: failures become ProbeErrors."""

from __future__ import annotations

import datetime as _dt
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from envdoctor import __version__
from envdoctor.facts import Facts, ProbeError
from envdoctor.runner import CommandResult, run_command


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

    def path(self, absolute: str | os.PathLike[str]) -> Path:
        """Map an absolute path of the inspected system to where it is readable here."""
        if self.host:
            return Path(absolute)
        p = Path(os.path.normpath(absolute))  # "/etc/../../x" stays inside the root
        return self.root / p.relative_to(p.anchor)

    def read_text(self, absolute: str | os.PathLike[str], limit: int = 4 << 20) -> str | None:
        """A file's text (decoded leniently, at most `limit` bytes), or None if absent or unreadable."""
        data = read_bytes(self.path(absolute), limit)
        return None if data is None else data.decode("utf-8", "replace")

    def run(self, argv: list[str], timeout: float | None = None) -> CommandResult:
        """Run a host command; under --root nothing runs and the result says so."""
        if not self.host:
            return CommandResult(list(argv), None, error="not run: --root given")
        return run_command(argv, timeout=timeout or self.command_timeout, env=self.env)


Probe = Callable[[ProbeContext, Facts], None]

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def read_bytes(path: str | os.PathLike[str], limit: int = 4 << 20) -> bytes | None:
    """At most `limit` bytes of a regular file; None if absent, unreadable or not a regular file.

    Every probe reads files through here so that nothing can hang: a FIFO (or a tty) under --root blocks a
    plain open() or read() forever. Opened non-blocking, then only regular files are read; real /proc and
    /sys files are regular files (of size 0), so they pass.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (OSError, ValueError, TypeError):
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            return fh.read(limit) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (OSError, ValueError):
        return None


def _probes() -> list[tuple[str, Probe]]:
    # Imported here so `envdoctor --version` stays fast. Order matters: later probes read earlier facts
    # (the CUDA library resolution needs the TensorFlow build info, for example).
    from envdoctor.probes import cpu, cuda, envvars, nvidia, system, tensorflow

    return [
        ("system", system.probe),
        ("cpu", cpu.probe),
        ("env", envvars.probe),
        ("nvidia", nvidia.probe),
        ("tensorflow", tensorflow.probe),
        ("cuda", cuda.probe),
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
    return facts
