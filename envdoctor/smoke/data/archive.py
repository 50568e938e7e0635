"""Reading a dataset's files from a folder or a tar archive (gzip, bzip2, xz or none) with a cap on everything:
an archive is input, and a gzip bomb of a few MB, a hostile header or a FIFO must fail in one line, not fill the
memory or hang."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zlib
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO, cast

from envdoctor.smoke.data.errors import DataError, one_line

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


class Tree:
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
                f"{self.path}: not a readable CIFAR-10 archive (truncated or corrupt?): {one_line(exc)}"
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
                f"{self.path}: {name} cannot be read (truncated or corrupt archive?): {one_line(exc)}"
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
