"""The training process: `python -m envdoctor.smoke.train CONFIG.json`.

It runs in a child process whose environment (GPU selection, memory growth, TF_CONFIG) the parent set before
TensorFlow starts. It prints one JSON event per line on its stdout (everything else TensorFlow or Keras prints
goes to stderr) and ends with a "result" event; the parent renders them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from envdoctor.smoke.calibrate import Calibration, calibrate_matmul
from envdoctor.smoke.child import Emit, run_child

# Peak learning rates of the SGD-with-Nesterov one-cycle schedule, tuned on the real data (bench/README.md).
PEAK_LR = {"tutorial": 0.05, "fast": 0.2}
WEIGHT_DECAY = {"tutorial": None, "fast": 5e-4}  # the tutorial model carries its own L2 terms
WARMUP = 0.15  # fraction of the run spent ramping the learning rate up


@dataclass
class RunConfig:
    model: str = "tutorial"
    data_file: str = ""  # an .npz with x_train, y_train, x_test, y_test (uint8 / int32)
    data: dict[str, Any] = field(default_factory=dict)  # the data summary, for the report
    steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = 60.0  # seconds of training, when neither steps nor epochs are given
    batch_size: int = 128  # per replica
    precision: str = "auto"  # auto | fp32 | mixed
    strategy: str = "default"  # default | mirrored | multi-worker
    expect: str = "cpu"  # the device kind the user asked for: cpu | gpu
    checkpoint_dir: str | None = None
    checkpoint_every: float = 10.0  # seconds between checkpoints for the concurrent evaluator
    log_every: int = 10  # steps per compiled call, and per progress line
    learning_rate: float | None = None
    calibrate: bool = True
    seed: int = 0
    intra_op_threads: int | None = None  # None: TensorFlow's choice (set before any op runs)
    inter_op_threads: int | None = None
    jit_compile: bool = False  # XLA on the whole training step (a --tune leg on GPUs)
    evaluate: bool = True  # test accuracy at the end (tune legs only time training)
    logdir: str | None = None  # TensorBoard event files
    curve_points: int = 0  # test-subset evaluations along the run, for --plot/--logdir (not timed)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self))


# ---------------------------------------------------------------- environment facts


@cache
def cpu_facts() -> Any:
    """The CPU's model and flags, read by the CPU probe of `envdoctor check` itself."""
    from envdoctor.facts import Facts
    from envdoctor.probes import ProbeContext
    from envdoctor.probes.cpu import probe

    facts = Facts()
    probe(ProbeContext(), facts)
    return facts.cpu


def device_facts(tf: Any) -> dict[str, Any]:
    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        gpus.append(
            {
                "name": gpu.name,
                "model": details.get("device_name"),
                "compute_capability": list(details.get("compute_capability") or []) or None,
            }
        )
    cpu = cpu_facts()
    return {
        "gpus": gpus,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu.model,
        "cpu_features": cpu.features,
        "cpu_peak_gflops": cpu.peak_gflops_fp32_estimate,
        "cpu_peak_basis": cpu.peak_basis,
    }


def runtime_facts(tf: Any) -> dict[str, Any]:
    """TF version and build, oneDNN state and thread settings: the things that explain a throughput."""
    from envdoctor.smoke.child import installed_distributions

    try:
        from tensorflow.python.util import _pywrap_util_port as port

        onednn = bool(port.IsMklEnabled())
    except (ImportError, AttributeError):
        onednn = None
    build = {k: str(v) for k, v in tf.sysconfig.get_build_info().items()}
    location = os.path.dirname(tf.__file__)
    return {
        "tf_version": tf.version.VERSION,
        "tf_git_version": tf.version.GIT_VERSION,
        "tf_build": build,
        "tf_location": location,
        # stock or a local build (--json "before and after" `envdoctor build-tf`); the parent adds the CPU
        # instructions the binary does not use, from this process's log (session.add_log_facts)
        "tf_distributions": installed_distributions(location),
        "onednn": onednn,
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),  # 0 = TF picks
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "env": {
            k: os.environ[k]
            for k in (
                "CUDA_VISIBLE_DEVICES",
                "TF_FORCE_GPU_ALLOW_GROWTH",
                "TF_GPU_ALLOCATOR",
                "TF_CONFIG",
                "OMP_NUM_THREADS",
                "TF_CPP_MIN_LOG_LEVEL",
            )
            if k in os.environ
        },
    }


