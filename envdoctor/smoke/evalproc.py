"""The concurrent evaluator: `python -m envdoctor.smoke.evalproc CONFIG.json`, as cifar10_eval.py was.

It watches the checkpoint folder the training process writes, evaluates each new checkpoint on the test set and
prints `precision @ 1` events (JSON lines on stdout), until training has written DONE and its final checkpoint is
evaluated. Its GPU environment (memory growth above all: the classic OOM) is set by the parent, like training's.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


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


def run(config: EvalConfig, emit: Any) -> int:
    import numpy as np
    import tensorflow as tf

    from envdoctor.smoke import models, pipeline

    with np.load(config.data_file, allow_pickle=False) as npz:
        x_test, y_test = npz["x_test"], npz["y_test"]
    model = models.build(config.model)
    dataset = pipeline.eval_dataset(x_test, y_test, config.model)
    emit({"event": "eval_start", "gpus": [g.name for g in tf.config.list_physical_devices("GPU")]})
    directory, done_seen, last, deadline = Path(config.checkpoint_dir), False, -1, time.monotonic() + config.timeout
    while time.monotonic() < deadline:
        done_seen = done_seen or (directory / "DONE").exists()  # read before the newest: no race with the final one
        newest = newest_checkpoint(directory)
        if newest is not None and step_of(newest) != last:
            last = step_of(newest)
            started = time.perf_counter()
            with np.load(newest) as weights:
                model.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])
            logits = model.predict(dataset, verbose=0)
            emit({"event": "eval", "step": last, "precision_at_1": float(np.mean(np.argmax(logits, 1) == y_test)),
                  "seconds": time.perf_counter() - started})
            continue
        if done_seen:
            emit({"event": "eval_done", "last_step": last})
            return 0
        time.sleep(config.poll_seconds)
    emit({"event": "error", "message": f"evaluator gave up after {config.timeout:.0f}s without DONE"})
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = EvalConfig(**json.loads(Path(argv[0]).read_text()))
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stdout carries events only
    sys.stdout = sys.stderr

    def emit(event: dict[str, Any]) -> None:
        events.write(json.dumps(event) + "\n")

    try:
        return run(config, emit)
    except Exception as exc:
        traceback.print_exc()  # into the process log, whose tail the parent shows on failure
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 1


if __name__ == "__main__":
    sys.exit(main())
