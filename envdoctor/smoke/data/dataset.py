"""What CIFAR-10 is once decoded, whatever it was read from: the arrays with where they came from, the counts of
the real dataset, and the synthetic stand-in that only --data synthetic asks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from envdoctor.resources import load_recipe

if TYPE_CHECKING:
    import numpy as np

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


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


def expected_counts() -> tuple[int, int]:
    """(train, test) images of the real CIFAR-10: the only counts the cache may hold."""
    counts = load_recipe("cifar10.json")["counts"]
    return counts["train"], counts["test"]


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