def choose_precision(
    asked: str, gpus: list[dict[str, Any]], flags: set[str], emit: Emit, measure: bool = True
) -> tuple[str, str, dict[str, Calibration]]:
    """The Keras dtype policy, why, and any matmul rates measured on the way (GFLOP/s by dtype): float16 on
    tensor-core GPUs, bfloat16 on CPUs only where it measures faster. measure=False (multi-worker: timings near
    the threshold could differ between workers) decides by features alone: bfloat16 only with AMX."""
    if asked == "fp32":
        return "float32", "asked", {}
    if gpus:
        cc = gpus[0].get("compute_capability") or [0, 0]
        if asked == "mixed" or tuple(cc) >= (7, 0):
            why = "asked" if asked == "mixed" else f"tensor cores (compute capability {cc[0]}.{cc[1]})"
            return "mixed_float16", why, {}
        return "float32", f"no tensor cores (compute capability {cc[0]}.{cc[1]})", {}
    if asked == "mixed":
        return "mixed_bfloat16", "asked", {}
    if not ({"avx512_bf16", "amx_bf16"} & flags):
        return "float32", "CPU has neither AVX512_BF16 nor AMX", {}
    if not measure:
        if "amx_bf16" in flags:
            return "mixed_bfloat16", "AMX (multi-worker: chosen by CPU features, the same on every like worker)", {}
        return "float32", "no AMX (multi-worker: chosen by CPU features, not timing, so workers agree)", {}
    rates = {dtype: calibrate_matmul("/CPU:0", dtype) for dtype in ("float32", "bfloat16")}
    fp32, bf16 = rates["float32"].gflops, rates["bfloat16"].gflops
    emit({"event": "note", "message": f"bfloat16 matmul {bf16:.0f} GFLOP/s vs float32 {fp32:.0f} GFLOP/s"})
    if bf16 > 1.1 * fp32:
        return "mixed_bfloat16", f"bfloat16 measured {bf16 / fp32:.2f}x float32", rates
    return "float32", f"bfloat16 measured slower or equal ({bf16:.0f} vs {fp32:.0f} GFLOP/s)", rates


def make_strategy(tf: Any, name: str) -> Any:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":  # reads TF_CONFIG, set by the parent before TensorFlow started
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_devices(strategy: Any) -> list[str]:
    try:
        return list(strategy.extended.worker_devices)
    except (RuntimeError, AttributeError):  # the default strategy places ops itself
        return []


