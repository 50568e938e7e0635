"""Whether a copy is the real CIFAR-10: an official archive's checksum, the npm mirror's per-file MD5s, or the
SHA-256 of the decoded arrays (the same for every format, so an extracted folder is verified too); and whether
what was decoded is a dataset at all."""

from __future__ import annotations

import hashlib
from pathlib import Path

from envdoctor.resources import load_recipe
from envdoctor.smoke.data.archive import ARCHIVE_LIMIT, Tree
from envdoctor.smoke.data.dataset import Cifar10, expected_counts
from envdoctor.smoke.data.errors import DataError


def _checksum(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_verified(path: Path, tree: Tree, fmt: str) -> str | None:
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


def validate(data: Cifar10, where: str) -> None:
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if len(x) == 0 or len(x) != len(y) or x.shape[1:] != (32, 32, 3):
            raise DataError(f"{where}: {split} split has {x.shape} images and {len(y)} labels")
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{where}: {split} labels outside 0..9")
