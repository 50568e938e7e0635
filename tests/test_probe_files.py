"""The one file reader every probe uses: it never blocks (a FIFO under --root hung `check` forever), caps what it
reads, and still reads the real /proc pseudo-files (regular files of size 0)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from envdoctor.probes import ProbeContext, read_bytes

REPO = Path(__file__).resolve().parent.parent
ROOTS = REPO / "tests" / "fixtures" / "roots"
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this OS")


def _within(seconds: float, fn):
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "blocked"
    return result[0]


@needs_fifo
def test_fifo_is_not_read_and_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "version"
    os.mkfifo(fifo)  # no writer: a plain open() blocks forever
    assert _within(5, lambda: read_bytes(fifo)) is None
    ctx = ProbeContext(root=tmp_path, env={})
    assert _within(5, lambda: ctx.read_text("/version")) is None


def test_regular_files_directories_and_absent_paths(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"0123456789")
    assert read_bytes(tmp_path / "f") == b"0123456789"
    assert read_bytes(tmp_path / "f", limit=4) == b"0123"
    assert read_bytes(tmp_path) is None
    assert read_bytes(tmp_path / "absent") is None
    assert read_bytes("/bad\0path") is None


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="no /proc")
def test_proc_pseudo_files_of_size_zero_are_read() -> None:
    assert os.stat("/proc/self/status").st_size == 0
    assert b"Pid:" in (read_bytes("/proc/self/status") or b"")


@needs_fifo
@pytest.mark.parametrize("name", sorted(p.parent.name for p in ROOTS.glob("*/root")))
def test_check_finishes_on_a_root_whose_every_file_is_a_fifo(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    shutil.copytree(ROOTS / name / "root", root, symlinks=True)
    for path in [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]:
        path.unlink()
        os.mkfifo(path)
    result = subprocess.run(
        [sys.executable, "-m", "envdoctor", "check", "--json", "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode in (0, 1), result.stderr
    assert '"probe_errors": []' in result.stdout
