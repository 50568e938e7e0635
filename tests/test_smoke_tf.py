"""Checks of the TensorFlow side (augmentation arithmetic, FLOP counts, calibration) in a child process, so
this test session itself never imports TensorFlow (other tests check that `envdoctor check` does not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_CHECKS = r"""
import json
import numpy as np
import tensorflow as tf
from envdoctor.smoke import models, pipeline, train

out = {}
# The batched tutorial augmentation equals the tutorial's per-image tf.image chain, given the same random draws
# (same global seed, same order of draws: crop offsets, flips, brightness, contrast).
B = 16
u8 = tf.constant(np.random.default_rng(1).integers(0, 256, (B, 32, 32, 3), dtype=np.uint8))
tf.random.set_seed(7)
ours = pipeline.tutorial_train(u8)
tf.random.set_seed(7)
oy = tf.random.uniform([B], 0, 9, dtype=tf.int32)
ox = tf.random.uniform([B], 0, 9, dtype=tf.int32)
flip = tf.random.uniform([B, 1, 1, 1]) < 0.5
b = tf.random.uniform([B, 1, 1, 1], -63.0, 63.0)
c = tf.random.uniform([B, 1, 1, 1], 0.2, 1.8)
ref = []
for i in range(B):
    img = tf.cast(u8[i, oy[i]:oy[i] + 24, ox[i]:ox[i] + 24], tf.float32)
    img = tf.image.flip_left_right(img) if flip[i, 0, 0, 0] else img
    img = tf.image.adjust_contrast(tf.image.adjust_brightness(img, b[i, 0, 0, 0]), c[i, 0, 0, 0])
    ref.append(tf.image.per_image_standardization(img))
