"""`smoke-test --tune` results cached beside the data, one file per CPU model and TensorFlow version, so that the
doctor can cite a measured gain. Standard library only: `envdoctor check` may import this (no numpy, no TensorFlow,
not envdoctor.smoke.data)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """envdoctor's cache folder, by the same rule as envdoctor.smoke.data.cache_dir (kept import-light here)."""
    if os.environ.get("ENVDOCTOR_CACHE_DIR"):
        return Path(os.environ["ENVDOCTOR_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "envdoctor"


def tune_path(cpu_model: str | None, tf_version: str | None, root: Path | None = None) -> Path:
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{cpu_model or 'unknown-cpu'}-tf{tf_version or 'unknown'}").strip("-")
    return (root or cache_dir()) / "tune" / f"{slug[:120]}.json"


def save(result: dict[str, Any]) -> Path | None:
    """Write the tune result (atomically); None when the cache cannot be written (the table was printed anyway)."""
    from envdoctor.atomic import NotRegularFile, write_text

    path = tune_path(result.get("cpu_model"), result.get("tf_version"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(result, indent=2) + "\n")
    except (OSError, NotRegularFile):
        return None
    return path


def load(cpu_model: str | None, tf_version: str | None) -> dict[str, Any] | None:
    try:
        data = json.loads(tune_path(cpu_model, tf_version).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def onednn_note(cpu_model: str | None, tf_version: str | None) -> str | None:
    """For the doctor's cpu.onednn-off fix: the measured oneDNN gain on this CPU and TensorFlow, or None."""
    data = load(cpu_model, tf_version) or {}
    gain = data.get("onednn_gain")
    if not isinstance(gain, dict) or not isinstance(gain.get("ratio"), (int, float)):
        return None
    return (f"# measured by `envdoctor smoke-test --tune` on this CPU model with TensorFlow {tf_version} "
            f"({data.get('measured_at', '?')}): {gain['ratio']:.2f}x the images/s of oneDNN "
            f"{gain.get('versus', 'off')}, {gain.get('rounds', '?')} interleaved rounds"
            + ("; the machine was shared, so the figure is rough" if data.get("unreliable") else ""))