def multiworker_peers() -> list[str]:
    """The other workers of TF_CONFIG, host:port."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    workers = config.get("cluster", {}).get("worker", [])
    index = config.get("task", {}).get("index", 0)
    return [w for i, w in enumerate(workers) if i != index]


def is_chief() -> bool:
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {})
    return task.get("index", 0) == 0


# ---------------------------------------------------------------- the training loop


class Monitor:
    """Learning-rate schedule, progress events, time budget, NaN stop, checkpoints and warm-up-free timing."""

    def __init__(
        self, config: RunConfig, total_steps: int | None, global_batch: int, emit: Emit, train_images: int = 50000
    ) -> None:
        self.config, self.total_steps, self.global_batch, self.emit = config, total_steps, global_batch, emit
        self.train_images = train_images
        self.peak = config.learning_rate or PEAK_LR[config.model]
        self.step = 0
        self.start = self.last_ckpt = time.perf_counter()
        self.paused = 0.0  # seconds spent on --plot's test-subset points: not training, not in the budget
        self.chunks: list[tuple[int, float]] = []  # (steps, seconds inside the compiled call) per chunk
        self.checkpoint_seconds = 0.0
        self.last_loss: float | None = None
        self.nan = False
        self.chief = is_chief()
        self.history: list[dict[str, float | None]] = []  # per chunk: the learning curve and the speed over the run
        self.curve: list[dict[str, float]] = []  # test-subset accuracy along the run (--plot/--logdir)
        self.probe: Any = None  # () -> test-subset accuracy, when curve points are asked for
        self.writer: Any = None  # TensorBoard's event writer (--logdir)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def progress(self) -> float:
        if self.total_steps:
            return min(1.0, self.step / self.total_steps)
        return min(1.0, self.elapsed() / (self.config.time_budget or 1.0))

    def lr(self) -> float:
        """One cycle: a linear ramp up to the peak over WARMUP of the run, then linearly down to (almost) zero."""
        p = self.progress()
        return max(self.peak * 1e-3, self.peak * (p / WARMUP if p < WARMUP else (1 - p) / (1 - WARMUP)))

    def next_chunk(self) -> int:
        left = self.total_steps - self.step if self.total_steps else self.config.log_every
        return max(0, min(self.config.log_every, left))

    def after_chunk(
        self, steps: int, seconds: float, loss: float, model: Any, train_accuracy: float | None = None
    ) -> bool:
        """Record a chunk of `steps` steps that took `seconds` with mean loss `loss`; True when training must stop."""
        self.step += steps
        self.chunks.append((steps, seconds))
        self.last_loss = loss
        point = {
            "step": self.step,
            "epoch": self.step * self.global_batch / self.train_images,
            "elapsed": self.elapsed(),
            "loss": loss,
            "train_accuracy": train_accuracy,
            "images_per_sec": self.global_batch * steps / seconds,
            "lr": self.lr(),
        }
        self.history.append(point)
        self.emit(
            {
                "event": "step",
                **point,
                "warmup": len(self.chunks) == 1,
                "sec_per_batch": seconds / steps,
                "progress": self.progress(),
            }
        )
        self._log(point)
        self._maybe_checkpoint(model)
        self._maybe_probe()
        if not math.isfinite(loss):
            self.nan = True
            return True
        if self.total_steps:
            return self.step >= self.total_steps
        return self.elapsed() >= (self.config.time_budget or 0)

    def _log(self, point: dict[str, Any]) -> None:
        if self.config.logdir:
            write_scalars(
                self.config.logdir,
                self.step,
                {
                    "train/loss": point["loss"],
                    "train/accuracy": point["train_accuracy"],
                    "speed/images_per_sec": point["images_per_sec"],
                    "train/learning_rate": point["lr"],
                    "train/epoch": point["epoch"],
                },
            )

    def _maybe_probe(self) -> None:
        """A test-subset accuracy each 1/curve_points of the run; its time is paused out of the budget."""
        if self.probe is None or len(self.curve) >= self.config.curve_points:
            return
        if self.progress() < (len(self.curve) + 1) / self.config.curve_points - 1e-9:
            return
        point = {
            "step": self.step,
            "epoch": self.step * self.global_batch / self.train_images,
            "elapsed": self.elapsed(),
        }
        began = time.perf_counter()
        point["test_accuracy"] = accuracy_now = self.probe()
        self.curve.append(point)
        if self.config.logdir:
            write_scalars(self.config.logdir, self.step, {"test/accuracy_subset": accuracy_now})
        self.paused += time.perf_counter() - began

    def _maybe_checkpoint(self, model: Any) -> None:
        """Every checkpoint_every seconds, and once right after the warm-up chunk: even a short run then gives the
        concurrent evaluator a checkpoint to evaluate while training still runs."""
        if not (self.config.checkpoint_dir and self.chief):
            return
        began = time.perf_counter()
        if len(self.chunks) == 1 or began - self.last_ckpt >= self.config.checkpoint_every:
            save_checkpoint(model, Path(self.config.checkpoint_dir), self.step)
            self.last_ckpt = time.perf_counter()
            self.checkpoint_seconds += self.last_ckpt - began

    def throughput(self) -> dict[str, Any]:
        """Images/s of the training work after warm-up: the first chunk (tracing, XLA compilation, graph
        optimisation) is left out whenever there is a second one; checkpoint writes are never counted."""
        warmup = len(self.chunks) > 1
        measured = self.chunks[1:] if warmup else self.chunks
        if not measured:
            return {"images_per_sec": None, "sec_per_batch": None, "warmup_excluded": False}
        steps, seconds = sum(s for s, _ in measured), sum(t for _, t in measured)
        return {
            "images_per_sec": self.global_batch * steps / seconds,
            "sec_per_batch": seconds / steps,
            "warmup_excluded": warmup,
            "measured_steps": steps,
            "warmup_seconds": self.chunks[0][1] if warmup else None,
            "checkpoint_seconds": self.checkpoint_seconds,
        }


def save_checkpoint(model: Any, directory: Path, step: int) -> Path:
    """Weights as an .npz, written under a temporary name and renamed: the evaluator never reads half a file."""
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"ckpt-{step:08d}.npz"
    tmp = directory / f".ckpt-{step:08d}.npz.part"
    with open(tmp, "wb") as handle:
        np.savez(handle, *[np.asarray(w) for w in model.get_weights()])
    os.replace(tmp, final)
    return final


def load_arrays(path: str) -> tuple[Any, Any, Any, Any]:
    import numpy as np

    with np.load(path, allow_pickle=False) as npz:
        return npz["x_train"], npz["y_train"], npz["x_test"], npz["y_test"]


class Predictor:
    """Class predictions on uint8 test images, compiled once, by a plain (undistributed) copy of the model that
    takes the training model's current weights at each call: the same on every worker."""

    def __init__(self, model: Any, model_name: str) -> None:
        import tensorflow as tf

        from envdoctor.smoke import models, pipeline

        self.source, self.plain = model, models.build(model_name)
        prepare = pipeline.AUGMENT[model_name][1]
        self.predict = tf.function(
            lambda images: tf.argmax(self.plain(prepare(images), training=False), axis=1, output_type=tf.int32)
        )

    def accuracy(self, x: Any, y: Any, emit: Emit | None = None) -> float:
        """Test accuracy, in batches, with an "eval_progress" event after each (evaluation takes seconds to tens
        of seconds on a CPU: the parent shows its progress instead of a frozen clock)."""
        import numpy as np

        self.plain.set_weights(self.source.get_weights())
        correct, started = 0, time.perf_counter()
        for begin in range(0, len(y), EVAL_BATCH):
            labels = y[begin : begin + EVAL_BATCH]
            correct += int(np.sum(self.predict(x[begin : begin + EVAL_BATCH]).numpy() == labels))
            if emit is not None:
                emit(
                    {
                        "event": "eval_progress",
                        "done": begin + len(labels),
                        "total": int(len(y)),
                        "elapsed": time.perf_counter() - started,
                    }
                )
        return correct / max(1, len(y))


