"""System findings: the platform TensorFlow runs on (WSL, macOS, containers)."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from envdoctor.checks.base import Finding, Severity, check
from envdoctor.checks.common import gib, has_nvidia_gpu, with_ok
from envdoctor.facts import Facts


@check
def system_checks(facts: Facts) -> Iterable[Finding]:
    s = facts.system
    findings: list[Finding] = []
    if s.wsl == 1:
        findings.append(
            Finding(
                "system.wsl1",
                Severity.WARNING,
                "WSL1 cannot use NVIDIA GPUs: CUDA needs WSL2",
                [f"kernel: {s.kernel}", "WSL version: 1"],
                _wsl2_fix(facts),
            )
        )
    if s.os == "Darwin":
        findings.append(
            Finding(
                "system.macos",
                Severity.INFO,
                "macOS: TensorFlow runs on the CPU (or Apple GPUs via tensorflow-metal), never CUDA",
                [f"os: {s.os}", f"arch: {s.arch}"],
                None,
            )
        )
    if s.container and not has_nvidia_gpu(facts) and facts.driver.nvml_error is not None:
        findings.append(
            Finding(
                "system.container-no-gpu",
                Severity.INFO,
                f"Running in a {s.container} container that sees no NVIDIA GPU",
                [f"container: {s.container}", f"NVML: {facts.driver.nvml_error.message}"],
                "# if the host has a GPU: install nvidia-container-toolkit on the host, then start the container with\n"
                "# --gpus all (Docker) or --device nvidia.com/gpu=all (Podman, CDI)",
            )
        )
    return with_ok("system", findings, lambda: _ok(facts))


def _wsl2_fix(facts: Facts) -> str:
    # WSL sets WSL_DISTRO_NAME inside every distribution; without it, `wsl -l -v` lists the names.
    name = facts.env.variables.get("WSL_DISTRO_NAME")
    convert = f"wsl --set-version {shlex.quote(name)} 2" if name else "wsl -l -v\nwsl --set-version <NAME> 2"
    return f"# in Windows PowerShell:\n{convert}"


def _ok(facts: Facts) -> Finding:
    s = facts.system
    parts = [s.distro_name or s.distro_id or s.os or "unknown OS"]
    if s.kernel:
        parts.append(f"kernel {s.kernel}")
    if s.arch:
        parts.append(s.arch)
    if s.python_version:
        other = facts.tensorflow.python_executable not in (None, s.python_executable)  # --python: not this one
        parts.append(("envdoctor on " if other else "") + f"Python {s.python_version}"
                     + (f" ({s.python_env})" if s.python_env else ""))
    if s.container:
        parts.append(f"in {s.container}")
    if s.wsl:
        parts.append(f"WSL{s.wsl}")
    evidence = [f"glibc: {s.glibc}"] if s.glibc else []
    if s.memory_total_bytes:
        evidence.append(f"memory: {gib(s.memory_available_bytes)} available of {gib(s.memory_total_bytes)}")
    if s.package_manager:
        evidence.append(f"package manager: {s.package_manager}")
    return Finding("system.ok", Severity.OK, ", ".join(parts), evidence)
