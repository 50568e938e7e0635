"""The matmul calibration: what this device sustains on dense matrix products, in the training's own process.

It runs in the training child after TensorFlow's threads and the Keras precision policy are set, on the training
device, in the training's compute dtype: the same process state as the training it is the yardstick for. It warms
up, then times products for at least MIN_SECONDS and until some WINDOW of them in a row agree within TOLERANCE (or
MAX_SECONDS pass: then it says it was not stable and takes the quietest WINDOW in a row). Of the stable windows it
reports the fastest, with its spread: other work only ever slows a product down, so the fastest steady stretch is
what the device sustains. (Stopping at the first steady window made two back-to-back runs on a quiet 2-core VM
disagree by 18%: the first second of products is not yet the device's steady state.)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

WINDOW = 5  # timed products that must agree
TOLERANCE = 0.05  # (max - min) / median of the window for "stable"
MIN_SECONDS = 3.0
MAX_SECONDS = 6.0
WARMUP_CALLS = 2  # the first products pay for allocation, kernel selection and thread-pool start-up


@dataclass
class Calibration:
    gflops: float  # median of the fastest stable WINDOW of timed products
    spread: float  # (max - min) / median of that window
    stable: bool
    samples: int  # timed products in all
    seconds: float
    dtype: str
    device: str
    size: int  # n of the n x n matrices

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _size(device: str) -> int:
    # Big enough to run at the device's real rate (1024^2 is cache-bound on small CPUs), small enough that one
    # product takes ~0.1-0.4 s on a 2-core CPU and a few ms on a GPU (4 chained per call there).
    return 8192 if "GPU" in device else 2048


def calibrate_matmul(
    device: str, dtype: str = "float32", max_seconds: float = MAX_SECONDS, warmup_calls: int = WARMUP_CALLS
) -> Calibration:
    """GFLOP/s (2 n^3 FLOPs per product) of n x n matmuls on `device` in `dtype`, once stable."""
    import tensorflow as tf

    n = _size(device)
    chain = 4 if "GPU" in device else 1
    with tf.device(device):
        a = tf.cast(tf.random.normal([n, n]), dtype)
        b = tf.cast(tf.random.normal([n, n]), dtype)

        @tf.function
        def products(x: Any, y: Any) -> Any:
            for _ in range(chain):  # a few products per call on a GPU keeps Python out of the measurement
                x = tf.matmul(x, y) * tf.cast(1e-3, dtype)
            return tf.reduce_sum(tf.cast(x[:1], tf.float32))

        for _ in range(warmup_calls):
            products(a, b).numpy()
        rates: list[float] = []
        start = time.perf_counter()
        least = min(MIN_SECONDS, max_seconds)
        while True:
            began = time.perf_counter()
            products(a, b).numpy()  # .numpy() waits for the device
            rates.append(chain * 2 * n**3 / (time.perf_counter() - began) / 1e9)
            elapsed = time.perf_counter() - start
            if elapsed >= max_seconds and len(rates) >= 3:
                break
            if elapsed >= least and _stable_windows(rates):
                break
    steady = _stable_windows(rates)
    stable = bool(steady)
    if steady:
        window = max(steady, key=statistics.median)
    else:  # never settled: the quietest stretch is the best estimate of what the device can do
        window = min((rates[i : i + WINDOW] for i in range(max(1, len(rates) - WINDOW + 1))), key=_spread)
    return Calibration(
        statistics.median(window), _spread(window), stable, len(rates), time.perf_counter() - start, dtype, device, n
    )


def _stable_windows(rates: list[float]) -> list[list[float]]:
    windows = (rates[i : i + WINDOW] for i in range(len(rates) - WINDOW + 1))
    return [w for w in windows if _spread(w) <= TOLERANCE]


def _spread(window: list[float]) -> float:
    return (max(window) - min(window)) / statistics.median(window)
