"""`--plot FILE`: the run's learning curve next to the reference curve, and images/s over the run (PNG or SVG).

matplotlib is an optional extra (`pip install '.[plot]'` in a clone, or matplotlib itself), imported only here and
only when drawing: it is checked for (without importing it) before TensorFlow starts, so a missing package costs no
training run.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from envdoctor.errors import UsageError

FORMATS = (".png", ".svg")


def check_plot_target(target: str) -> None:
    path = Path(target)
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot {target}: write a .png or .svg file")
    if importlib.util.find_spec("matplotlib") is None:
        # envdoctor is not on the package index: 'envdoctor[plot]' works only as '.[plot]' in a clone; this always does
        raise UsageError(
            f"--plot needs matplotlib in the Python that runs envdoctor: {shlex.quote(sys.executable)} "
            "-m pip install matplotlib"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"--plot {target}: {folder} is not a writable folder")


def _reference_points(model: str) -> list[tuple[float, float]]:
    from envdoctor.smoke import verdict

    curve = verdict.reference()["learning_curves"].get(model)
    if not curve:
        return []
    last = max(p["epochs"] for p in curve["points"])
    epochs = [0.01 * 1.15**i for i in range(200) if 0.01 * 1.15**i <= last]
    return [(e, verdict.reference_accuracy(model, e) or 0.0) for e in epochs]


def draw(summary: dict[str, Any], target: str) -> Path:
    """Four panels: accuracy by epochs (with the reference), accuracy by time, loss by epochs, images/s by time."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and none is touched
    import matplotlib.pyplot as plt

    history = summary.get("history") or []
    curve = summary.get("curve") or []
    model = (summary.get("model") or {}).get("name") or "?"
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    (acc_epochs, acc_time), (loss_epochs, speed) = axes
    _accuracy(acc_epochs, history, curve, summary, "epoch", model)
    _accuracy(acc_time, history, curve, summary, "elapsed", None)
    loss_epochs.plot([h["epoch"] for h in history], [h["loss"] for h in history], color="tab:red", lw=1)
    loss_epochs.set(xlabel="epochs", ylabel="training loss (incl. L2)", title="loss")
    _speed(speed, history, summary)
    fig.suptitle(
        f"envdoctor smoke-test: {model} on {summary.get('device')} — verdict: {summary.get('verdict')}", fontsize=10
    )
    path = Path(target)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _accuracy(
    ax: Any,
    history: list[dict[str, Any]],
    curve: list[dict[str, Any]],
    summary: dict[str, Any],
    x: str,
    reference_model: str | None,
) -> None:
    ax.plot(
        [h[x] for h in history],
        [h.get("train_accuracy") or 0 for h in history],
        lw=1,
        alpha=0.6,
        label="train accuracy (augmented batches)",
    )
    if curve:
        ax.plot([c[x] for c in curve], [c["test_accuracy"] for c in curve], "o-", label="test accuracy (2,000 images)")
    final = summary.get("test_accuracy")
    end = summary.get("epochs") if x == "epoch" else summary.get("train_seconds")
    if final is not None and end:
        ax.plot([end], [final], "*", ms=12, color="black", label=f"final test accuracy {final:.1%}")
    if reference_model:
        ref = _reference_points(reference_model)
        if ref:
            ax.plot(
                [e for e, _ in ref],
                [a for _, a in ref],
                "--",
                color="gray",
                label="reference: final test accuracy of a run of that many epochs",
            )
            ax.set_xscale("log")
    ax.axhline(0.1, color="lightgray", lw=0.8)
    ax.set(
        xlabel="epochs" if x == "epoch" else "seconds of training",
        ylabel="accuracy",
        ylim=(0, 1),
        title="accuracy by epochs" if x == "epoch" else "accuracy by time",
    )
    ax.legend(fontsize=7, loc="upper left")


def _speed(ax: Any, history: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    ax.plot(
        [h["elapsed"] for h in history[1:]],
        [h["images_per_sec"] for h in history[1:]],
        lw=1,
        label="images/s per chunk (warm-up left out)",
    )
    if summary.get("images_per_sec"):
        ax.axhline(
            summary["images_per_sec"],
            color="black",
            lw=0.8,
            ls=":",
            label=f"run's rate {summary['images_per_sec']:.0f} images/s",
        )
    ax.set(xlabel="seconds of training", ylabel="images/s", title="speed over the run")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="lower right")
