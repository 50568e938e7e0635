"""CIFAR-10 data against hostile input (issue 9): the cache's lock never follows a planted link (point 7), archives
and files larger than the real dataset's are refused before they are read, and the cache is validated on every
read whatever its metadata says (point 12).

Bombs are built as concatenated gzip members of one compressed megabyte of zeros: a few hundred KB on disk, hundreds
of MB unpacked, built in milliseconds.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_smoke_data import (
    SMALL,
    _Server,
    _source,
    assert_same,
    encode_png,
    npm_files,
    python_batch,
    small_dataset,
    write_python_tarball,
)

from envdoctor.smoke import data as cifar
from envdoctor.smoke.data import archive as cifar_archive
from envdoctor.smoke.data import cache as cifar_cache

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
OFFICIAL_MD5 = "md5 c58f30108f718f92721af3b95e74349a"


@pytest.fixture(scope="module")
def parts() -> dict:
    return small_dataset()


# ---------------------------------------------------------------- point 7: the cache's lock


def _lock_folder(tmp_path: Path) -> Path:
    folder = cifar.cache_path(tmp_path / "cache").parent
    folder.mkdir(parents=True)
    return folder


def test_a_link_planted_as_the_lock_is_not_followed(tmp_path: Path, parts: dict) -> None:
    folder = _lock_folder(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (folder / ".lock").symlink_to(victim)
    refused = r"\.lock is not a regular file .*refusing to use it as the cache's lock"
    with pytest.raises(cifar.DataError, match=refused), cifar_cache.locked(folder):
        pass
    archive = write_python_tarball(tmp_path / "a.tar.gz", parts)
    with pytest.raises(cifar.DataError, match="refusing to use it as the cache's lock"):  # what the user meets
        cifar.import_into_cache(str(archive), cache=tmp_path / "cache", counts=SMALL)
    assert victim.read_text() == "precious\n"  # not truncated
    assert not cifar.cache_path(tmp_path / "cache").exists()


def test_a_dangling_link_planted_as_the_lock_creates_nothing(tmp_path: Path) -> None:
    folder = _lock_folder(tmp_path)
    (folder / ".lock").symlink_to(tmp_path / "would-be-created")
    with pytest.raises(cifar.DataError, match="not a regular file"), cifar_cache.locked(folder):
        pass
    assert not (tmp_path / "would-be-created").exists()


def test_a_fifo_as_the_lock_fails_at_once(tmp_path: Path) -> None:
    folder = _lock_folder(tmp_path)
    os.mkfifo(folder / ".lock")
    outcome: list[BaseException] = []

    def lock() -> None:
        try:
            with cifar_cache.locked(folder):
                pass
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=lock, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # blocked in open(): let it go before failing
        os.close(os.open(folder / ".lock", os.O_RDONLY | os.O_NONBLOCK))
        pytest.fail("opening a FIFO planted as the lock blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], cifar.DataError), outcome
    assert "not a regular file" in str(outcome[0])


def test_an_existing_lock_file_is_not_truncated(tmp_path: Path) -> None:
    folder = _lock_folder(tmp_path)
    (folder / ".lock").write_text("kept\n")
    with cifar_cache.locked(folder):
        pass
    assert (folder / ".lock").read_text() == "kept\n"


# ---------------------------------------------------------------- point 12: bombs and oversized files


def gzip_bomb(
    path: Path, members: list[tuple[str, int]], fmt: int = tarfile.GNU_FORMAT, kind: bytes = tarfile.REGTYPE
) -> Path:
    """A .tar.gz whose members are `mib` MiB of zeros each: each megabyte is the same gzip member repeated."""
    zeros = gzip.compress(bytes(MIB), 9)
    parts = []
    for name, mib in members:
        info = tarfile.TarInfo(name)
        info.size, info.type = mib * MIB, kind
        parts += [gzip.compress(info.tobuf(format=fmt)), zeros * mib]
    parts.append(gzip.compress(bytes(1024)))  # the end-of-archive blocks
    path.write_bytes(b"".join(parts))
    return path


_MEASURE = """
import resource, sys, time
from envdoctor.smoke import data as cifar
import numpy
before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic()
try:
    cifar.load_path(sys.argv[1])
    print("loaded")
