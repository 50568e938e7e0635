"""auto:N without races and without queues: a per-user lock held only while claims are read and written.

A picker reads the GPUs (NVML) first, then, under the lock, honours every claim that was valid when it read them,
chooses, records its own claim and lets go: the lock is held for about a millisecond, so a hundred jobs started
together all pick at once. A claim is honoured while the process that made it lives (`run` lives as long as its
command) and, once that process is gone, until NVML shows a process on the GPU or PICK_TTL_S has passed (`env`
exits at once; the shell starts the job just after).

The lock directory is $XDG_RUNTIME_DIR/envdoctor, else envdoctor-<uid> in the temp dir. Another local user may
create that name first (in /tmp) or plant a symlink there: the directory is opened without following links and
used only if it is ours and private (0700); every file in it is opened relative to that open directory, without
following links, so a swapped path or a planted link is never written through.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from envdoctor.errors import UsageError
from envdoctor.facts import GpuFacts
from envdoctor.gpus.spec import Chosen, auto_candidates

PICK_TTL_S = 60.0
LOCK_TIMEOUT_S = 30.0
LOCK_FILE = "gpus.lock"
PICKS_FILE = "picks.json"
MAX_PICKS_BYTES = 1 << 20  # thousands of claims; anything bigger is not ours to parse
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


# --- the lock directory ------------------------------------------------------------------------------------


def lock_dir() -> Path:
    """$XDG_RUNTIME_DIR/envdoctor when that is a directory of ours, else envdoctor-<uid> in the temp dir.

    A runtime dir of another user (`sudo -E` keeps the caller's) is skipped: its owner could swap what is in it."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        try:
            st = os.stat(runtime)
        except OSError:
            st = None
        if st and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            return Path(runtime) / "envdoctor"
    return Path(tempfile.gettempdir()) / f"envdoctor-{os.geteuid()}"


def _refuse(path: Path, problem: str, way_out: str) -> UsageError:
    return UsageError(
        f"the auto:N lock directory {path} {problem}: {way_out}, or set XDG_RUNTIME_DIR to a private directory of yours"
    )


def open_private_dir(path: Path) -> int:
    """An O_DIRECTORY fd on path, created 0700 if missing; refused unless it is a real directory (not a link),
    owned by us, with no access for group or others. The checks are made on the open fd, not on the name."""
    try:
        os.mkdir(path, 0o700)  # mkdir never follows a link planted at path: it fails with EEXIST
    except FileExistsError:
        pass
    except OSError as exc:
        raise UsageError(f"cannot create the auto:N lock directory {path}: {exc.strerror or exc}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        raise _why_not_a_dir(path, exc) from None
    try:
        _check_private(path, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _why_not_a_dir(path: Path, exc: OSError) -> UsageError:
    """The one-line reason why path could not be opened as our directory (lstat only describes it)."""
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        return _refuse(path, "is a symbolic link", "remove the link")
    if st is not None and not stat.S_ISDIR(st.st_mode):
        return _refuse(path, "is not a directory", "remove it")
    if st is not None:
        _check_private(path, st)  # raises the precise reason (another owner, a shared mode) if there is one
    return UsageError(f"cannot use the auto:N lock directory {path}: {exc.strerror or exc}")


def _check_private(path: Path, st: os.stat_result) -> None:
    me = os.geteuid()
    if st.st_uid != me:  # e.g. made in /tmp by another user to block us or to read our claims
        raise _refuse(
            path,
            f"belongs to uid {st.st_uid}, not to you (uid {me})",
            "have it removed (another user may have made it first)",
        )
    if st.st_mode & 0o077:
        raise _refuse(path, f"has mode {stat.S_IMODE(st.st_mode):04o}, not 0700", f"run chmod 700 {path}")


def _open_in(dir_fd: int, name: str, flags: int, what: str) -> int:
    """A regular file in the lock directory, opened without following a link and without blocking on a FIFO."""
    fd = os.open(name, flags | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, 0o600, dir_fd=dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise UsageError(f"the {what} {name} in the auto:N lock directory is not a regular file of yours: remove it")
    return fd


# --- who still holds a claim -------------------------------------------------------------------------------


def process_start(pid: int) -> str | None:
    """The start time of pid (Linux: /proc/PID/stat field 22), so that a claim dies with its process even if the
    pid is reused later; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read(4096)
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()  # the name (field 2) may hold spaces and parentheses
    return fields[19].decode("ascii", "replace") if len(fields) > 19 else None


def _alive(pid: int, start: object) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start is None or process_start(pid) in (None, start)


def _holds(p: dict, read_at: float) -> bool:
    """Whether claim p holds for a picker that read the GPUs at read_at."""
    try:
        if _alive(int(p["pid"]), p.get("start")):
            return True
        made = float(p["time"])
        seen = float(p.get("seen", "inf"))
    except (KeyError, TypeError, ValueError, OverflowError):
        return False
    if seen <= read_at:  # NVML showed the job before this read: if the GPU looks idle now, the job has ended
        return False
    return read_at - made < PICK_TTL_S


def _mark_seen(picks: list[dict], read_at: float, busy: set[str]) -> bool:
    """Note on each claim whose GPU NVML shows busy in a read made after the claim that its job has shown up;
    True if a note was added."""
    marked = False
    for p in picks:
        try:
            if p.get("uuid") in busy and "seen" not in p and float(p["time"]) < read_at:
                p["seen"] = read_at
                marked = True
        except (KeyError, TypeError, ValueError, OverflowError):
            continue
    return marked


def _worth_keeping(p: dict, now: float) -> bool:
    """Whether claim p stays in the file: until it can hold for no picker, even one that read the GPUs up to
    PICK_TTL_S ago and has not taken the lock yet."""
    return _holds({k: v for k, v in p.items() if k != "seen"}, now - PICK_TTL_S)


# --- the lock and the claims -------------------------------------------------------------------------------


class GpuLock:
    """An exclusive fcntl lock on <lock_dir>/gpus.lock, and the claims in picks.json beside it."""

    def __init__(self, directory: Path | None = None, timeout: float = LOCK_TIMEOUT_S) -> None:
        self.dir = directory or lock_dir()
        self.timeout = timeout
        self._dir_fd: int | None = None
        self._fd: int | None = None

    def acquire(self) -> None:
        self._dir_fd = open_private_dir(self.dir)
        try:
            self._fd = _open_in(self._dir_fd, LOCK_FILE, os.O_RDWR | os.O_CREAT, "lock file")  # never truncated
            self._wait_for_lock(self._fd)
        except OSError as exc:
            self.release()
            raise UsageError(f"cannot open {self.dir / LOCK_FILE}: {exc.strerror or exc}") from None
        except BaseException:
            self.release()
            raise

    def _wait_for_lock(self, fd: int) -> None:
        # Polled, so that a stuck holder cannot hang us; short, jittered sleeps because holders stay ~1 ms.
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UsageError(
                        f"another envdoctor has held {self.dir / LOCK_FILE} for {self.timeout:g}s"
                    ) from None
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.02)

    def release(self) -> None:
        for name in ("_fd", "_dir_fd"):  # closing the lock file's fd releases the flock
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def __enter__(self) -> GpuLock:
        self.acquire()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def read_picks(self) -> list[dict]:
        assert self._dir_fd is not None, "the claims are read under the lock"
        try:
            fd = _open_in(self._dir_fd, PICKS_FILE, os.O_RDONLY, "claims file")
        except (OSError, UsageError):  # none yet, or something odd: it is replaced on the next write
            return []
        try:
            data = json.loads(os.read(fd, MAX_PICKS_BYTES + 1)[:MAX_PICKS_BYTES])
        except (OSError, ValueError, RecursionError):
            return []
        finally:
            os.close(fd)
        return [p for p in data if isinstance(p, dict)] if isinstance(data, list) else []

    def _write_picks(self, picks: list[dict]) -> None:
        # Written beside and renamed over: readers never see half a file. No fsync: a claim means nothing
        # after a reboot, and the lock directory is usually a tmpfs anyway.
        assert self._dir_fd is not None, "the claims are written under the lock"
        tmp = f".{PICKS_FILE}.{os.getpid()}.part"
        try:
            os.unlink(tmp, dir_fd=self._dir_fd)  # left by a crashed process with our pid
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=self._dir_fd)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(picks, fh)
            os.replace(tmp, PICKS_FILE, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self._dir_fd)
            raise

    def claims(self, read_at: float | None = None) -> list[dict]:
        """The claims that hold for a picker that read the GPUs at read_at (default: now)."""
        read_at = time.time() if read_at is None else read_at
        return [p for p in self.read_picks() if _holds(p, read_at)]

    def taken(self, now: float | None = None) -> set[str]:
        """UUIDs claimed by a live process, or within the last PICK_TTL_S seconds."""
        return {str(p.get("uuid")) for p in self.claims(now)}

    def record(self, uuids: list[str], pid: int, picks: list[dict] | None = None) -> None:
        """Claim uuids for pid, beside `picks` (default: the file's) less those that can no longer hold."""
        now = time.time()
        kept = [p for p in (self.read_picks() if picks is None else picks) if _worth_keeping(p, now)]
        start = process_start(pid)
        kept += [{"uuid": u, "pid": pid, "start": start, "time": now} for u in uuids]
        try:
            self._write_picks(kept)
        except OSError as exc:  # e.g. a full disk: without the record a parallel job could pick the same GPU
            raise UsageError(f"cannot record the auto pick in {self.dir}: {exc.strerror or exc}") from None

    def forget(self, uuids: list[str], pid: int) -> None:
        """Drop pid's claims on uuids (its command could not start)."""
        mine = set(uuids)
        left = [p for p in self.read_picks() if not (p.get("pid") == pid and p.get("uuid") in mine)]
        try:
            self._write_picks(left)
        except OSError:  # the claims then expire with pid
            pass


# --- picking -----------------------------------------------------------------------------------------------


def choose_auto(n: int, gpus: list[GpuFacts], taken: set[str]) -> list[Chosen]:
    """The first n of auto_candidates (its docstring gives the rule)."""
    free = auto_candidates(gpus, taken)
    if len(free) < n:
        busy = sum(1 for g in gpus if g.processes)
        recent = sum(1 for g in gpus if g.uuid in taken)
        held = (
            (
                f"; a pick stays reserved while its `envdoctor run` lives, or up to {PICK_TTL_S:.0f} s after "
                "`envdoctor env`, until the job shows in NVML"
            )
            if recent
            else ""
        )
        raise UsageError(
            f"auto:{n}: only {len(free)} GPU(s) are free "
            f"({busy} run compute processes, {recent} were just picked by another envdoctor{held})"
        )
    return [Chosen(g) for g in free[:n]]


def pick_from(
    n: int,
    gpus: list[GpuFacts],
    read_at: float,
    pid: int | None = None,
    check: Callable[[list[Chosen]], None] | None = None,
) -> list[Chosen]:
    """Choose n of gpus (read at read_at) and claim them for pid. `check` may refuse the choice (UsageError)
    before it is recorded: a refused pick claims nothing. The lock is held only for the claims, not for a job."""
    busy = {g.uuid for g in gpus if g.processes}
    with GpuLock() as lock:
        picks = lock.read_picks()
        marked = _mark_seen(picks, read_at, busy)
        try:
            chosen = choose_auto(n, gpus, {str(p.get("uuid")) for p in picks if _holds(p, read_at)})
            if check:
                check(chosen)
        except UsageError:
            if marked:  # what this read saw still frees those GPUs for the next picker
                lock.record([], pid or os.getpid(), picks)
            raise
        lock.record([c.uuid for c in chosen], pid or os.getpid(), picks)
    return chosen


def pick_auto(
    n: int,
    read_gpus: Callable[[], list[GpuFacts]],
    pid: int | None = None,
    check: Callable[[list[Chosen]], None] | None = None,
) -> list[Chosen]:
    """pick_from on a fresh read_gpus(), made outside the lock (NVML may take a while to answer)."""
    read_at = time.time()  # before the read: a claim that held then covers a job NVML did not show yet
    return pick_from(n, read_gpus(), read_at, pid, check)


def unpick(chosen: list[Chosen], pid: int | None = None) -> None:
    """Give back a pick whose command could not start."""
    with GpuLock() as lock:
        lock.forget([c.uuid for c in chosen], pid or os.getpid())
