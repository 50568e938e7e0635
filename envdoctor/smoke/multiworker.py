"""--strategy multi-worker: the worker list and TF_CONFIG for MultiWorkerMirroredStrategy.

Every worker runs the same command with its own --worker-index; TensorFlow's collective ops do the rest. All
workers must stop at the same step (a collective waits for everyone), so a multi-worker run counts steps or
epochs, never wall time.
"""

from __future__ import annotations

import json
import re
import socket

from envdoctor.errors import UsageError

_WORKER = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")


def parse_workers(text: str | None) -> list[str]:
    """'host:port,host:port' -> the list; a bad entry is a usage error."""
    if not text:
        raise UsageError("--strategy multi-worker needs --workers host:port,host:port,...")
    workers = [w.strip() for w in text.split(",") if w.strip()]
    for worker in workers:
        m = _WORKER.match(worker)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise UsageError(f"bad worker {worker!r}: write host:port (port 1-65535)")
    if len(set(workers)) != len(workers):
        raise UsageError(f"a worker is listed twice in {text!r}")
    return workers


def tf_config(workers: list[str], index: int | None) -> str:
    """The TF_CONFIG of worker `index` (worker 0 is the chief that writes checkpoints)."""
    if index is None:
        raise UsageError("--strategy multi-worker needs --worker-index (0 on the chief)")
    if not 0 <= index < len(workers):
        raise UsageError(f"--worker-index {index} is out of range for {len(workers)} workers")
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def listening(worker: str, seconds: float = 1.0) -> bool:
    """Whether something accepts connections at host:port: a worker that never started does not."""
    host, _, port = worker.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return True
    except (OSError, ValueError):
        return False
