"""System findings (WSL1, macOS, containers) and the OK line, over the real H100 server's system facts."""

from __future__ import annotations

from checks_support import codes, h100, no_gpu_facts, one

from envdoctor.checks import Severity
from envdoctor.facts import NvmlError


def test_h100_system_ok_line():
    ok = one(h100("idle"), "system.ok")
    assert ok.title == "Ubuntu 24.04.3 LTS, kernel 6.18.44, x86_64, Python 3.12.3 (venv)"
    assert "package manager: apt" in ok.evidence


def test_wsl1_cannot_use_the_gpu():
    facts = no_gpu_facts()
    facts.system.wsl, facts.system.kernel = 1, "4.4.0-19041-Microsoft"
    f = one(facts, "system.wsl1")
    assert f.severity is Severity.WARNING
    assert f.fix == "# in Windows PowerShell:\nwsl -l -v\nwsl --set-version <NAME> 2"
    facts.env.variables["WSL_DISTRO_NAME"] = "Ubuntu-22.04"  # WSL sets it inside the distribution
    assert one(facts, "system.wsl1").fix == "# in Windows PowerShell:\nwsl --set-version Ubuntu-22.04 2"
    assert "system.ok" not in codes(facts)


def test_macos_is_info():
    facts = no_gpu_facts()
    facts.system.os, facts.system.arch = "Darwin", "arm64"
    assert one(facts, "system.macos").severity is Severity.INFO
    assert "system.ok" in codes(facts)


def test_container_without_gpu_access():
    facts = no_gpu_facts()
    facts.system.container = "docker"
    facts.driver.nvml_error = NvmlError("library_not_found", "NVML Shared Library Not Found")
    f = one(facts, "system.container-no-gpu")
    assert "--gpus all" in f.fix


def test_system_line_names_envdoctors_python_when_another_is_inspected():
    facts = h100("idle")
    facts.tensorflow.python_executable = "/usr/bin/python3"  # --python
    facts.system.python_executable = "/tmp/ux/venv/bin/python"
    assert "envdoctor on Python 3.12.3 (venv)" in one(facts, "system.ok").title
