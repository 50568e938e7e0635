"""The inspected system's files, read the one safe way: bounded, never blocking, and under --root never outside it.

On the host, paths are what they are. Under --root DIR every path is resolved as a chroot into DIR would resolve
it: each symlink is read and followed by hand, an absolute target starts again at DIR, `..` stops at DIR. The
kernel then never follows a link (O_NOFOLLOW, lstat), and every opened file or directory is checked to lie under
DIR (through /proc/self/fd), so a tree that changes while it is read cannot lead outside either.
"""

from __future__ import annotations

import fnmatch
import glob as _glob
import os
import stat
from pathlib import PurePosixPath

MAX_LINK_HOPS = 40  # the kernel's own limit (ELOOP)
MAX_ENTRIES = 20_000  # per directory listing: a real site-packages holds a few thousand
MAX_GLOB_HITS = 1_000  # per glob pattern
MAX_PATH = 4096  # PATH_MAX: a longer path is no path on Linux

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def read_bytes(path: str | os.PathLike[str], limit: int = 4 << 20) -> bytes | None:
    """At most `limit` bytes of a regular file on this machine; None if absent, unreadable or not a regular file.

    Opened non-blocking, then only regular files are read, so nothing can hang: a FIFO (or a tty) blocks a plain
    open() or read() forever. Real /proc and /sys files are regular files (of size 0), so they pass.
    """
    return _read_fd(_open(path, _FLAGS), limit)


def _read_fd(fd: int | None, limit: int) -> bytes | None:
    if fd is None:
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            return fh.read(limit) if stat.S_ISREG(os.fstat(fh.fileno()).st_mode) else None
    except (OSError, ValueError):
        return None


def _open(path: str | os.PathLike[str], flags: int) -> int | None:
    try:
        return os.open(path, flags)
    except (OSError, ValueError, TypeError):
        return None


