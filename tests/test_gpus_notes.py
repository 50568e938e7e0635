"""The stderr notes of `env` and `run`: GPUs from a --from file, a chosen GPU that is busy, a --memory-limit above
the free memory; and that auto:N picks are reserved by UUID, so a snapshot's picks leave this machine's GPUs free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).parent / "fixtures" / "gpus"
V100 = FIX / "v100-busy.json"  # real DGX-1: GPU 1 has 13968 of 16152 MiB used by pid 1002 at 100%
PAIR = FIX / "theano-8400gs-titan.json"  # two idle GPUs


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "TF_", "ENVDOCTOR_"))}
    e["XDG_RUNTIME_DIR"] = str(tmp_path)
    e["NO_COLOR"] = "1"
    return e


def envdoctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_env_on_a_busy_gpu_notes_its_processes_and_warns_of_the_cap(env):
    out = envdoctor("env", "--gpus", "1", "--memory-limit", "4000", "--from", str(V100), env=env)
    assert out.returncode == 0 and "ENVDOCTOR_TF_MEMORY_LIMIT_MB='4000'" in out.stdout  # a warning, not an error
    lines = out.stderr.splitlines()
    assert f"envdoctor: note: the GPUs come from {V100}, not from this machine" in lines[0]
    assert (
        "envdoctor: note: GPU 1 already runs compute processes (pid 1002; 13968 of 16152 MiB used, 100% busy)" in lines
    )
    assert (
        "envdoctor: warning: --memory-limit 4000 MB is more than GPU 1 has free now (2184 MiB): "
        "TensorFlow will fail to allocate it unless that memory is freed first"
    ) in lines
    assert all(line.startswith("envdoctor: ") for line in lines)


def test_run_notes_busy_gpus_and_that_the_command_runs_here(env):
    cmd = [sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"]
    out = envdoctor("run", "--gpus", "0,1", "--memory-limit", "1000", "--from", str(V100), "--", *cmd, env=env)
    assert out.returncode == 0 and out.stdout.count("GPU-") == 2
    assert "yet the command runs here" in out.stderr
    assert sum("already runs compute processes" in line for line in out.stderr.splitlines()) == 2
    assert "warning" not in out.stderr  # 1000 MB fits in what both GPUs have free


def test_idle_gpu_from_a_live_machine_gets_no_note():
    from envdoctor.facts import GpuFacts, from_dict
    from envdoctor.gpus.notes import selection_notes

    gpus = [from_dict(GpuFacts, g) for g in json.loads(PAIR.read_text())["gpus"]]
    env = {"CUDA_VISIBLE_DEVICES": gpus[1].uuid}
    assert selection_notes(env, gpus, None, None) == []
    mig = [from_dict(GpuFacts, g) for g in json.loads((FIX / "a100-mig.json").read_text())["gpus"]]
    mig_dev = next(m for g in mig for m in g.mig_devices)
    # Processes are per GPU, not per MIG device: no claim either way.
    assert selection_notes({"CUDA_VISIBLE_DEVICES": mig_dev.uuid}, mig, 10**6, None) == []


def test_snapshot_picks_never_block_other_gpus(env, tmp_path):
    # Both GPUs of the fixture are picked (reserved for 60 s, keyed by UUID) ...
    assert envdoctor("env", "--gpus", "auto:2", "--from", str(PAIR), env=env).returncode == 0
    picks = json.loads((tmp_path / "envdoctor" / "picks.json").read_text())
    assert sorted(p["uuid"] for p in picks) == sorted(g["uuid"] for g in json.loads(PAIR.read_text())["gpus"])
    assert envdoctor("env", "--gpus", "auto:1", "--from", str(PAIR), env=env).returncode == 2
    # ... yet another machine's GPUs (here: the real H100) are still free in the same lock directory.
    other = envdoctor("env", "--gpus", "auto:1", "--from", str(FIX / "h100-idle.json"), env=env)
    assert other.returncode == 0 and "GPU-c1d61728" in other.stdout
