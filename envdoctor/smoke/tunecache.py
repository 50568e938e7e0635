"""`smoke-test --tune` results cached beside the data, one file per CPU model and TensorFlow version, so that the
doctor can cite a measured gain. Standard library only: `envdoctor check` may import this (no numpy, no TensorFlow,
nothing of the envdoctor.smoke.data package)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from envdoctor.facts import TuneFacts
from envdoctor.resources import cache_dir


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


def tune_facts(cpu_model: str | None, tf_version: str | None) -> TuneFacts | None:
    """The cached measurement for this CPU model and TensorFlow as facts (the tune probe's reading), or None."""
    data = load(cpu_model, tf_version) or {}
    gain = data.get("onednn_gain")
    if not isinstance(gain, dict) or not isinstance(gain.get("ratio"), (int, float)) or isinstance(gain["ratio"], bool):
        return None
    rounds = gain.get("rounds")
    return TuneFacts(
        onednn_ratio=float(gain["ratio"]),
        onednn_versus="on" if gain.get("versus") == "on" else "off",
        rounds=rounds if isinstance(rounds, int) and not isinstance(rounds, bool) else None,
        measured_at=str(data["measured_at"]) if data.get("measured_at") else None,
        tf_version=tf_version,
        unreliable=data.get("unreliable") is True,
    )


def onednn_note(cpu_model: str | None, tf_version: str | None) -> str | None:
    """The doctor's cpu.onednn-off note for this cached measurement (its one wording lives with the check)."""
    from envdoctor.checks.cpu import onednn_gain_note

    measured = tune_facts(cpu_model, tf_version)
    return onednn_gain_note(measured) if measured else None