EVAL_BATCH = 1000  # test images per compiled call: one progress event each


def accuracy(model: Any, x: Any, y: Any, model_name: str, emit: Emit | None = None) -> float:
    return Predictor(model, model_name).accuracy(x, y, emit)


CURVE_IMAGES = 2000  # test images per point of the learning curve along the run (--plot/--logdir)


def curve_probe(model: Any, x: Any, y: Any, model_name: str) -> Any:
    """() -> accuracy of the current weights on the first CURVE_IMAGES test images."""
    predictor, x, y = Predictor(model, model_name), x[:CURVE_IMAGES], y[:CURVE_IMAGES]
    return lambda: predictor.accuracy(x, y)


@cache
def _writer(logdir: str) -> Any:
    import tensorflow as tf

    return tf.summary.create_file_writer(logdir)


@cache
def _scalar_metadata() -> bytes:
    """TensorBoard's scalar-plugin metadata, from TensorFlow's own protos: tf.summary.scalar itself needs the
    tensorboard package, which tensorflow-cpu 2.21 no longer installs; tf.summary.write does not."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    ).SerializeToString()


def write_scalars(logdir: str, step: int, scalars: dict[str, float | None]) -> None:
    """TensorBoard scalars through TensorFlow's own event writer, flushed at once: the run ends by os._exit."""
    import tensorflow as tf

    writer = _writer(logdir)
    with writer.as_default():
        for name, value in scalars.items():
            if value is not None and math.isfinite(value):
                tf.summary.write(name, tf.constant(float(value), tf.float32), step=step, metadata=_scalar_metadata())
    writer.flush()


