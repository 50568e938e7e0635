"""Running external commands safely: no shell, a timeout, LC_ALL=C, never an exception."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_OUTPUT = 16 << 20  # nvidia-smi -q -x on an 8-GPU server writes about 1 MiB


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int | None  # None when the command could not run or timed out
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # "not found", "timeout after 5s", an OSError text
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.error is None

    def failure(self, default: str = "no output") -> str:
        """Why it failed, in a line: the runner's error, else the last line the command wrote on stderr."""
        return self.error or (self.stderr.strip().splitlines() or [default])[-1]


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: the caller's, with a stable C locale."""
    env = dict(os.environ)
    env.update(extra or {})
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    return env


def run_command(
    argv: Sequence[str],
    timeout: float = 5.0,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> CommandResult:
    """Run argv (never through a shell) and capture its output; failures are returned, not raised."""
    argv = [str(a) for a in argv]
    exe = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=(env or os.environ).get("PATH"))
    if not exe:
        return CommandResult(argv, None, error="not found")
    started = time.perf_counter()
    try:
        # start_new_session: a timeout kills the whole process group, so a hung child cannot hold pipes open.
        proc = subprocess.Popen(
            [exe, *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=command_env(env),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(argv, None, error=str(exc))
    out, err, error = _read_bounded(proc, timeout)
    if error is not None:
        kill_group(proc)
    for pipe in (proc.stdout, proc.stderr):
        if pipe:
            pipe.close()
    if error is not None:
        return CommandResult(argv, None, error=error, seconds=time.perf_counter() - started)
    return CommandResult(
        argv,
        proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        seconds=time.perf_counter() - started,
    )


def _read_bounded(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes, str | None]:
    """(stdout, stderr, why it was stopped) of a child, read until both pipes close, the timeout passes, or the
    output passes MAX_OUTPUT: a broken or hostile --python printing without end must not fill the memory."""
    import selectors

    chunks: dict[int, list[bytes]] = {}
    total = 0
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                selector.register(pipe, selectors.EVENT_READ)
                chunks[pipe.fileno()] = []
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return b"", b"", f"timeout after {timeout:g}s"
            for key, _ in selector.select(left):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                chunks[key.fd].append(data)
                total += len(data)
                if total > MAX_OUTPUT:
                    return b"", b"", f"stopped: more than {MAX_OUTPUT >> 20} MiB of output"
    out = b"".join(chunks.get(proc.stdout.fileno(), [])) if proc.stdout else b""
    err = b"".join(chunks.get(proc.stderr.fileno(), [])) if proc.stderr else b""
    left = deadline - time.monotonic()
    try:
        proc.wait(timeout=max(left, 0.01))
    except subprocess.TimeoutExpired:
        return b"", b"", f"timeout after {timeout:g}s"
    return out, err, None


def kill_group(proc: subprocess.Popen[bytes], wait: float = 2.0) -> None:
    """SIGKILL a child started with start_new_session=True together with its whole process group, then wait for
    it, but not forever: a process stuck in a GPU driver call sleeps uninterruptibly until the driver returns."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        pass