out["augment_error"] = float(tf.reduce_max(tf.abs(tf.stack(ref) - ours)))
std = tf.math.reduce_std(pipeline.augment_train("tutorial", u8), [1, 2, 3])
out["compiled_error"] = float(tf.reduce_max(tf.abs(std - 1)))
# Crops are windows of the input; shapes per model.
u8 = tf.constant(np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
crop = pipeline._random_crop(u8, 24).numpy()
out["crop_is_window"] = all(any(np.array_equal(crop[i], u8.numpy()[i, a:a + 24, b:b + 24])
                                for a in range(9) for b in range(9)) for i in range(8))
out["shapes"] = {m: list(pipeline.augment_train(m, u8).shape) for m in models.MODELS}
out["eval_shapes"] = {m: list(pipeline.AUGMENT[m][1](u8).shape) for m in models.MODELS}
tutorial = models.build("tutorial")
out["tutorial"] = [tutorial.count_params(), models.forward_flops(tutorial), models.train_flops(tutorial)]
out["calibration"] = train.calibrate_matmul("/CPU:0", "float32", 1.0).to_dict()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def checks() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", _CHECKS], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_batched_augmentation_matches_tf_image(checks: dict) -> None:
    assert checks["augment_error"] < 1e-4
    assert checks["compiled_error"] < 1e-3  # the XLA-compiled version standardises every image too
    assert checks["crop_is_window"]
    assert checks["shapes"] == {"tutorial": [8, 24, 24, 3], "fast": [8, 32, 32, 3]}
    assert checks["eval_shapes"] == {"tutorial": [8, 24, 24, 3], "fast": [8, 32, 32, 3]}


def test_tutorial_model_matches_the_published_counts(checks: dict) -> None:
    # 1,068,298 parameters (the TF tutorial's text); 18,470,784 multiply-adds computed layer by layer from the model.
    # Training: forward + weight gradients + input gradients, less conv1's input gradient (2,764,800 MACs: the
    # images need none) = 105.3 MFLOP, counted layer by layer; a flat 3x forward would overstate it by 5%.
    assert checks["tutorial"] == [1068298, 2 * 18470784, 2 * (3 * 18470784 - 2764800)]
    assert checks["tutorial"][2] == 105_295_104


def test_matmul_calibration_measures_something_real(checks: dict) -> None:
    calibration = checks["calibration"]
    assert 1.0 < calibration["gflops"] < 1e6  # GFLOP/s: a real CPU does more than 1, less than a petaflop
    # warmed up, then repeated: at least 3 timed products, their spread reported (stable or not: a shared CI box)
    assert calibration["samples"] >= 3 and calibration["spread"] >= 0 and calibration["dtype"] == "float32"
    assert calibration["stable"] == (calibration["spread"] <= 0.05 and calibration["samples"] >= 5)


# Review 2 item 9: mixed_float16 with the LossScaleOptimizer, and MirroredStrategy with 2 replicas, trained for real
# on the CPU split into two logical devices; and the evaluator building its model in the training's policy.
_DISTRIBUTED = r"""
import json, tempfile, time
from pathlib import Path
import numpy as np
import tensorflow as tf
import keras

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from envdoctor.smoke import evalproc, pipeline, train

out, t0 = {}, time.perf_counter()
keras.mixed_precision.set_global_policy("mixed_float16")
rng = np.random.default_rng(0)
y = rng.integers(0, 10, 512).astype(np.int32)
x = rng.integers(0, 256, (512, 32, 32, 3)).astype(np.uint8)
cfg = train.RunConfig(model="tutorial", steps=20, time_budget=None, batch_size=16, precision="mixed")
# mixed_float16 on one device: the LossScaleOptimizer must step the inner optimizer and move the weights
trainer = train.Trainer(cfg, tf.distribute.get_strategy(), 16)
before = [w.copy() for w in trainer.model.get_weights()]
monitor = train.Monitor(cfg, 20, 16, lambda e: None)
trainer.fit(pipeline.train_dataset(x, y, "tutorial", 16), monitor)
opt = trainer.optimizer
out["lso"] = {"optimizer": type(opt).__name__, "inner_iterations": int(opt.inner_optimizer.iterations.numpy()),
              "scale": float(opt.dynamic_scale.numpy()), "loss": monitor.last_loss,
              "compute_dtype": trainer.model.layers[1].compute_dtype,
              "moved": max(float(np.abs(a - b).max()) for a, b in zip(before, trainer.model.get_weights()))}
# mirrored over two logical CPUs, with the one-device yardstick
train.PROBE_SECONDS = 0.5
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
result = {"strategy": {"devices": train.strategy_devices(strategy)}}
probe = train.single_device_rate(cfg, result["strategy"]["devices"][0], x, y, lambda e: None)
train.train_model(cfg, strategy, x, y, lambda e: None, result)
out["mirrored"] = {"replicas": strategy.num_replicas_in_sync, "devices": result["strategy"]["devices"],
                   "steps": result["steps"], "images_seen": result["images_seen"], "loss": result["final_loss"],
                   "probe": probe}
# the evaluator builds its model in the training's policy
keras.mixed_precision.set_global_policy("float32")
with tempfile.TemporaryDirectory() as ckpt:
    (Path(ckpt) / evalproc.POLICY_FILE).write_text("mixed_float16")
    events = []
    model = evalproc.build_model(evalproc.EvalConfig("tutorial", "", ckpt), events.append)
out["eval"] = {**events[0], "compute_dtype": model.layers[1].compute_dtype}
out["seconds"] = time.perf_counter() - t0
print(json.dumps(out))
"""


@pytest.mark.slow
def test_mixed_float16_and_two_replica_mirrored_training_on_cpu() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", _DISTRIBUTED], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    checks = json.loads(out.stdout.strip().splitlines()[-1])
    lso = checks["lso"]
    assert lso["optimizer"] == "LossScaleOptimizer" and lso["compute_dtype"] == "float16"
    assert lso["inner_iterations"] == 20 and lso["moved"] > 0 and 0 < lso["loss"] < 10  # steps applied, finite
    mirrored = checks["mirrored"]
    assert mirrored["replicas"] == 2 and mirrored["devices"][1].endswith("CPU:1")
    assert mirrored["steps"] == 20 and mirrored["images_seen"] == 20 * 16 * 2 and 0 < mirrored["loss"] < 10
    probe = mirrored["probe"]  # timed after its warm-up chunk, for at least PROBE_SECONDS (0.5 here)
    assert probe["device"].endswith("CPU:0") and probe["steps"] >= 10 and probe["seconds"] >= 0.5
    assert probe["images_per_sec"] == pytest.approx(probe["steps"] * 16 / probe["seconds"])
    assert checks["eval"]["precision"] == "mixed_float16" and checks["eval"]["compute_dtype"] == "float16"
    assert checks["eval"]["device"].endswith("CPU:0")
