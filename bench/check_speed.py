"""Wall time of `envdoctor check` (median of N runs, each a fresh process), optionally side by side with other
doctors. Prints one line per tool; record results with the machine in bench/README.md.

    python bench/check_speed.py                       # envdoctor check, 21 runs
    python bench/check_speed.py --runs 11 \
        --compare "cuda-doctor=/work/benchvenv/bin/cuda-doctor check" \
        --compare "env-doctor=/work/benchvenv/bin/env-doctor check"
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time


def time_command(argv: list[str], runs: int) -> tuple[float, float, float, int]:
    """(median, min, max) wall seconds over runs, plus the last exit code; one warm-up run first (disk cache)."""
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=COMMAND")
    args = parser.parse_args()
    tools = [("envdoctor check", [sys.executable, "-m", "envdoctor", "check"]),
             ("envdoctor check --json", [sys.executable, "-m", "envdoctor", "check", "--json"])]
    tools += [(name, shlex.split(cmd)) for name, cmd in (c.split("=", 1) for c in args.compare)]
    print(f"{'tool':32} {'median s':>9} {'min s':>7} {'max s':>7} exit  (runs={args.runs})")
    for name, argv in tools:
        median, lo, hi, code = time_command(argv, args.runs)
        print(f"{name:32} {median:9.3f} {lo:7.3f} {hi:7.3f} {code:4d}")


if __name__ == "__main__":
    main()
