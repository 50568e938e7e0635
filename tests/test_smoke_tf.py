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
out["compiled_error"] = float(tf.reduce_max(tf.abs(tf.math.reduce_std(pipeline.augment_train("tutorial", u8), [1, 2, 3]) - 1)))
# Crops are windows of the input; shapes per model.
u8 = tf.constant(np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
crop = pipeline._random_crop(u8, 24).numpy()
out["crop_is_window"] = all(any(np.array_equal(crop[i], u8.numpy()[i, a:a + 24, b:b + 24])
                                for a in range(9) for b in range(9)) for i in range(8))
out["shapes"] = {m: list(pipeline.augment_train(m, u8).shape) for m in models.MODELS}
out["eval_shapes"] = {m: list(pipeline.AUGMENT[m][1](u8).shape) for m in models.MODELS}
tutorial = models.build("tutorial")
out["tutorial"] = [tutorial.count_params(), models.forward_flops(tutorial), models.train_flops(tutorial)]
out["calibration"] = train.calibrate_matmul("/CPU:0", "float32", 0.2)
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
    # 1,068,298 parameters (the TF tutorial's text); 18,470,784 multiply-adds computed layer by layer (cifar.md 1.2).
    # Training: forward + weight gradients + input gradients, less conv1's input gradient (2,764,800 MACs: the
    # images need none) = 105.3 MFLOP, cifar.md 1.2; a flat 3x forward would overstate it by 5%.
    assert checks["tutorial"] == [1068298, 2 * 18470784, 2 * (3 * 18470784 - 2764800)]
    assert checks["tutorial"][2] == 105_295_104


def test_matmul_calibration_measures_something_real(checks: dict) -> None:
    assert 1.0 < checks["calibration"] < 1e6  # GFLOP/s: a real CPU does more than 1, less than a petaflop