class InspectedFS:
    """Files of the inspected system: `/` (the host) or a root directory read as a chroot would read it.

    Paths given and returned are the inspected system's (absolute, without the root prefix). Listings are
    cached: one `check` lists the same library directories many times.
    """

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = os.path.realpath(root)
        self.host = self.root == "/"
        self._listings: dict[str, frozenset[str]] = {}

    # --- resolution ---------------------------------------------------------------------------------

    def realpath(self, path: str) -> str:
        """Resolve symlinks as the inspected system would; a loop resolves to the link where it was given up."""
        if self.host:
            return os.path.realpath(path)
        resolved, _ = self._resolve(path)
        return resolved

    def _resolve(self, path: str) -> tuple[str, bool]:
        """(path with every link resolved inside the root, whether that path is free of links)."""
        resolved, pending, hops = "/", list(PurePosixPath(path).parts[1:]), 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                resolved = os.path.dirname(resolved)
                continue
            candidate = os.path.join(resolved, part)
            try:
                target = os.readlink(self._local(candidate))
            except (OSError, ValueError):
                resolved = candidate
                continue
            hops += 1
            if hops > MAX_LINK_HOPS or len(target) > MAX_PATH:
                return candidate, False
            target_path = PurePosixPath(target)
            if target_path.is_absolute():
                resolved, pending = "/", list(target_path.parts[1:]) + pending
            else:
                pending = list(target_path.parts) + pending
        return resolved, True

    def _local(self, resolved: str) -> str:
        """Where an already resolved path of the inspected system lies on this machine."""
        return self.root if resolved == "/" else self.root + resolved

    def local(self, path: str | os.PathLike[str]) -> str | None:
        """This machine's path for an inspected path, or None where it cannot be read safely (a link loop)."""
        path = os.fspath(path)
        if not path.startswith("/") or len(path) > MAX_PATH or "\0" in path:
            return None
        if self.host:
            return path
        resolved, clean = self._resolve(path)
        return self._local(resolved) if clean else None

    def _inside(self, fd: int) -> bool:
        """Whether an opened file lies under the root: a directory swapped for a link mid-read is caught here."""
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return True  # no /proc: O_NOFOLLOW on the resolved path is the protection left
        return where == self.root or where.startswith(self.root + "/")

    def _open_confined(self, path: str, flags: int) -> int | None:
        local = self.local(path)
        if local is None:
            return None
        if self.host:
            return _open(local, flags)
        fd = _open(local, flags | _NOFOLLOW)
        if fd is not None and not self._inside(fd):
            os.close(fd)
            return None
        return fd

    # --- reading ------------------------------------------------------------------------------------

    def read_bytes(self, path: str, limit: int = 4 << 20) -> bytes | None:
        return _read_fd(self._open_confined(path, _FLAGS), limit)

    def read_text(self, path: str, limit: int = 4 << 20) -> str | None:
        """A file's text (decoded leniently, at most `limit` bytes), or None if absent or unreadable."""
        data = self.read_bytes(path, limit)
        return None if data is None else data.decode("utf-8", "replace")

    def listdir(self, path: str) -> frozenset[str]:
        """The names in a directory (at most MAX_ENTRIES); empty if it is absent or unreadable."""
        key = self.realpath(path)
        if key not in self._listings:
            self._listings[key] = self._list(path)
        return self._listings[key]

    def _list(self, path: str) -> frozenset[str]:
        fd = self._open_confined(path, _FLAGS | _DIRECTORY)
        if fd is None:
            return frozenset()
        names: list[str] = []
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    names.append(entry.name)
                    if len(names) >= MAX_ENTRIES:
                        break
        except OSError:
            pass
        finally:
            os.close(fd)
        return frozenset(names)

    def readlink(self, path: str) -> str | None:
        """The target a symlink names (not resolved), or None if it is no symlink."""
        parent, name = os.path.split(os.fspath(path))
        local = self.local(parent)
        if local is None or not name:
            return None
        try:
            return os.readlink(os.path.join(local, name))
        except (OSError, ValueError):
            return None

    def _mode(self, path: str) -> int | None:
        local = self.local(path)
        try:
            return None if local is None else (os.stat(local) if self.host else os.lstat(local)).st_mode
        except (OSError, ValueError):
            return None

    def exists(self, path: str) -> bool:
        return self._mode(path) is not None

    def isdir(self, path: str) -> bool:
        mode = self._mode(path)
        return mode is not None and stat.S_ISDIR(mode)

    def isfile(self, path: str) -> bool:
        mode = self._mode(path)
        return mode is not None and stat.S_ISREG(mode)

    def glob(self, pattern: str) -> list[str]:
        """Paths of the inspected system matching a shell pattern (at most MAX_GLOB_HITS), sorted.

        As glob.glob: `*` does not match a leading dot, a trailing `/` keeps directories only. Under --root every
        step lists a confined directory, so a link to `/` or a loop of links is walked inside the root, if at all.
        """
        if not pattern.startswith("/") or len(pattern) > MAX_PATH:
            return []
        if self.host:
            hits: list[str] = []
            for hit in _glob.iglob(pattern):
                hits.append(hit)
                if len(hits) >= MAX_GLOB_HITS:
                    break
            return sorted(hits)
        return sorted(self._glob_confined(pattern))

    def _glob_confined(self, pattern: str) -> list[str]:
        parts = pattern.split("/")[1:]
        current = ["/"]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                current = [p for p in current if self.isdir(p)] if last else current
                continue
            found: list[str] = []
            for directory in current:
                if _glob.has_magic(part):
                    names = sorted(n for n in self.listdir(directory) if _matches(n, part))
                else:
                    names = [part] if self.exists(os.path.join(directory, part)) else []
                found += [os.path.join(directory, n) for n in names]
                if len(found) >= MAX_GLOB_HITS:
                    break
            current = found[:MAX_GLOB_HITS]
        return current


def _matches(name: str, part: str) -> bool:
    if name.startswith(".") and not part.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, part)
