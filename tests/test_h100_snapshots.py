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


def envdoctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1", **env},
        timeout=120,
    )


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
    assert env.stdout.splitlines() == [
        "export CUDA_DEVICE_ORDER='PCI_BUS_ID'",
        f"export CUDA_VISIBLE_DEVICES='{UUID}'",
        "export TF_FORCE_GPU_ALLOW_GROWTH='true'",
    ]


def test_build_tf_plans_for_the_recorded_h100() -> None:
    plan = envdoctor(
        "build-tf", "--dry-run", "--tf-version", "2.20.0", "--from", str(SEEN / "facts.json"), "--skip-flag-check"
    )
    assert plan.returncode == 0, plan.stderr
    assert "HERMETIC_CUDA_COMPUTE_CAPABILITIES=sm_90,compute_90" in plan.stdout


# The same checks on a real H200 (tests/fixtures/h200-firecracker/README.md).
H200 = REPO / "tests" / "fixtures" / "h200-firecracker" / "envdoctor"
H200_UUID = "GPU-0a1ca938-30a6-a213-5c9b-a439c6dfff19"


def test_h200_idle_is_healthy_and_busy_gets_memory_growth() -> None:
    result = envdoctor("check", "--json", "--from", str(H200 / "facts.json"))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["summary"]["errors"] == 0 and doc["summary"]["warnings"] == 0
    gpu = doc["facts"]["gpus"][0]
    assert (gpu["name"], gpu["compute_capability"], gpu["uuid"]) == ("NVIDIA H200", "9.0", H200_UUID)
    busy = json.loads(envdoctor("check", "--json", "--from", str(H200 / "busy-facts.json")).stdout)
    warning = next(f for f in busy["findings"] if f["code"] == "gpu.memory-in-use")
    assert any("pid 630" in e and "6.5 GiB of 140.4 GiB" in e for e in warning["evidence"])
    assert warning["fix"].startswith('eval "$(envdoctor env --gpus 0)"')


def test_h200_recorded_session_shows_the_promised_behaviour(tmp_path: Path) -> None:
    session = (H200 / "session.txt").read_text()
    assert "## envdoctor run --gpus 0 -- no-such-command-here\nenvdoctor: error: cannot run" in session
    assert "[exit 127]" in session
    assert f"CUDA_VISIBLE_DEVICES={H200_UUID}\n" in session  # dotenv: unquoted, as docker --env-file reads it
    concurrent = (H200 / "concurrent.txt").read_text()
    assert concurrent.count("exit 0]") == 1 and concurrent.count("exit 2]") == 1  # one GPU, two jobs: one wins
    assert "auto:1 picked GPU 0 (GPU-8c17da9a-24c1-2482-8b6c-e96ec097fd02)" in concurrent  # a second H200 machine
    # A private lock directory: an auto pick is reserved for 60 s, and a rerun must not find its own.
    env = envdoctor("env", "--gpus", "auto:1", "--from", str(H200 / "gpus.json"), XDG_RUNTIME_DIR=str(tmp_path))
    assert f"export CUDA_VISIBLE_DEVICES='{H200_UUID}'" in env.stdout.splitlines()


def test_h200_final_session_shows_the_reviewed_behaviour() -> None:
    # Recorded with this stop's final code on a real H200 (tests/fixtures/h200-firecracker/README.md).
    final = REPO / "tests" / "fixtures" / "h200-firecracker" / "envdoctor-final"
    session = (final / "session.txt").read_text()
    block = session.split("## two concurrent run --gpus auto:1\n")[1].split("\n## ")[0]
    assert block.count("[exit 0]") == 1 and block.count("[exit 2]") == 1  # one GPU, two jobs: one wins
    assert (
        "## envdoctor check --bogus-option\nenvdoctor: error: No such option '--bogus-option' (see envdoctor "
        "check --help)\n[exit 2]" in session
    )  # one line, not click's panel
    assert "inspecting /usr/bin/python3 (Python 3.12.3, system)" in session
    busy = json.loads(envdoctor("check", "--json", "--from", str(final / "busy-facts.json")).stdout)
    assert any(f["code"] == "gpu.memory-in-use" for f in busy["findings"])