except cifar.DataError as exc:
    print(exc)
print(time.monotonic() - start)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_gzip_bomb_fails_fast_in_one_line_with_bounded_memory(tmp_path: Path) -> None:
    bomb = gzip_bomb(
        tmp_path / "bomb.tgz", [("cifar-10-batches-py/data_batch_1", 600), ("cifar-10-batches-py/test_batch", 1)]
    )
    assert bomb.stat().st_size < MIB
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(bomb)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    message, seconds, grown_mib = result.stdout.splitlines()
    assert message == (
        f"{bomb}: unpacks to more than 512 MiB, and CIFAR-10 to about 190 MB: refusing to read it "
        "(a damaged or hostile archive?)"
    ), result.stderr
    assert float(seconds) < 5 and int(grown_mib) < 64  # before: the whole member was read into memory


def test_the_cli_reports_a_bomb_in_one_line_and_caches_nothing(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.tgz", [("package/data_batch_1.png", 600)])
    env = {**os.environ, "ENVDOCTOR_CACHE_DIR": str(tmp_path / "cache"), "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "envdoctor", "data", "cifar10", "--data", str(bomb)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and "unpacks to more than 512 MiB" in result.stderr
    assert not (tmp_path / "cache").exists()


def test_a_member_larger_than_any_cifar_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    bomb = gzip_bomb(
        tmp_path / "big.tgz", [("cifar-10-batches-py/data_batch_1", 65), ("cifar-10-batches-py/test_batch", 1)]
    )
    with pytest.raises(cifar.DataError, match=r"data_batch_1 is larger than 64 MiB, and no CIFAR-10 file is"):
        cifar.load_path(bomb)


def test_a_huge_pax_header_is_not_read_into_memory(tmp_path: Path) -> None:
    # tarfile reads a pax header (or a GNU long name) whole: the stream refuses so large a read.
    bomb = gzip_bomb(tmp_path / "pax.tgz", [("././@PaxHeader", 65)], fmt=tarfile.USTAR_FORMAT, kind=tarfile.XHDTYPE)
    with pytest.raises(cifar.DataError, match=r"a header asks for 68157440 bytes at once"):
        cifar.load_path(bomb)


def test_an_archive_of_countless_members_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(cifar_archive.MEMBERS_LIMIT + 1):
            tar.addfile(tarfile.TarInfo(f"f{i}"), io.BytesIO(b""))
    with pytest.raises(cifar.DataError, match=r"more than 1000 files in the archive"):
        cifar.load_path(archive)


def test_oversized_files_in_a_folder_are_refused_unread(tmp_path: Path, parts: dict) -> None:
    for name, (x, y) in parts.items():
        (tmp_path / name).write_bytes(python_batch(x, y))
    os.truncate(tmp_path / "data_batch_1", 100 * MIB)  # sparse: no disk used
    with pytest.raises(cifar.DataError, match=r"data_batch_1 is larger than 64 MiB"):
        cifar.load_path(tmp_path)
    npm = tmp_path / "npm"
    npm.mkdir()
    for name, blob in npm_files(parts).items():
        (npm / name).write_bytes(blob)
    (npm / "train_lables.json").write_text("[" + "0," * MIB + "0]")
    with pytest.raises(cifar.DataError, match=r"train_lables.json is larger than 1 MiB"):
        cifar.load_path(npm)


def test_a_png_bomb_stops_at_the_size_its_header_gives() -> None:
    import resource

    image = encode_png(np.zeros((10, 1024, 3), np.uint8))
    ihdr_end = 8 + 8 + 13 + 4
    body = zlib.compress(bytes(40 * MIB), 1)
    idat = len(body).to_bytes(4, "big") + b"IDAT" + body + zlib.crc32(b"IDAT" + body).to_bytes(4, "big")
    bomb = image[:ihdr_end] + idat + image[-12:]  # the real header, then 40 MiB of zeros, then IEND
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert cifar.decode_png(bomb, "bomb.png").shape == (10, 1024, 3)  # what the header gives, nothing more
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 20 * 1024  # kB: never the 40 MiB
    huge = bytearray(image)
    huge[16 + 4 : 16 + 8] = (10**6).to_bytes(4, "big")  # IHDR height: a million rows, with a valid CRC
    huge[16 + 13 : 16 + 17] = zlib.crc32(bytes(huge[12 : 16 + 13])).to_bytes(4, "big")
    with pytest.raises(cifar.DataError, match=r"huge.png: a PNG larger than any CIFAR-10 sprite: refusing it"):
        cifar.decode_png(bytes(huge), "huge.png")
    huge[16 + 4 : 16 + 8] = (22_000).to_bytes(4, "big")  # past MEMBER_LIMIT, under Pillow's own guard
    huge[16 + 13 : 16 + 17] = zlib.crc32(bytes(huge[12 : 16 + 13])).to_bytes(4, "big")
    with pytest.raises(cifar.DataError, match=r"a 1024x22000 PNG, larger than any CIFAR-10 sprite: refusing it"):
        cifar.decode_png(bytes(huge), "huge.png")


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        (b'{"a": 1}', "is not a list of labels 0..9"),
        (b"[0, 1, 10]", "is not a list of labels 0..9"),
        (b"[0, true]", "is not a list of labels 0..9"),
        (b"[" * 100_000, "is not JSON"),
    ],
)
def test_npm_labels_that_are_not_labels_are_one_clear_line(
    tmp_path: Path, parts: dict, labels: bytes, reason: str
) -> None:
    for name, blob in npm_files(parts).items():
        (tmp_path / name).write_bytes(blob)
    (tmp_path / "train_lables.json").write_bytes(labels)
    with pytest.raises(cifar.DataError, match=reason):
        cifar.load_path(tmp_path)


