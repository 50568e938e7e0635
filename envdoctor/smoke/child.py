"""What the two child processes (training, the concurrent evaluator) share: the JSON event stream on stdout, and
dying with the parent.

The parent starts each child in its own session (so a timeout or Ctrl-C kills the whole group); the price is
that a parent killed outright (SIGKILL, the OOM killer) would leave it running. `die_with_parent` closes that gap.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

Emit = Callable[[dict[str, Any]], None]
PARENT_ENV = "ENVDOCTOR_SMOKE_PARENT"  # the parent's pid, set by session._spawn
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when the parent dies; exit now if it already has (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: a broken event pipe still ends the child (see event_stream)
        pass
    parent = os.environ.get(PARENT_ENV)
    if parent and parent.isdigit() and os.getppid() != int(parent):  # it died before prctl took effect
        os._exit(1)


def event_stream() -> Emit:
    """One JSON event per line on the real stdout; everything else written to stdout (TF, Keras, absl) goes to
    stderr, the process log. An event the parent can no longer read means it is gone: stop at once."""
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(event: dict[str, Any]) -> None:
        try:
            events.write(json.dumps(event) + "\n")
        except (BrokenPipeError, OSError):
            os._exit(1)

    return emit


def installed_distributions(package_dir: str) -> list[dict[str, Any]]:
    """The installed distributions whose RECORD lists package_dir's __init__.py, and how each was installed.

    An `envdoctor build-tf` wheel keeps the stock name and version (tensorflow_cpu 2.21.0); what tells it apart
    is PEP 610's direct_url.json, which pip writes for a wheel installed from a file or URL and never for one
    from an index."""
    from importlib import metadata

    package = os.path.basename(package_dir)
    found = []
    for dist in metadata.distributions(path=[os.path.dirname(package_dir)]):
        if f"\n{package}/__init__.py," not in "\n" + (dist.read_text("RECORD") or ""):
            continue
        try:
            direct = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            direct = {}
        found.append(
            {
                "name": dist.metadata["Name"],
                "version": dist.version,
                "installer": (dist.read_text("INSTALLER") or "").strip() or None,
                "installed_from": direct.get("url") if isinstance(direct, dict) else None,
            }
        )
    return found


def run_child(body: Callable[[Emit], int]) -> NoReturn:
    """Run a child's body with the event stream; an exception becomes an "error" event (the traceback goes to the
    process log, whose tail the parent shows). Ends with os._exit: everything is reported by then, and
    TensorFlow's destructors can block for tens of seconds (a tf.data iterator that fed a tf.function loop)."""
    die_with_parent()
    emit = event_stream()
    try:
        code = body(emit)
    except Exception as exc:
        traceback.print_exc()
        emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        code = 1
    sys.stderr.flush()
    os._exit(code)
