"""auto:N without races: a per-user lock held while choosing (and, in `run`, for a grace period after the
command starts), plus a record of recent picks, so that jobs started together get different GPUs.

A pick stays reserved while the process that made it lives (`run` waits for its command) and for PICK_TTL_S
after that (`env` exits at once, the shell starts the job just after): by then the job shows in NVML's process
list and is avoided for that reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from envdoctor import atomic
from envdoctor.errors import UsageError
from envdoctor.facts import GpuFacts
from envdoctor.gpus.spec import Chosen, auto_candidates

PICK_TTL_S = 60.0
LOCK_TIMEOUT_S = 30.0


def lock_dir() -> Path:
    """$XDG_RUNTIME_DIR/envdoctor, else a private (0700) per-user directory in the temp dir."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        path = Path(runtime) / "envdoctor"
    else:
        path = Path(tempfile.gettempdir()) / f"envdoctor-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.stat()
    except OSError as exc:  # a read-only or odd runtime dir: one line, not a traceback
        raise UsageError(f"cannot use {path} for the auto:N lock: {exc.strerror or exc}") from None
    # Another user could pre-create the directory in /tmp to steer our picks: refuse it.
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise UsageError(f"{path} must be a directory owned by you with mode 0700")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class GpuLock:
    """An exclusive fcntl lock on <lock_dir>/gpus.lock with the pick record beside it."""

    def __init__(self, directory: Path | None = None, timeout: float = LOCK_TIMEOUT_S) -> None:
        self.dir = directory or lock_dir()
        self.timeout = timeout
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.dir / "gpus.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot open {self.dir / 'gpus.lock'}: {exc.strerror or exc}") from None
        deadline = time.monotonic() + self.timeout
        while True:  # poll instead of blocking, so a stuck holder cannot hang us
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise UsageError(f"another envdoctor has held {self.dir / 'gpus.lock'} for {self.timeout:g}s")
                time.sleep(0.05)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> GpuLock:
        self.acquire()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def _picks(self) -> list[dict]:
        try:
            data = json.loads((self.dir / "picks.json").read_text())
            return [p for p in data if isinstance(p, dict)] if isinstance(data, list) else []
        except (OSError, ValueError):
            return []

    def taken(self, now: float | None = None) -> set[str]:
        """UUIDs picked by a live process or within the last PICK_TTL_S seconds."""
        now = time.time() if now is None else now
        return {str(p.get("uuid")) for p in self._picks() if self._valid(p, now)}

    @staticmethod
    def _valid(p: dict, now: float) -> bool:
        try:
            return _alive(int(p["pid"])) or now - float(p["time"]) < PICK_TTL_S
        except (KeyError, TypeError, ValueError):
            return False

    def record(self, uuids: list[str], pid: int) -> None:
        now = time.time()
        picks = [p for p in self._picks() if self._valid(p, now)]
        picks += [{"uuid": u, "pid": pid, "time": now} for u in uuids]
        try:
            atomic.write_text(self.dir / "picks.json", json.dumps(picks), 0o600)  # readers never see half a file
        except OSError as exc:  # e.g. a full disk: without the record a parallel job could pick the same GPU
            raise UsageError(f"cannot record the auto pick in {self.dir}: {exc.strerror or exc}") from None


def choose_auto(n: int, gpus: list[GpuFacts], taken: set[str]) -> list[Chosen]:
    """The first n of auto_candidates (its docstring gives the rule)."""
    free = auto_candidates(gpus, taken)
    if len(free) < n:
        busy = sum(1 for g in gpus if g.processes)
        recent = sum(1 for g in gpus if g.uuid in taken)
        held = (f"; a pick stays reserved while its `envdoctor run` lives, or {PICK_TTL_S:.0f} s after "
                "`envdoctor env`, until the job shows in NVML") if recent else ""
        raise UsageError(
            f"auto:{n}: only {len(free)} GPU(s) are free "
            f"({busy} run compute processes, {recent} were just picked by another envdoctor{held})"
        )
    return [Chosen(g) for g in free[:n]]


def pick_auto(n: int, read_gpus: Callable[[], list[GpuFacts]], pid: int | None = None,
              check: Callable[[list[Chosen]], None] | None = None) -> list[Chosen]:
    """Choose and record n GPUs under the lock (the GPU list is read while holding it). `check` may refuse the
    choice (UsageError) before it is recorded: a refused pick reserves nothing."""
    with GpuLock() as lock:
        chosen = choose_auto(n, read_gpus(), lock.taken())
        if check:
            check(chosen)
        lock.record([c.uuid for c in chosen], pid or os.getpid())
        return chosen