@pytest.mark.parametrize(
    "batch",
    [
        [1, 2, 3],
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [[0], [1]]},
        {b"data": np.zeros((2, 3072), np.uint8), b"labels": [10**30, 1]},
    ],
)
def test_python_batches_that_are_not_batches_are_one_clear_line(tmp_path: Path, parts: dict, batch: object) -> None:
    for name, (x, y) in parts.items():
        (tmp_path / name).write_bytes(python_batch(x, y))
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(cifar.DataError, match=r"^data_batch_2: "):
        cifar.load_path(tmp_path)


# ---------------------------------------------------------------- point 12: the cache, validated on every read


def _write_cache(path: Path, parts: dict, meta: dict | None = None, **arrays: np.ndarray) -> Path:
    """A cache with the given arrays replaced, its metadata claiming the official checksum matched."""
    x_train, y_train = (
        np.concatenate([parts[b][0] for b in cifar.TRAIN_BATCHES]),
        np.concatenate([parts[b][1] for b in cifar.TRAIN_BATCHES]),
    )
    content = {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": parts["test_batch"][0],
        "y_test": parts["test_batch"][1],
        **arrays,
    }
    meta = meta or {"source": "official-python https://example.org", "verified": OFFICIAL_MD5, "synthetic": False}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, **content, meta=np.array(json.dumps(meta)))
    return path


def _y_train(parts: dict) -> np.ndarray:
    return np.concatenate([parts[b][1] for b in cifar.TRAIN_BATCHES])


