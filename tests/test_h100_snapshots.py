"""Diagnose what envdoctor itself recorded on a real H100 (tests/fixtures/h100-firecracker/envdoctor/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEN = REPO / "tests" / "fixtures" / "h100-firecracker" / "envdoctor"
UUID = "GPU-01d83f95-672d-81b5-9526-846e008943ce"


def envdoctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envdoctor", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=120)


def findings(snapshot: str) -> dict[str, dict]:
    result = envdoctor("check", "--json", "--from", str(SEEN / snapshot))
    assert result.returncode == 0, result.stderr
    return {f["code"]: f for f in json.loads(result.stdout)["findings"]}


def test_idle_h100_is_healthy() -> None:
    found = findings("facts.json")
    assert {"driver.ok", "gpu.ok", "cuda.ok"} <= set(found)
    assert found["driver.ok"]["title"] == "NVIDIA driver 580.159.04 (open kernel module), supports CUDA ≤ 13.0"
    assert not [f for f in found.values() if f["severity"] in ("warning", "error")]


def test_busy_h100_warns_that_tensorflow_would_run_out_of_memory() -> None:
    found = findings("busy-facts.json")
    warning = found["gpu.memory-in-use"]
    assert warning["severity"] == "warning"
    assert any("pid 540" in e and "6.5 GiB" in e for e in warning["evidence"])
    # The only GPU is the busy one, so auto:1 would refuse: the fix turns memory growth on for GPU 0 instead.
    assert warning["fix"].startswith('eval "$(envdoctor env --gpus 0)"')
    assert "auto:1" not in warning["fix"].splitlines()[0]


def test_gpus_table_and_env_from_the_recorded_inventory() -> None:
    table = envdoctor("gpus", "--from", str(SEEN / "gpus.json"))
    assert table.returncode == 0
    row = next(line for line in table.stdout.splitlines() if UUID in line)
    assert "00000000:00:06.0" in row and "NVIDIA H100 80GB HBM3" in row and "9.0" in row
    env = envdoctor("env", "--gpus", "GPU-01d8", "--from", str(SEEN / "gpus.json"))
    assert env.stdout.splitlines() == ["export CUDA_DEVICE_ORDER='PCI_BUS_ID'",
                                       f"export CUDA_VISIBLE_DEVICES='{UUID}'",
                                       "export TF_FORCE_GPU_ALLOW_GROWTH='true'"]


def test_build_tf_plans_for_the_recorded_h100() -> None:
    plan = envdoctor("build-tf", "--dry-run", "--tf-version", "2.20.0", "--from", str(SEEN / "facts.json"),
                     "--skip-flag-check")
    assert plan.returncode == 0, plan.stderr
    assert "HERMETIC_CUDA_COMPUTE_CAPABILITIES=sm_90,compute_90" in plan.stdout
