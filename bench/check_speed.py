"""Wall time of `envdoctor check` (median of N runs, each a fresh process), optionally side by side with other
doctors or with another checkout of envdoctor. Prints one line per tool; record results with the machine in
bench/README.md.

    python bench/check_speed.py                       # envdoctor check, 21 runs
    python bench/check_speed.py --runs 11 \
        --compare "cuda-doctor=/work/benchvenv/bin/cuda-doctor check" \
        --compare "env-doctor=/work/benchvenv/bin/env-doctor check"
    python bench/check_speed.py --baseline /tmp/envdoctor-before   # this checkout vs another, in alternating pairs
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time


def _once(argv: list[str], cwd: str | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd).returncode
    return time.perf_counter() - start, code


def time_command(argv: list[str], runs: int) -> tuple[float, float, float, int]:
    """(median, min, max) wall seconds over runs, plus the last exit code; one warm-up run first (disk cache)."""
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times, code = [], 0
    for _ in range(runs):
        elapsed, code = _once(argv)
        times.append(elapsed)
    return statistics.median(times), min(times), max(times), code


def alternating(argv: list[str], here: str, baseline: str, runs: int) -> dict[str, list[float]]:
    """Run the same command in two checkouts one after the other, `runs` pairs: on a shared, busy machine the load
    then falls on both alike. `python -m envdoctor` imports the package of the directory it starts in."""
    times: dict[str, list[float]] = {here: [], baseline: []}
    for directory in (here, baseline):
        # Both trees byte-compiled first: with PYTHONDONTWRITEBYTECODE set (as in some shells) a fresh checkout
        # compiles every module at each start, and measured 0.41 s against 0.30 s for set-up alone.
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(directory, "envdoctor")], check=False)
        _once(argv, directory)  # warm-up
    for i in range(runs):
        order = (here, baseline) if i % 2 == 0 else (baseline, here)
        for directory in order:
            times[directory].append(_once(argv, directory)[0])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=COMMAND")
    parser.add_argument("--baseline", metavar="DIR", help="another checkout of envdoctor, timed in alternating pairs")
    args = parser.parse_args()
    if args.baseline:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        argv = [sys.executable, "-m", "envdoctor", "check"]
        print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
        times = alternating(argv, here, os.path.abspath(args.baseline), args.runs)
        for label, directory in (("this checkout", here), ("baseline", os.path.abspath(args.baseline))):
            t = times[directory]
            print(f"{label:16} {statistics.median(t):.3f} s median, min {min(t):.3f}, max {max(t):.3f} ({directory})")
        print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
        return
    tools = [
        ("envdoctor check", [sys.executable, "-m", "envdoctor", "check"]),
        ("envdoctor check --json", [sys.executable, "-m", "envdoctor", "check", "--json"]),
    ]
    tools += [(name, shlex.split(cmd)) for name, cmd in (c.split("=", 1) for c in args.compare)]
    print(f"{'tool':32} {'median s':>9} {'min s':>7} {'max s':>7} exit  (runs={args.runs})")
    for name, argv in tools:
        median, lo, hi, code = time_command(argv, args.runs)
        print(f"{name:32} {median:9.3f} {lo:7.3f} {hi:7.3f} {code:4d}")


if __name__ == "__main__":
    main()