class Trainer:
    """A tf.function training loop over any tf.distribute strategy: `log_every` steps per compiled call.

    A loop rather than Keras fit: Keras 3's fit does not run under MultiWorkerMirroredStrategy
    (keras-team/keras#20585), and one code path for every strategy keeps the numbers comparable.
    """

    def __init__(self, config: RunConfig, strategy: Any, global_batch: int) -> None:
        import keras
        import tensorflow as tf

        from envdoctor.smoke import models

        self.strategy, self.global_batch, self.model_name = strategy, global_batch, config.model
        with strategy.scope():
            self.model = models.build(config.model)
            optimizer = keras.optimizers.SGD(
                learning_rate=0.0, momentum=0.9, nesterov=True, weight_decay=WEIGHT_DECAY[config.model]
            )
            if keras.mixed_precision.global_policy().name == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow otherwise
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        # XLA on the whole step: a --tune leg on GPUs (on a 2-core CPU it measured 5x slower, bench/README.md)
        self._step = tf.function(self._step_fn, jit_compile=True) if config.jit_compile else self._step_fn
        self._chunk = tf.function(self._chunk_fn)

    def _step_fn(self, batch: Any) -> Any:
        import tensorflow as tf

        from envdoctor.smoke import pipeline

        images, labels = batch
        images = pipeline.augment_train(self.model_name, images)  # on the training device, XLA-fused
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            loss = tf.nn.compute_average_loss(self.loss_fn(labels, logits), global_batch_size=self.global_batch)
            if self.model.losses:  # the tutorial's L2 terms, split over the replicas
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = self.optimizer.scale_loss(loss) if hasattr(self.optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=labels.dtype), labels), tf.float32))
        return loss, correct

    def _chunk_fn(self, iterator: Any, steps: Any) -> Any:
        import tensorflow as tf

        total, correct = tf.constant(0.0), tf.constant(0.0)
        for _ in tf.range(steps):
            loss, right = self.strategy.run(self._step, args=(next(iterator),))
            total += tf.cast(self.strategy.reduce("SUM", loss, axis=None), tf.float32)
            correct += self.strategy.reduce("SUM", right, axis=None)
        return total / tf.cast(steps, tf.float32), correct / tf.cast(steps * self.global_batch, tf.float32)

    def fit(self, dataset: Any, monitor: Monitor) -> None:
        import tensorflow as tf

        # Kept on self: destroying a tf.data iterator that fed a tf.function loop for a few epochs blocked for
        # ~30 s here (TF 2.21, 2-core CPU); main() ends the process with os._exit so nobody waits for it.
        self.iterator = iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
        monitor.start = monitor.last_ckpt = time.perf_counter()
        while (steps := monitor.next_chunk()) > 0:
            self.optimizer.learning_rate.assign(monitor.lr())
            began = time.perf_counter()
            loss, right = self._chunk(iterator, tf.constant(steps))
            loss = float(loss)  # float() waits for the device to finish
            if monitor.after_chunk(steps, time.perf_counter() - began, loss, self.model, float(right)):
                break


def planned_steps(config: RunConfig, train_images: int, global_batch: int) -> int | None:
    if config.steps:
        return config.steps
    if config.epochs:
        return max(1, round(config.epochs * train_images / global_batch))
    return None


PROBE_SECONDS = 5.0  # timed seconds of the one-device yardstick, after its warm-up chunk


class ProbeMonitor(Monitor):
    """Stops after PROBE_SECONDS of timed chunks: the warm-up chunk (compilation) does not count."""

    def after_chunk(
        self, steps: int, seconds: float, loss: float, model: Any, train_accuracy: float | None = None
    ) -> bool:
        stop = super().after_chunk(steps, seconds, loss, model, train_accuracy)
        del stop  # its wall-clock budget counts the warm-up
        return self.nan or (len(self.chunks) > 1 and sum(t for _, t in self.chunks[1:]) >= PROBE_SECONDS)


def single_device_rate(config: RunConfig, device: str, x: Any, y: Any, emit: Emit) -> dict[str, Any]:
    """Images/s of the same model on one device (the first of the strategy's), the yardstick for a mirrored or
    multi-worker run's scaling efficiency: timed for PROBE_SECONDS after warm-up, so that it is not a fraction of a
    second of noise."""
    import tensorflow as tf

    from envdoctor.smoke import pipeline

    probe = RunConfig(
        **{**asdict(config), "strategy": "default", "checkpoint_dir": None, "steps": None, "time_budget": PROBE_SECONDS}
    )
    trainer = Trainer(probe, tf.distribute.OneDeviceStrategy(device), probe.batch_size)
    monitor = ProbeMonitor(probe, None, probe.batch_size, lambda _e: None)
    trainer.fit(pipeline.train_dataset(x, y, config.model, config.batch_size), monitor)
    rate = monitor.throughput()
    emit(
        {
            "event": "note",
            "message": f"one device ({device}): {rate['images_per_sec']:.0f} images/s over "
            f"{rate.get('measured_steps')} steps",
        }
    )
    return {
        "device": device,
        "images_per_sec": rate["images_per_sec"],
        "steps": rate.get("measured_steps"),
        "seconds": rate["measured_steps"] * rate["sec_per_batch"] if rate.get("measured_steps") else None,
    }


