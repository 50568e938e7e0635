"""Test accuracy of the tutorial model after a fixed number of training images under variants of envdoctor's
recipe (issue 13's moonshot: can a better schedule, rather than speed, lift the default smoke-test's accuracy?).

    python bench/recipe_sweep.py base lr=0.1 warmup=0.05 batch=64 opt=adam,lr=0.001 ls=0.1 aug=cropflip

Each variant runs in a fresh process on the real CIFAR-10 from envdoctor's cache: envdoctor's own training loop
(smoke.train.Trainer, Monitor's one-cycle schedule) for IMAGES training images, then the whole test set. A variant
is comma-separated key=value: lr (peak), warmup (fraction of the run), batch, opt=adam (Adam at that lr instead of
SGD with Nesterov momentum), ls (label smoothing), aug=cropflip (random crop and flip only, without the tutorial's
brightness and contrast). Accuracy by images seen does not depend on speed, so oneDNN is on to finish sooner.
Prints one JSON line per variant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1"}
IMAGES = 32_500  # 0.65 epochs: what the default 50 s budget trains at stock speed on the 2-core AVX2 VM

_CHILD = r"""
import json, os, sys, time
import keras, tensorflow as tf
from envdoctor.smoke import data, pipeline, train

variant, seed, images = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
opts = dict(part.split("=", 1) for part in variant.split(",") if "=" in part)
batch, peak = int(opts.get("batch", 128)), float(opts.get("lr", train.PEAK_LR["tutorial"]))
train.WARMUP = float(opts.get("warmup", train.WARMUP))
if opts.get("aug") == "cropflip":
    def crop_flip(x):
        x = pipeline._random_flip(pipeline._random_crop(x, 24))
        return tf.image.per_image_standardization(tf.cast(x, tf.float32))
    pipeline.AUGMENT["tutorial"] = (crop_flip, pipeline.tutorial_eval)
    pipeline._compiled.cache_clear()
if opts.get("opt") == "adam":
    keras.optimizers.SGD = lambda learning_rate, **_: keras.optimizers.Adam(learning_rate)
keras.utils.set_random_seed(seed)
d = data.read_cache(data.cache_path())
config = train.RunConfig(model="tutorial", steps=images // batch, time_budget=None, batch_size=batch,
                         learning_rate=peak, seed=seed, calibrate=False)
trainer = train.Trainer(config, tf.distribute.get_strategy(), batch)
if "ls" in opts:
    smoothed = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=float(opts["ls"]),
                                                    reduction=None)
    trainer.loss_fn = lambda y, logits: smoothed(tf.one_hot(y, 10), logits)
monitor = train.Monitor(config, config.steps, batch, lambda _e: None)
began = time.perf_counter()
trainer.fit(pipeline.train_dataset(d.x_train, d.y_train, "tutorial", batch, seed=seed), monitor)
accuracy = train.accuracy(trainer.model, d.x_test, d.y_test, "tutorial")
print(json.dumps({"variant": variant, "seed": seed, "images": images, "test_accuracy": round(accuracy, 4),
                  "images_per_sec": round(monitor.throughput()["images_per_sec"]),
                  "seconds": round(time.perf_counter() - began)}), flush=True)
os._exit(0)  # a tf.data iterator's teardown blocks for seconds (train.Trainer.fit)
"""


def main(argv: list[str]) -> None:
    seed = 0
    if argv[:1] == ["--seed"]:
        seed, argv = int(argv[1]), argv[2:]
    for variant in argv or ["base"]:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, variant, str(seed), str(IMAGES)],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        lines = out.stdout.strip().splitlines()
        print(lines[-1] if lines else json.dumps({"variant": variant, "error": out.stderr[-500:]}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
