"""Where a training step of the tutorial model spends its time, op by op (issue 13: why utilization stops where it
does). Results go in bench/README.md, "smoke-test verdict, calibration and --tune".

    TF_ENABLE_ONEDNN_OPTS=1 python bench/op_profile.py            # batch 128, TensorFlow's thread pools
    TF_ENABLE_ONEDNN_OPTS=1 python bench/op_profile.py --serial   # one op at a time: each op's own cost

The model is the smoke-test's tutorial network written with raw ops in a TF1 graph (the same convolutions,
pools and dense layers, plain SGD), because a graph run with FULL_TRACE returns each op's start and end
(RunMetadata.step_stats) without the profiler plugin. Prints images/s (median of 6 windows of 15 steps), then
the ops by time over 10 traced steps, with the GFLOP/s of the convolution and matmul ops. With --serial the
inter-op pool has one thread, so op times add up to the step; without it ops overlap and their sum exceeds it.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from typing import Any

# Multiply-adds per image of each op, from the tutorial model's shapes (envdoctor.smoke.models.layer_macs):
# conv1 24x24x(5x5x3)x64, conv2 12x12x(5x5x64)x64, local3 2304x384; the weight gradient costs as many MACs as
# the forward op, the input gradient too (none for conv1: nothing needs the images' gradient).
CONV1, CONV2, LOCAL3 = 24 * 24 * 75 * 64, 12 * 12 * 1600 * 64, 2304 * 384
TRAIN_FLOPS = 105_295_104  # per image, envdoctor.smoke.models.train_flops


def build(tf: Any, batch: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((batch, 24, 24, 3), np.float32))
    y = tf.constant(rng.integers(0, 10, batch).astype(np.int32))

    def var(*shape: int) -> Any:
        return tf.Variable(tf.random.normal(shape, stddev=0.05))

    weights = [var(5, 5, 3, 64), var(64), var(5, 5, 64, 64), var(64)]
    weights += [var(2304, 384), var(384), var(384, 192), var(192), var(192, 10), var(10)]
    w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = weights
    h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w1, 1, "SAME"), b1)), 3, 2, "SAME")
    h = tf.nn.max_pool2d(tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(h, w2, 1, "SAME"), b2)), 3, 2, "SAME")
    h = tf.nn.relu(tf.matmul(tf.reshape(h, [batch, -1]), w3) + b3)
    logits = tf.matmul(tf.nn.relu(tf.matmul(h, w4) + b4), w5) + b5
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    grads = tf.gradients(loss, weights)
    return tf.group(*[w.assign_sub(0.01 * g) for w, g in zip(weights, grads, strict=True)])


def op_flops(name: str, batch: int) -> float | None:
    """FLOPs of the big ops, recognised by the node names TF1's graph gives them."""
    macs = {
        "Relu": CONV1,  # conv1 fused with its bias and ReLU
        "gradients/Conv2D_grad/Conv2DBackpropFilter": CONV1,
        "Relu_1": CONV2,
        "gradients/Conv2D_1_grad/Conv2DBackpropFilter": CONV2,
        "gradients/Conv2D_1_grad/Conv2DBackpropInput": CONV2,
        "Relu_2": LOCAL3,
        "gradients/MatMul_grad/MatMul": LOCAL3,
        "gradients/MatMul_grad/MatMul_1": LOCAL3,
    }.get(name)
    return 2.0 * macs * batch if macs else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--serial", action="store_true", help="one inter-op thread: ops do not overlap")
    args = parser.parse_args()
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    step = build(tf, args.batch)
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=1 if args.serial else 0)
    session = tf.compat.v1.Session(config=config)
    session.run(tf.compat.v1.global_variables_initializer())
    for _ in range(20):  # warm-up: oneDNN primitive creation, allocator growth
        session.run(step)
    windows = []
    for _ in range(6):
        began = time.perf_counter()
        for _ in range(15):
            session.run(step)
        windows.append((time.perf_counter() - began) / 15)
    seconds = statistics.median(windows)
    rate = args.batch / seconds
    print(
        f"batch {args.batch}: {rate:.0f} images/s, {rate * TRAIN_FLOPS / 1e9:.1f} GFLOP/s, {seconds * 1e3:.1f} ms/step"
    )
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    micros: collections.Counter[tuple[str, str]] = collections.Counter()
    traced = 10
    for _ in range(traced):
        metadata = tf.compat.v1.RunMetadata()
        session.run(step, options=options, run_metadata=metadata)
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                kind = node.timeline_label.split("=")[-1].split("(")[0].strip() or node.node_name
                micros[(node.node_name, kind)] += node.op_end_rel_micros - node.op_start_rel_micros
    total = sum(micros.values())
    for (name, kind), spent in micros.most_common(16):
        ms = spent / traced / 1e3
        flops = op_flops(name, args.batch)
        speed = f"{flops / (ms / 1e3) / 1e9:6.0f} GFLOP/s" if flops else ""
        print(f"{ms:7.2f} ms {spent / total:6.1%}  {kind[:32]:32} {name[:48]:48} {speed}")
    print(f"sum of op times {total / traced / 1e3:.1f} ms per step")


if __name__ == "__main__":
    main()