def run(config: RunConfig, emit: Emit, started: float) -> dict[str, Any]:
    """The whole run; whatever happens, the concurrent evaluator is then told that training is over."""
    try:
        return _run(config, emit, started)
    finally:
        if config.checkpoint_dir and is_chief():
            (Path(config.checkpoint_dir) / "DONE").touch()


def _run(config: RunConfig, emit: Emit, started: float) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    from envdoctor.smoke import evalproc

    import_seconds = time.perf_counter() - started
    set_threads(tf, config)  # before any op: TensorFlow fixes its thread pools at the first one
    keras.utils.set_random_seed(config.seed)
    devices = device_facts(tf)
    emit({"event": "start", "tf_version": tf.version.VERSION, "gpus": devices["gpus"]})
    result: dict[str, Any] = {
        "config": asdict(config),
        "data": config.data,
        "devices": devices,
        "runtime": runtime_facts(tf),
        "tf_import_seconds": import_seconds,
    }
    if config.expect == "gpu" and not devices["gpus"]:
        result["device_mismatch"] = "GPUs were asked for but TensorFlow sees none (CPU-only build, or no driver?)"
        return result
    # The strategy first: MultiWorkerMirroredStrategy must configure collective ops before any op runs (the
    # matmul measurements below run ops).
    if config.strategy == "multi-worker":  # the constructor blocks until every worker has joined
        peers = multiworker_peers()
        emit(
            {
                "event": "note",
                "waiting_for": peers,
                "message": f"waiting for the other workers ({', '.join(peers)}) to join",
            }
        )
    strategy = make_strategy(tf, config.strategy)
    emit({"event": "strategy_ready", "replicas": strategy.num_replicas_in_sync})
    result["strategy"] = {
        "name": config.strategy,
        "replicas": strategy.num_replicas_in_sync,
        "devices": strategy_devices(strategy),
    }
    if config.strategy == "mirrored" and strategy.num_replicas_in_sync < 2:
        return result  # nothing to scale over: the parent says so at once instead of after the whole budget
    result.update(precision_and_calibration(config, devices, emit))
    if config.checkpoint_dir and is_chief():  # the evaluator builds its model in the same policy
        (Path(config.checkpoint_dir) / evalproc.POLICY_FILE).write_text(result["precision"]["policy"])
    x_train, y_train, x_test, y_test = load_arrays(config.data_file)
    # The yardstick of scaling efficiency: one device alone, timed before the strategy trains. Multi-worker: the
    # chief only (it reports; the other workers wait for it at the model's first collective, the variables'
    # broadcast), on its first device: the cluster's rate is then compared with N times the chief's device.
    if strategy.num_replicas_in_sync > 1 and (
        config.strategy == "mirrored" or (config.strategy == "multi-worker" and is_chief())
    ):
        probe = single_device_rate(config, result["strategy"]["devices"][0], x_train, y_train, emit)
        result.update(single_device=probe, single_device_images_per_sec=probe["images_per_sec"])
    model = train_model(config, strategy, x_train, y_train, emit, result, x_test, y_test)
    if config.calibrate and config.evaluate and "calibration" in result:  # did the rate change while it trained?
        # The same procedure as before training: a shorter one read up to 18% apart from it on a quiet VM
        # (bench/README.md), which is noise of the measurement, not a change of the device.
        emit({"event": "phase", "phase": "recheck", "expected_seconds": 3.0})
        after = calibrate_matmul(result["calibration"]["device"], result["calibration"]["dtype"])
        result["calibration_after"] = after.to_dict()
        result["calibration_gflops"] = yardstick(result["calibration"], result["calibration_after"])
    if not result["nan_loss"] and config.evaluate:
        emit({"event": "phase", "phase": "evaluate", "images": int(len(y_test))})
        eval_start = time.perf_counter()
        result["test_accuracy"] = accuracy(model, x_test, y_test, config.model, emit)
        result["eval_seconds"] = time.perf_counter() - eval_start
        if config.logdir:
            write_scalars(config.logdir, monitor_step(result), {"test/accuracy": result["test_accuracy"]})
    return result


def yardstick(before: dict[str, Any], after: dict[str, Any]) -> float:
    """The device's rate: the faster of the two calibrations when the later one settled. Other work only slows a
    product down, and stock TensorFlow's Eigen matmuls on the 2-core VM ran in modes that last seconds (five
    back-to-back 3 s calibrations in one quiet process: 126, 128, 104, 107, 76 GFLOP/s; oneDNN's: 150-176), so
    the faster steady reading is the nearer to what the device sustains."""
    if after.get("stable") and after["gflops"] > before["gflops"]:
        return float(after["gflops"])
    return float(before["gflops"])