TAMPERED: dict[str, tuple[Callable[[dict], dict], str]] = {
    "label 42": (
        lambda p: {"y_train": np.where(np.arange(100) == 5, 42, _y_train(p)).astype(np.int32)},
        r"y_train holds labels outside 0\.\.9 \(\d\.\.42\)",
    ),
    "negative label": (lambda p: {"y_test": np.full(10, -1, np.int32)}, r"y_test holds labels outside 0\.\.9"),
    "float pixels": (
        lambda p: {"x_train": np.zeros((100, 32, 32, 3), np.float32)},
        r"x_train is float32 of shape \(100, 32, 32, 3\), not 100 uint8 images of 32x32x3",
    ),
    "one channel": (
        lambda p: {"x_test": np.zeros((10, 32, 32, 1), np.uint8)},
        r"x_test is uint8 of shape \(10, 32, 32, 1\)",
    ),
    "int64 labels": (
        lambda p: {"y_train": _y_train(p).astype(np.int64)},
        r"y_train is int64 of shape \(100,\), not int32 labels",
    ),
    "2-D labels": (lambda p: {"y_test": np.zeros((10, 1), np.int32)}, r"y_test is int32 of shape \(10, 1\)"),
}


@pytest.mark.parametrize("case", TAMPERED, ids=list(TAMPERED))
def test_a_tampered_cache_is_rejected_by_every_reader(tmp_path: Path, parts: dict, case: str) -> None:
    arrays, reason = TAMPERED[case]
    target = _write_cache(cifar.cache_path(tmp_path), parts, **arrays(parts))
    summary, why = cifar.inspect_cache(target, SMALL)
    assert summary is None and why is not None
    assert re.fullmatch(reason + ".*", why), why
    assert cifar.peek_cache(target, SMALL) is None and cifar.read_cache(target, SMALL) is None


def test_an_intact_cache_passes_every_reader(tmp_path: Path, parts: dict) -> None:
    target = _write_cache(cifar.cache_path(tmp_path), parts)
    assert cifar.inspect_cache(target, SMALL)[0]["verified"] == OFFICIAL_MD5
    loaded = cifar.read_cache(target, SMALL)
    assert loaded is not None and loaded.verified == OFFICIAL_MD5
    assert_same(loaded, parts)


def test_metadata_of_the_wrong_type_is_damage(tmp_path: Path, parts: dict) -> None:
    target = _write_cache(cifar.cache_path(tmp_path), parts, meta={"source": "s", "verified": 5})
    assert cifar.inspect_cache(target, SMALL) == (None, "metadata 'verified' is int: 5")


def test_pixels_cut_short_under_a_valid_crc_are_found_without_loading_them(tmp_path: Path, parts: dict) -> None:
    # The parent only peeks (headers, labels, CRCs); the training process loads the pixels: a member shorter than
    # its header says must be found by the peek.
    target = _write_cache(cifar.cache_path(tmp_path), parts)
    with zipfile.ZipFile(target) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["x_train.npy"] = members["x_train.npy"][:-3072]
    with zipfile.ZipFile(target, "w") as archive:  # fresh, valid CRCs
        for name, blob in members.items():
            archive.writestr(name, blob)
    cut = len(members["x_train.npy"])
    assert cifar.inspect_cache(target, SMALL) == (None, f"x_train.npy holds {cut} bytes, its header says {cut + 3072}")


@pytest.fixture()
def server():
    srv = _Server()
    yield srv
    srv.close()


def test_a_tampered_cache_marked_verified_is_refetched_with_a_clear_message(
    tmp_path: Path, parts: dict, server: _Server
) -> None:
    cache = tmp_path / "cache"
    arrays, _ = TAMPERED["label 42"]
    target = _write_cache(cifar.cache_path(cache), parts, **arrays(parts))
    with pytest.raises(
        cifar.DataError,
        match=r"cache .* is damaged \(y_train holds labels outside 0\.\.9 .*\) and "
        "downloads are off",
    ):
        cifar.obtain(cache=cache, offline=True, counts=SMALL)
    source = _source(server, "/a.tar.gz", write_python_tarball(tmp_path / "a.tar.gz", parts).read_bytes())
    messages: list[str] = []
    assert_same(cifar.obtain(sources=[source], cache=cache, counts=SMALL, log=messages.append), parts)
    assert messages[0].startswith(f"the cache {target} is damaged (y_train holds labels outside 0..9")
    assert messages[0].endswith("): fetching CIFAR-10 again")
    assert server.hits["/a.tar.gz"] == 1
    assert cifar.inspect_cache(target, SMALL)[1] is None  # replaced by the download
