"""External commands: no shell, a timeout, bounded output (a hostile `--python` printing without end)."""

from __future__ import annotations

import sys
import time

from envdoctor.runner import MAX_OUTPUT, run_command


def test_output_beyond_the_bound_stops_the_command() -> None:
    started = time.monotonic()
    result = run_command(["yes"], timeout=30)
    assert result.returncode is None and result.error == f"stopped: more than {MAX_OUTPUT >> 20} MiB of output"
    assert time.monotonic() - started < 10


def test_a_child_that_closes_its_pipes_but_keeps_running_times_out() -> None:
    result = run_command([sys.executable, "-c", "import os, time; os.close(1); os.close(2); time.sleep(30)"], timeout=1)
    assert result.returncode is None and result.error == "timeout after 1s" and result.seconds < 5


def test_stdout_stderr_and_exit_code_are_kept() -> None:
    result = run_command([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
    assert (result.returncode, result.stdout, result.stderr, result.error) == (3, "out\n", "err\n", None)
