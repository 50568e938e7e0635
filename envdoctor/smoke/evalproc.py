"""The concurrent evaluator: `python -m envdoctor.smoke.evalproc CONFIG.json`, as cifar10_eval.py was.

It watches the checkpoint folder the training process writes, evaluates each new checkpoint on the test set and
prints `precision @ 1` events (JSON lines on stdout), until training has written DONE and its final checkpoint is
evaluated. Its GPU environment (memory growth above all: the classic OOM) is set by the parent, like training's.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

from envdoctor.smoke.child import Emit, run_child


@dataclass
class EvalConfig:
    model: str
    data_file: str
    checkpoint_dir: str
    poll_seconds: float = 0.5
    timeout: float = 3600.0  # stop waiting for checkpoints after this long

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def newest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint (partial files have a leading dot and another suffix)."""
    found = sorted(directory.glob("ckpt-*.npz"))
    return found[-1] if found else None


def step_of(path: Path) -> int:
    return int(path.stem.split("-")[1])


POLICY_FILE = "policy"  # the training's Keras dtype policy, written before its first checkpoint


def build_model(config: EvalConfig, emit: Emit) -> Any:
    """The model in the training's precision policy (read once the first checkpoint exists: training chooses it
    after start-up, with --precision auto by measuring), and where it lives: the parent checks it is on the GPU
    when training is."""
    import keras
    import tensorflow as tf

    from envdoctor.smoke import models

    # Training writes it before its first checkpoint, and this runs after one exists: missing means a bug.
    policy = (Path(config.checkpoint_dir) / POLICY_FILE).read_text().strip()
    keras.mixed_precision.set_global_policy(policy)
    model = models.build(config.model)
    emit(
        {
            "event": "eval_start",
            "gpus": [g.name for g in tf.config.list_physical_devices("GPU")],
            "device": getattr(model.weights[0].value, "device", None),
            "precision": policy,
        }
    )
    return model


def run(config: EvalConfig, emit: Emit) -> int:
    import numpy as np

    from envdoctor.smoke import pipeline

    with np.load(config.data_file, allow_pickle=False) as npz:
        x_test, y_test = npz["x_test"], npz["y_test"]
    dataset = pipeline.eval_dataset(x_test, y_test, config.model)
    model = None
    directory, done_seen, last, deadline = Path(config.checkpoint_dir), False, -1, time.monotonic() + config.timeout
    while time.monotonic() < deadline:
        done_seen = done_seen or (directory / "DONE").exists()  # read before the newest: no race with the final one
        newest = newest_checkpoint(directory)
        if newest is not None and step_of(newest) != last:
            last = step_of(newest)
            model = model or build_model(config, emit)
            emit(evaluate(model, newest, dataset, y_test, during_training=not done_seen))
            continue
        if done_seen:
            emit({"event": "eval_done", "last_step": last})
            return 0
        time.sleep(config.poll_seconds)
    emit({"event": "error", "message": f"evaluator gave up after {config.timeout:.0f}s without DONE"})
    return 1


def evaluate(model: Any, checkpoint: Path, dataset: Any, labels: Any, during_training: bool) -> dict[str, Any]:
    """precision @ 1 of one checkpoint; during_training: training had not finished when it was picked up."""
    import numpy as np

    started = time.perf_counter()
    with np.load(checkpoint) as weights:
        model.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])
    logits = model.predict(dataset, verbose=0)
    precision = float(np.mean(np.argmax(logits, 1) == labels))
    return {
        "event": "eval",
        "step": step_of(checkpoint),
        "precision_at_1": precision,
        "seconds": time.perf_counter() - started,
        "during_training": during_training,
    }


def main(argv: list[str] | None = None) -> NoReturn:
    config = EvalConfig(**json.loads(Path((sys.argv[1:] if argv is None else argv)[0]).read_text()))
    run_child(lambda emit: run(config, emit))


if __name__ == "__main__":
    main()
