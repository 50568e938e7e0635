"""`envdoctor run`: start a command with the GPU environment; an auto:N pick is claimed while `run` lives."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from envdoctor.errors import UsageError
from envdoctor.facts import GpuFacts
from envdoctor.gpus.lock import pick_from, unpick
from envdoctor.gpus.notes import selection_notes
from envdoctor.gpus.snapshot import gpus_from
from envdoctor.gpus.spec import Chosen, build_environment, check_memory_limit, check_options, fixed_devices, parse_spec

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
    except ValueError as exc:  # a NUL in a value (from a hostile snapshot): no environment can hold it
        raise UsageError(f"cannot pass the GPU environment to {command[0]!r}: {exc}") from None
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


def _notes(env: dict[str, str], gpus: list[GpuFacts], memory_limit_mb: int | None, from_file: Path | None) -> list[str]:
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
    read_at = time.time()  # before the read: see pick_from
    gpus, why = gpus_from(from_file)
    selection = parse_spec(spec, gpus, why)
    if selection.auto is None:
        env = build_environment(fixed_devices(selection), allow_growth, memory_limit_mb, allocator)
        return _wait(_start(command, env, _notes(env, gpus, memory_limit_mb, from_file)))
    # The pick is claimed for this process, which lives as long as the command: no lock is held while it runs.
    chosen = pick_from(selection.auto, gpus, read_at, check=lambda c: check_memory_limit(c, memory_limit_mb))
    try:
        env = build_environment(chosen, allow_growth, memory_limit_mb, allocator)
        proc = _start(command, env, _notes(env, gpus, memory_limit_mb, from_file))
    except BaseException:  # a command that cannot start keeps no GPU from the next job
        with contextlib.suppress(UsageError, OSError):  # if it cannot be given back, it expires with us
            unpick(chosen)
        raise
    print(f"envdoctor: {spec} picked {_describe(chosen)}", file=sys.stderr)
    return _wait(proc)
