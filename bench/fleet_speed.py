"""Wall time of `envdoctor fleet` over N reports (default 1,000), made from the real H100 snapshot with a few
nodes drifted, each command a fresh process (median of --runs). Baselines from the same run: parsing the files
with the bounded JSON loader alone (the floor), and loading them with facts.from_dict as it was before type hints
were cached (in-process). Record the output with the machine (lscpu) in bench/README.md.

    python bench/fleet_speed.py                # 1,000 check --json reports and 1,000 --save snapshots
    python bench/fleet_speed.py --nodes 5000 --runs 3
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "tests" / "fixtures" / "h100-firecracker" / "envdoctor" / "busy-facts.json"


def write_reports(folder: Path, nodes: int, as_check_json: bool) -> None:
    """node0001.. from the real snapshot; every 50th node on an older driver, every 97th with no GPU."""
    from envdoctor.doctor import diagnose
    from envdoctor.facts import Facts, from_dict
    from envdoctor.report.jsonout import diagnosis_dict

    base = json.loads(SNAPSHOT.read_text())
    folder.mkdir(parents=True)
    for i in range(1, nodes + 1):
        facts = copy.deepcopy(base)
        facts["system"]["hostname"] = f"node{i:04d}"
        if i % 50 == 0:
            facts["driver"]["userspace_version"] = facts["driver"]["kernel_module_version"] = "570.86.15"
        if i % 97 == 0:
            facts["gpus"] = []
        document = diagnosis_dict(diagnose(from_dict(Facts, facts))) if as_check_json else facts
        (folder / f"node{i:04d}.json").write_text(json.dumps(document, indent=2))


def time_command(argv: list[str], runs: int) -> tuple[float, float, int]:
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), code


def time_in_process(label: str, function, runs: int) -> None:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    print(f"{label:58} {statistics.median(times):9.2f} {min(times):7.2f}")


def baselines(folder: Path, runs: int) -> None:
    from envdoctor import facts as facts_module
    from envdoctor.fleet import load
    from envdoctor.jsonload import load_json_file

    paths = sorted(folder.glob("*.json"))
    time_in_process(
        "  floor: bounded JSON parse of every file (in-process)", lambda: [load_json_file(p) for p in paths], runs
    )
    cached = facts_module._type_hints
    facts_module._type_hints = typing.get_type_hints  # from_dict as it was: hints computed for every object
    try:
        time_in_process(
            "  before: fleet's loading, hints uncached (in-process)",
            lambda: load.load_reports(paths),
            max(1, runs // 3),
        )
    finally:
        facts_module._type_hints = cached
    time_in_process("  now: fleet's loading, hints cached (in-process)", lambda: load.load_reports(paths), runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    envdoctor = [sys.executable, "-m", "envdoctor", "fleet"]
    print(f"{'command (' + str(args.nodes) + ' reports)':58} {'median s':>9} {'min s':>7}  (runs={args.runs})")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, as_check_json in (("check --json", True), ("check --save", False)):
            folder = Path(tmp) / kind.replace(" ", "").replace("-", "")
            write_reports(folder, args.nodes, as_check_json)
            print(f"{kind} reports:")
            for label, extra in (
                ("fleet --json", ["--json"]),
                ("fleet (terminal table)", []),
                ("fleet --json --html", ["--json", "--html", str(Path(tmp) / "fleet.html")]),
            ):
                median, fastest, code = time_command([*envdoctor, str(folder), *extra], args.runs)
                print(f"  {label:56} {median:9.2f} {fastest:7.2f}  exit {code}")
            baselines(folder, args.runs)


if __name__ == "__main__":
    main()
