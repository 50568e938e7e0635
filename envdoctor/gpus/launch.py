"""`envdoctor run`: start a command with the GPU environment; auto:N keeps the lock through a grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from envdoctor.errors import UsageError
from envdoctor.facts import GpuFacts
from envdoctor.gpus.lock import GpuLock, choose_auto
from envdoctor.gpus.notes import selection_notes
from envdoctor.gpus.snapshot import gpus_from
from envdoctor.gpus.spec import Chosen, build_environment, check_options, fixed_devices, parse_spec

GRACE_VAR = "ENVDOCTOR_AUTO_GRACE_S"
DEFAULT_GRACE_S = 5.0  # long enough for a TF job to create its CUDA context and show in NVML


def _grace() -> float:
    try:
        return max(0.0, float(os.environ.get(GRACE_VAR, DEFAULT_GRACE_S)))
    except ValueError:
        return DEFAULT_GRACE_S


NOT_FOUND, NOT_EXECUTABLE = 127, 126  # as env(1), timeout(1) and shells report them, apart from usage errors (2)


class CommandNotStarted(Exception):
    """The command could not be started; code is the exit status to report."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _start(command: list[str], env: dict[str, str], notes: list[str]) -> subprocess.Popen[bytes]:
    for note in notes:
        print(note, file=sys.stderr)
    try:
        return subprocess.Popen(command, env={**os.environ, **env})
    except OSError as exc:
        code = NOT_FOUND if isinstance(exc, FileNotFoundError) else NOT_EXECUTABLE
        raise CommandNotStarted(f"envdoctor: error: cannot run {command[0]!r}: {exc.strerror or exc}", code) from None


def _wait(proc: subprocess.Popen[bytes]) -> int:
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:  # the child got the same SIGINT from the terminal: let it finish
            continue
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as shells report it


def _notes(env: dict[str, str], gpus: list[GpuFacts], memory_limit_mb: int | None,
           from_file: Path | None) -> list[str]:
    return selection_notes(env, gpus, memory_limit_mb, from_file, runs_here=True)


def _describe(devices: list[Chosen]) -> str:
    return ", ".join(f"GPU {d.label} ({d.uuid})" for d in devices)


def run_with_gpus(
    command: list[str],
    spec: str,
    from_file: Path | None,
    allow_growth: bool = True,
    memory_limit_mb: int | None = None,
    allocator: str | None = None,
) -> int:
    """Run command with the GPUs of spec; returns its exit code (127/126 when it cannot be started)."""
    try:
        return _run(command, spec, from_file, allow_growth, memory_limit_mb, allocator)
    except CommandNotStarted as exc:
        print(exc, file=sys.stderr)
        return exc.code


def _run(
    command: list[str],
    spec: str,
    from_file: Path | None,
    allow_growth: bool,
    memory_limit_mb: int | None,
    allocator: str | None,
) -> int:
    if not command:  # before an auto:N pick is recorded
        raise UsageError("run needs a command: envdoctor run --gpus SPEC -- COMMAND...")
    check_options(memory_limit_mb, allocator)
    gpus, why = gpus_from(from_file)
    selection = parse_spec(spec, gpus, why)
    if selection.auto is None:
        env = build_environment(fixed_devices(selection), allow_growth, memory_limit_mb, allocator)
        return _wait(_start(command, env, _notes(env, gpus, memory_limit_mb, from_file)))
    lock = GpuLock()
    lock.acquire()
    try:
        fresh, _ = gpus_from(from_file)  # read again under the lock: another job may have just started
        chosen = choose_auto(selection.auto, fresh, lock.taken())
        env = build_environment(chosen, allow_growth, memory_limit_mb, allocator)
        proc = _start(command, env, _notes(env, fresh, memory_limit_mb, from_file))
        # Recorded once the command runs (still under the lock): a command that cannot start reserves nothing.
        try:
            lock.record([c.uuid for c in chosen], os.getpid())
        except UsageError as exc:  # the command already runs: warn rather than orphan it
            print(f"envdoctor: warning: {exc}", file=sys.stderr)
        print(f"envdoctor: {spec} picked {_describe(chosen)}", file=sys.stderr)
        try:
            proc.wait(timeout=_grace())
        except subprocess.TimeoutExpired:
            pass
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
    finally:
        lock.release()
    return _wait(proc)
