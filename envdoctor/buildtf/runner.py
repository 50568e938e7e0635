"""`build-tf --run`: run build.sh with a progress line per stage, a log file, and a diagnosis on failure.

build.sh prints "==> stage NAME" and "<== stage NAME ok" around each stage; the stage that started and did
not end is the one that failed. Known failures (recipes/build_failures.json) are matched against that stage's
part of the log only, so an earlier stage's (or a harmless WARNING's) words cannot name the wrong cause.

The build takes hours and streams its output, so it cannot go through runner.run_command (which buffers
and times out); it runs in its own process group and Ctrl-C stops the whole group.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envdoctor.resources import load_recipe
from envdoctor.runner import command_env

_START = re.compile(r"^==> stage (\w+)$")
_END = re.compile(r"^<== stage (\w+) ok$")
_ERROR = re.compile(r"^ERROR:|\berror:|^envdoctor: ")  # Bazel's, the compiler's, and build.sh's own die()
TAIL_LINES = 15
ERROR_LINES = 10
MATCH_LINES = 6  # log lines quoted per known failure: a missing tool takes two (what, and its install command)


@dataclass
class FailureMatch:
    id: str
    title: str
    fix: str
    stage: str
    lines: list[str] = field(default_factory=list)  # the log lines that matched (at most MATCH_LINES)


@dataclass
class RunResult:
    returncode: int
    log_path: str
    stages_done: list[str] = field(default_factory=list)
    failed_stage: str | None = None
    matches: list[FailureMatch] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the failed stage's error lines (the last ERROR_LINES)
    tail: list[str] = field(default_factory=list)
    previous_log: str | None = None  # the earlier run's log, kept as build.log.1

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def known_failures() -> list[dict[str, Any]]:
    return list(load_recipe("build_failures.json")["failures"])


def match_failures(
    lines: Iterable[str], failures: list[dict[str, Any]] | None = None, stage: str | None = None
) -> list[FailureMatch]:
    """Known failures found in the log, in the order of the table (most specific first); with a stage, only
    the entries of that stage or of none."""
    table = failures if failures is not None else known_failures()
    if stage is not None:
        table = [f for f in table if f.get("stage") in (None, stage)]
    compiled = [(f, re.compile(f["pattern"])) for f in table]
    found: dict[str, FailureMatch] = {}
    for line in lines:
        for entry, pattern in compiled:
            if pattern.search(line):
                match = found.setdefault(
                    entry["id"], FailureMatch(entry["id"], entry["title"], entry["fix"], entry.get("stage") or "")
                )
                if len(match.lines) < MATCH_LINES:
                    match.lines.append(line.strip())
    return [found[f["id"]] for f in table if f["id"] in found]


def stage_lines(lines: list[str], stage: str | None) -> list[str]:
    """The lines after the stage's last start marker (all, when no stage started), without WARNING: lines."""
    start = 0
    if stage is not None:
        marker = f"==> stage {stage}"
        start = max((i + 1 for i, line in enumerate(lines) if line == marker), default=0)
    return [line for line in lines[start:] if not line.startswith("WARNING:")]


def error_lines(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if _ERROR.search(line)][-ERROR_LINES:]


def rotate_log(log_path: Path) -> str | None:
    """Keep the previous run's log (a resumed build must not erase the failure it resumes from)."""
    if not log_path.exists():
        return None
    old = log_path.with_name(log_path.name + ".1")
    os.replace(log_path, old)
    return str(old)


class StageTracker:
    """Follows the stage markers in build.sh's output."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.done: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        """('start'|'end', stage) when the line is a marker."""
        if m := _START.match(line):
            self.current = m.group(1)
            return "start", self.current
        if m := _END.match(line):
            self.done.append(m.group(1))
            self.current = None
            return "end", m.group(1)
        return None


def run_recipe(
    recipe_dir: Path,
    stages: list[str] | None = None,
    log_path: Path | None = None,
    on_event: Callable[[str, str], None] | None = None,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run build.sh [stages], logging every line; on_event(kind, text) sees 'start'/'end'/'line' events."""
    log_path = log_path or recipe_dir / "build.log"
    tracker, tail = StageTracker(), deque[str](maxlen=TAIL_LINES)
    previous = rotate_log(log_path)
    proc = subprocess.Popen(
        ["bash", str(recipe_dir / "build.sh"), *(stages or [])],
        cwd=recipe_dir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=command_env(env),
        start_new_session=True,
    )
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                tail.append(line)
                event = tracker.feed(line)
                if on_event:
                    on_event(*(event or ("line", line)))
        returncode = proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        raise
    result = RunResult(returncode, str(log_path), tracker.done, tail=list(tail), previous_log=previous)
    if returncode != 0:
        result.failed_stage = tracker.current
        lines = stage_lines(log_path.read_text(encoding="utf-8", errors="replace").splitlines(), tracker.current)
        result.matches = match_failures(lines, stage=tracker.current)
        result.errors = error_lines(lines)
    return result


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
