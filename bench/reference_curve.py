"""Measure the reference learning curve that `envdoctor smoke-test` judges a run against (recipes/smoke_reference.json).

    python bench/reference_curve.py tutorial 0.05 0.1 0.25 0.5 1 2     # one run per epoch count, seed 0
    python bench/reference_curve.py tutorial --seed 1 0.25 1          # a second seed: the spread between seeds

Each point is the *final* test accuracy of a whole run of that many epochs (the one-cycle schedule anneals to the
end of the run, so a short run is not the start of a long one). Accuracy by epochs does not depend on the speed of
the machine, so the runs use oneDNN to finish sooner. Prints one JSON line per run, with the load average.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1"}


def main(argv: list[str]) -> None:
    model, rest = argv[0], argv[1:]
    seed = 0
    if rest[:1] == ["--seed"]:
        seed, rest = int(rest[1]), rest[2:]
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} model {model} seed {seed}", flush=True)
    for epochs in rest:
        before = os.getloadavg()
        started = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "envdoctor",
                "smoke-test",
                "--json",
                "--gpus",
                "none",
                "--model",
                model,
                "--epochs",
                epochs,
                "--seed",
                str(seed),
            ],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        summary = json.loads(out.stdout) if out.stdout.strip() else {}
        print(
            json.dumps(
                {
                    "model": model,
                    "seed": seed,
                    "epochs": float(epochs),
                    "exit": out.returncode,
                    "test_accuracy": summary.get("test_accuracy"),
                    "steps": summary.get("steps"),
                    "images_per_sec": round(summary.get("images_per_sec") or 0),
                    "precision": (summary.get("precision") or {}).get("policy"),
                    "tf_version": summary.get("tf_version"),
                    "wall_s": round(time.perf_counter() - started, 1),
                    "load_before": before,
                    "load_after": os.getloadavg(),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
