"""tf.data input pipelines that never starve the model.

The uint8 images stay in memory as one tensor; tf.data gathers shuffled batches of them, prefetched. The
augmentation works on whole batches with vectorised ops (crop by index gather, flip by select, standardisation
in one pass) inside the training step, on the training device.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# Per-channel train statistics of the real CIFAR-10 (over its 50,000 training images), for the fast model's
# normalisation.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def _random_crop(images: Any, size: int) -> Any:
    """A random size x size window per image of a (B, H, W, C) batch, by two index gathers."""
    import tensorflow as tf

    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    oy = tf.random.uniform([batch], 0, height - size + 1, dtype=tf.int32)
    ox = tf.random.uniform([batch], 0, width - size + 1, dtype=tf.int32)
    steps = tf.range(size)
    rows = tf.gather(images, oy[:, None] + steps, axis=1, batch_dims=1)
    return tf.gather(rows, ox[:, None] + steps, axis=2, batch_dims=1)


def _random_flip(images: Any) -> Any:
    import tensorflow as tf

    flip = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def tutorial_train(images: Any) -> Any:
    """cifar10_input.distorted_inputs, batched: crop 24, flip, brightness 63, contrast 0.2-1.8, standardise.

    The arithmetic of tf.image.adjust_brightness (x + b), adjust_contrast (per channel c: (x - m_c) f + m_c) and
    per_image_standardization, per image, in closed form: with per-channel means m_c and variances v_c of the
    crop, the result has mean mean(m_c) + b and variance f^2 mean(v_c) + var(m_c), so the whole chain is one
    affine map x * A + B_c after a single pass of per-channel sums. (The tutorial's own note, tensorflow#1458:
    standardisation undoes the brightness shift.)
    """
    import tensorflow as tf

    x = tf.cast(_random_flip(_random_crop(images, 24)), tf.float32)
    batch = tf.shape(x)[0]
    brightness = tf.random.uniform([batch, 1, 1, 1], -63.0, 63.0)
    f = tf.random.uniform([batch, 1, 1, 1], 0.2, 1.8)
    m_c = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    v_c = tf.maximum(tf.reduce_mean(tf.square(x), axis=[1, 2], keepdims=True) - tf.square(m_c), 0.0)
    m = tf.reduce_mean(m_c, axis=3, keepdims=True)
    variance = tf.square(f) * tf.reduce_mean(v_c, axis=3, keepdims=True) + tf.reduce_mean(
        tf.square(m_c - m), axis=3, keepdims=True
    )
    scale = 1.0 / tf.maximum(tf.sqrt(variance), tf.math.rsqrt(24.0 * 24.0 * 3.0))
    return x * (f * scale) + ((1.0 - f) * m_c + brightness - (m + brightness)) * scale


def tutorial_eval(images: Any) -> Any:
    """The tutorial's evaluation input: a central 24x24 crop, then per-image standardisation."""
    import tensorflow as tf

    return tf.image.per_image_standardization(tf.cast(images[:, 4:28, 4:28, :], tf.float32))


def _normalise(images: Any) -> Any:
    import tensorflow as tf

    return (tf.cast(images, tf.float32) / 255.0 - tf.constant(MEAN)) / tf.constant(STD)


def fast_train(images: Any) -> Any:
    """Random 32x32 crop of the image padded by 4 (reflect), random flip, per-channel normalisation."""
    import tensorflow as tf

    padded = tf.pad(images, [[0, 0], [4, 4], [4, 4], [0, 0]], mode="REFLECT")
    return _normalise(_random_flip(_random_crop(padded, 32)))


def fast_eval(images: Any) -> Any:
    return _normalise(images)


AUGMENT = {"tutorial": (tutorial_train, tutorial_eval), "fast": (fast_train, fast_eval)}


def train_dataset(x: Any, y: Any, model: str, batch_size: int, seed: int | None = None) -> Any:
    """An endless, shuffled (reshuffled each epoch), prefetched stream of uint8 (images, labels) batches.

    Augmentation is not done here but in the training step itself (see `augment_train`), on the training
    device: the input pipeline only gathers uint8 indices, so it cannot starve the model, and on a CPU the
    augmentation ops share the training's thread pool instead of competing with it.
    """
    import tensorflow as tf

    images, labels = tf.constant(x), tf.constant(y)
    n = int(x.shape[0])
    ds = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda idx: (tf.gather(images, idx), tf.gather(labels, idx)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.with_options(_options()).prefetch(tf.data.AUTOTUNE)


def augment_train(model: str, images: Any) -> Any:
    """The model's training augmentation of a uint8 batch, run inside the training step, compiled by XLA into a
    few fused loops (measured: 89% -> 96% of a bare fit's images/s on the 2-core CPU, bench/README.md)."""
    return _compiled(model)(images)


@cache
def _compiled(model: str) -> Any:
    import tensorflow as tf

    return tf.function(AUGMENT[model][0], jit_compile=True)


def eval_dataset(x: Any, y: Any, model: str, batch_size: int = 500) -> Any:
    """The test set, preprocessed once and kept in memory."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    ds = ds.map(lambda a, b: (AUGMENT[model][1](a), b), num_parallel_calls=tf.data.AUTOTUNE).cache()
    return ds.with_options(_options()).prefetch(tf.data.AUTOTUNE)


def _options() -> Any:
    import tensorflow as tf

    options = tf.data.Options()
    # Sharding by data works for any dataset under MultiWorkerMirroredStrategy (there are no files to shard).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options
