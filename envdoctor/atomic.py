"""Writing a file all or nothing: readers (and a crash) never see half of it, and only a regular file is replaced."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


class NotRegularFile(OSError):
    """The target exists and is not a regular file (a device, a FIFO, a folder, a symbolic link): it is left as
    it is. An OSError whose strerror says why, so every caller that reports `exc.strerror` in one line (a usage
    error, a data error) reports this refusal the same way."""


def _existing_regular(path: Path) -> os.stat_result | None:
    """None when nothing is at `path`, its lstat when it is a regular file; NotRegularFile for anything else.

    lstat, not stat: a symbolic link is refused, neither written through (whoever planted it would choose the file
    we write; as root, any file) nor replaced (the user's link would silently become a file of its own). The check
    comes before the rename, not atomically with it: whoever can swap the entry in between can already delete or
    replace it, so what it guards is what legitimately exists there (as root, /dev/null). The rename itself never
    writes through anything."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(info.st_mode):
        return info
    if stat.S_ISLNK(info.st_mode):
        why = "is a symbolic link: refusing to write through it or to replace it"
    else:
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "a special file")
        why = f"is {kind}, not a regular file: refusing to replace it"
    raise NotRegularFile(errno.EEXIST, why, str(path))


@contextmanager
def atomic_file(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes `path` when the block ends: written beside it as `.NAME.*.part`, flushed
    to disk, given `mode` (or, when `path` is an existing regular file, that file's mode), then renamed over
    `path`. Raises NotRegularFile, before anything is written, when `path` exists and is not a regular file.
    Any failure removes the temporary file and re-raises."""
    existing = _existing_regular(path)
    mode = mode if existing is None else stat.S_IMODE(existing.st_mode) & 0o777  # no set-id or sticky bits
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if existing is not None and os.geteuid() == 0:  # root replacing a user's file: it stays the user's
            os.chown(tmp, existing.st_uid, existing.st_gid)
        os.chmod(tmp, mode)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    with atomic_file(path, mode) as handle:
        handle.write(text.encode("utf-8"))