def set_threads(tf: Any, config: RunConfig) -> None:
    if config.intra_op_threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
    if config.inter_op_threads is not None:
        tf.config.threading.set_inter_op_parallelism_threads(config.inter_op_threads)


def monitor_step(result: dict[str, Any]) -> int:
    return int(result.get("steps") or 0)


def precision_and_calibration(config: RunConfig, devices: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """Set the Keras dtype policy; measure what one device sustains on matmuls in that policy's compute dtype,
    with the training's threads, in this process, right before training (the same state it will train in)."""
    import keras

    flags = set(cpu_facts().flags)
    emit({"event": "phase", "phase": "calibrate", "expected_seconds": 3.0})
    policy, why, measured = choose_precision(
        config.precision, devices["gpus"], flags, emit, measure=config.strategy != "multi-worker"
    )
    keras.mixed_precision.set_global_policy(policy)
    out: dict[str, Any] = {"precision": {"policy": policy, "why": why}}
    if config.calibrate:
        dtype = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(policy, "float32")
        device = "/GPU:0" if devices["gpus"] else "/CPU:0"
        calibration = measured.get(dtype) or calibrate_matmul(device, dtype)
        out.update(calibration=calibration.to_dict(), calibration_gflops=calibration.gflops, calibration_dtype=dtype)
        stable = "stable" if calibration.stable else "NOT stable"
        emit(
            {
                "event": "note",
                "message": f"matmul calibration: {calibration.gflops:.0f} GFLOP/s {dtype} on one "
                f"device ({stable}: spread {calibration.spread:.0%} over the last "
                f"{min(calibration.samples, 5)} of {calibration.samples} products)",
            }
        )
    return out


def train_model(
    config: RunConfig,
    strategy: Any,
    x_train: Any,
    y_train: Any,
    emit: Emit,
    result: dict[str, Any],
    x_test: Any = None,
    y_test: Any = None,
) -> Any:
    """Train under `strategy`; record the model, the steps and the warm-up-free throughput in `result`."""
    from envdoctor.smoke import models, pipeline

    global_batch = config.batch_size * strategy.num_replicas_in_sync
    trainer = Trainer(config, strategy, global_batch)
    model = trainer.model
    result["variable_device"] = getattr(model.weights[0].value, "device", None) or str(result["strategy"]["devices"])
    result["model"] = {
        "name": config.model,
        "params": model.count_params(),
        "forward_flops_per_image": models.forward_flops(model),
        "train_flops_per_image": models.train_flops(model),
    }
    monitor = Monitor(
        config, planned_steps(config, len(y_train), global_batch), global_batch, emit, train_images=len(y_train)
    )
    if config.curve_points and x_test is not None:  # --plot/--logdir: a few test-subset points along the run
        monitor.probe = curve_probe(model, x_test, y_test, config.model)
    emit(
        {
            "event": "phase",
            "phase": "train",
            "budget_seconds": config.time_budget if not monitor.total_steps else None,
            "total_steps": monitor.total_steps,
            "train_images": int(len(y_train)),
            "global_batch": global_batch,
        }
    )
    trainer.fit(pipeline.train_dataset(x_train, y_train, config.model, global_batch, seed=config.seed), monitor)
    result.update(
        train_seconds=monitor.elapsed(),
        steps=monitor.step,
        images_seen=monitor.step * global_batch,
        epochs=monitor.step * global_batch / len(y_train),
        final_loss=monitor.last_loss,
        nan_loss=monitor.nan,
        history=monitor.history,
        curve=monitor.curve,
        **monitor.throughput(),
    )
    if config.checkpoint_dir and is_chief():  # the final weights, then DONE: the evaluator ends after this one
        save_checkpoint(model, Path(config.checkpoint_dir), monitor.step)
        (Path(config.checkpoint_dir) / "DONE").touch()
    return model


def main(argv: list[str] | None = None) -> NoReturn:
    started = time.perf_counter()
    config = RunConfig.from_json(Path((sys.argv[1:] if argv is None else argv)[0]).read_text())

    def body(emit: Emit) -> int:
        emit({"event": "result", "result": run(config, emit, started)})
        return 0

    run_child(body)


if __name__ == "__main__":
    main()
