"""The shared cache of decoded CIFAR-10: one .npz that appears by an atomic rename, written under a lock so two runs
at once fetch once, and checked on every read (every CRC, the .npy headers, the metadata, shapes, dtypes, labels and
counts): the checksums said what was cached, not that the file is still it."""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from envdoctor.atomic import atomic_file
from envdoctor.resources import cache_dir
from envdoctor.smoke.data.dataset import Cifar10, expected_counts
from envdoctor.smoke.data.errors import DataError, one_line, os_reason

CACHE_FILE = "cifar10-v1.npz"


def cache_path(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "cifar10" / CACHE_FILE


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive lock so two runs at once fetch once; readers need none (the cache appears by rename)."""
    import fcntl

    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(directory / ".lock")
    except OSError as exc:  # a file where a folder should be, no permission, a read-only file system
        raise DataError(
            f"cache folder {directory} cannot be used: {os_reason(exc)} (set ENVDOCTOR_CACHE_DIR to a writable folder)"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _open_lock(path: Path) -> int:
    """The lock file, created when missing and never truncated (its content is nothing, its inode the lock).

    O_NOFOLLOW: a symbolic link planted there is not followed (opened for writing through it, its target would be
    created as the user, or as root, anywhere). O_NONBLOCK: a FIFO there fails the open instead of blocking it.
    Anything but a regular file is refused with a line that says so. Write access, as before: flock over NFS is a
    POSIX write lock, which needs it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if _is_special(path):  # ELOOP for a link, ENXIO for a FIFO: name the cause, not the errno
            raise DataError(_NOT_A_LOCK.format(path=path)) from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(_NOT_A_LOCK.format(path=path))
    return fd


_NOT_A_LOCK = (
    "{path} is not a regular file (a symbolic link or a special file): refusing to use it as the cache's "
    "lock; remove it, or set ENVDOCTOR_CACHE_DIR to another folder"
)


def _is_special(path: Path) -> bool:
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class _Damaged(Exception):
    """Why a cache file cannot be trusted (a bad CRC, a cut file, foreign metadata, a partial dataset)."""


_META = {"source", "verified", "synthetic"}  # what write_cache stores
_META_TYPES = {"source": (str,), "verified": (str, type(None)), "synthetic": (bool,)}
_NPZ_ERRORS = (OSError, ValueError, KeyError, TypeError, zlib.error, EOFError, zipfile.BadZipFile, RecursionError)


def _check_npz(path: Path) -> None:
    """Every member's CRC-32: ~50 ms for the 184 MB cache from the page cache, and the training process then
    reads it from there. np.load checks a CRC only for the arrays it reads; the parent reads only labels."""
    with zipfile.ZipFile(path) as archive:
        if (bad := archive.testzip()) is not None:
            raise _Damaged(f"bad CRC-32 in {bad}")


def _image_layouts(path: Path) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Shape and dtype of x_train and x_test from their .npy headers, without reading the pixels."""
    with zipfile.ZipFile(path) as archive:
        return {split: _npy_layout(archive, f"{split}.npy") for split in ("x_train", "x_test")}


def _npy_layout(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], Any]:
    """A member's (shape, dtype); one whose size does not match its header is damage (the training process,
    which loads the arrays after only this check, would fail on it)."""
    import numpy as np

    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version not in readers:  # numpy writes 1.0, and 2.0 only for a header over 64 KiB
            raise _Damaged(f"{member} has .npy format version {version}")
        shape, _fortran, dtype = readers[version](handle)
        size = handle.tell() + math.prod(shape) * dtype.itemsize
    if size != (stored := archive.getinfo(member).file_size):
        raise _Damaged(f"{member} holds {stored} bytes, its header says {size}")
    return shape, dtype


def _check_meta(meta: Any) -> None:
    if not isinstance(meta, dict) or "source" not in meta or set(meta) - _META:
        raise _Damaged(f"metadata this envdoctor does not know: {' '.join(str(meta).split())[:200]}")
    for key, value in meta.items():
        if not isinstance(value, _META_TYPES[key]):
            raise _Damaged(f"metadata {key!r} is {type(value).__name__}: {' '.join(repr(value).split())[:80]}")


def _check_arrays(
    layouts: dict[str, tuple[tuple[int, ...], Any]], labels: dict[str, Any], counts: tuple[int, int]
) -> None:
    """What the cache must hold, checked on every read: the checksums said what was cached, not that this file is
    still it (a later write, another tool, a hand edit). Labels first: a partial cache says so by its counts."""
    import numpy as np

    for split, y in labels.items():
        if y.dtype != np.int32 or y.ndim != 1:
            raise _Damaged(f"y_{split} is {y.dtype} of shape {y.shape}, not int32 labels")
    if (len(labels["train"]), len(labels["test"])) != counts:  # a partial copy cached by an older envdoctor
        raise _Damaged(f"it holds {len(labels['train'])} + {len(labels['test'])} images, not {counts[0]} + {counts[1]}")
    for (split, y), count in zip(labels.items(), counts, strict=True):
        shape, dtype = layouts[f"x_{split}"]
        if shape != (count, 32, 32, 3) or dtype != np.uint8:
            raise _Damaged(f"x_{split} is {dtype} of shape {shape}, not {count} uint8 images of 32x32x3")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise _Damaged(f"y_{split} holds labels outside 0..9 ({y.min()}..{y.max()})")


def _open_cache(path: Path, counts: tuple[int, int], arrays: bool) -> tuple[dict[str, Any], Any]:
    """(metadata with the image counts, the four arrays or None); raises _Damaged with the reason."""
    import numpy as np

    try:
        if not arrays:
            _check_npz(path)
        layouts = _image_layouts(path)
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            _check_meta(meta)
            y_train, y_test = npz["y_train"], npz["y_test"]
            loaded = (npz["x_train"], y_train, npz["x_test"], y_test) if arrays else None
    except _NPZ_ERRORS as exc:
        raise _Damaged(f"{type(exc).__name__}: {one_line(exc)}") from exc
    _check_arrays(layouts, {"train": y_train, "test": y_test}, counts)
    return {**meta, "train_images": len(y_train), "test_images": len(y_test)}, loaded


def inspect_cache(path: Path, counts: tuple[int, int] | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(summary, None) for an intact cache, without loading its images; (None, why) for a damaged one;
    (None, None) when there is none."""
    if not _is_file(path):
        return None, None
    try:
        meta, _ = _open_cache(path, counts or expected_counts(), arrays=False)
    except _Damaged as exc:
        return None, str(exc)
    return {**meta, "source": f"cache {path} ({meta['source']})"}, None


