"""A real Slurm (munge, slurmctld, slurmd on this machine, started by scripts/slurm-local.sh as .ci/run does):
the fleet collected with srun, and a two-task multi-worker smoke-test whose cluster TensorFlow's
SlurmClusterResolver finds from the step's own variables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "slurm-local.sh"


def _answers(env: dict[str, str]) -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], env=env, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    """The environment for srun: a running cluster (SLURM_CONF from .ci/run), else one started here and stopped
    after these tests. Skipped only where Slurm is not installed or cannot be started (not root)."""
    env = dict(os.environ)
    if shutil.which("srun") and _answers(env):
        yield env
        return
    if not (shutil.which("srun") and shutil.which("slurmctld", path=os.environ.get("PATH", "") + ":/usr/sbin")):
        pytest.skip("Slurm is not installed: apt-get install slurm-wlm slurmctld slurmd munge (as .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip(
            "Slurm is installed but not running, and starting slurmd needs root: run .ci/run, or "
            "sudo scripts/slurm-local.sh start and export the SLURM_CONF it prints"
        )
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.fail(f"scripts/slurm-local.sh start failed: {started.stderr.strip()}")
    env["SLURM_CONF"] = started.stdout.strip().rpartition("=")[2]
    try:
        yield env
    finally:
        subprocess.run([str(SCRIPT), "stop"], capture_output=True, timeout=60)


def envdoctor_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "envdoctor", *args]


def test_srun_collects_one_report_per_node_and_fleet_reads_them(slurm: dict[str, str], tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    collect = subprocess.run(
        [
            "srun",
            "--ntasks-per-node=1",
            "--chdir",
            str(REPO),
            "--output",
            f"{reports}/%N.json",
            "--error",
            f"{reports}/%N.err",
            *envdoctor_argv("check", "--json"),
        ],
        env=slurm,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collect.returncode in (0, 1), collect.stderr  # check's own exit code: 1 on error findings
    nodes = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N"], env=slurm, capture_output=True, text=True, timeout=20
    ).stdout.split()
    assert sorted(p.stem for p in reports.glob("*.json")) == sorted(set(nodes))
    result = subprocess.run(
        envdoctor_argv("fleet", str(reports), "--nodes", ",".join(nodes), "--json"),
        env=slurm,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    document = json.loads(result.stdout)
    assert document["missing"] == [] and document["skipped"] == [], document
    assert len(document["nodes"]) == len(set(nodes)) and document["nodes"][0]["source"] == "check --json"
    assert result.returncode == document["summary"]["exit_code"]


@pytest.mark.slow
def test_srun_two_task_multi_worker_smoke_test_finds_its_cluster(slurm: dict[str, str], tmp_path: Path) -> None:
    """`srun -n 2 envdoctor smoke-test --strategy multi-worker`: no --workers, no --worker-index."""
    env = {**slurm, "TMPDIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [
            "srun",
            "-n",
            "2",
            "--chdir",
            str(REPO),
            "--output",
            f"{tmp_path}/task-%t.json",
            "--error",
            f"{tmp_path}/task-%t.err",
            *envdoctor_argv(
                "smoke-test",
                "--strategy",
                "multi-worker",
                "--steps",
                "3",
                "--batch-size",
                "16",
                "--data",
                "synthetic",
                "--precision",
                "fp32",
                "--json",
                "--timeout",
                "240",
            ),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    errors = {p.name: p.read_text()[-1500:] for p in tmp_path.glob("task-*.err")}
    assert run.returncode == 0, (run.stderr, errors)
    summaries = [json.loads((tmp_path / f"task-{i}.json").read_text()) for i in range(2)]
    chief, other = summaries
    assert chief["strategy"]["replicas"] == 2 and chief["steps"] == 3
    assert chief["cluster"]["source"] == "slurm" and chief["cluster"]["worker_index"] == 0
    assert other["cluster"]["worker_index"] == 1 and chief["cluster"]["workers"] == other["cluster"]["workers"]
    assert chief["cluster"]["joined"] == chief["cluster"]["workers"] and len(chief["cluster"]["workers"]) == 2
    assert chief["cluster"]["detail"].startswith("Slurm job ")