def peek_cache(path: Path, counts: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """The summary of an intact cache (every CRC checked) without reading its images into memory."""
    return inspect_cache(path, counts)[0]


def read_cache_or_damage(path: Path, counts: tuple[int, int]) -> tuple[Cifar10 | None, str | None]:
    """(data, None), (None, why it is damaged) or (None, None); reading every array checks every CRC."""
    if not _is_file(path):
        return None, None
    try:
        meta, arrays = _open_cache(path, counts, arrays=True)
    except _Damaged as exc:
        return None, str(exc)
    data = Cifar10(*arrays, **{k: meta[k] for k in _META if k in meta})
    data.source = f"cache {path} ({data.source})"
    return data, None


def read_cache(path: Path, counts: tuple[int, int] | None = None) -> Cifar10 | None:
    """The cached arrays, or None when absent or damaged (a damaged cache is refetched, never trusted)."""
    return read_cache_or_damage(path, counts or expected_counts())[0]


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # EACCES on a folder above it: locked names the folder
        return False


def write_cache(data: Cifar10, path: Path) -> None:
    """Write to a temporary file next to the cache, then rename: readers see all of it or nothing."""
    import numpy as np

    meta = json.dumps({"source": data.source, "verified": data.verified, "synthetic": data.synthetic})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as handle:
            np.savez(
                handle,
                x_train=data.x_train,
                y_train=data.y_train,
                x_test=data.x_test,
                y_test=data.y_test,
                meta=np.array(meta),
            )
    except OSError as exc:  # a full disk, a read-only folder: atomic_file left nothing behind
        raise DataError(f"cannot write {path}: {os_reason(exc)}") from exc
