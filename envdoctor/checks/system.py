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
                code="system.wsl1",
                severity=Severity.WARNING,
                title="WSL1 cannot use NVIDIA GPUs: CUDA needs WSL2",
                evidence=[f"kernel: {s.kernel}", "WSL version: 1"],
                fix=_wsl2_fix(facts),
            )
        )
    if s.os == "Darwin":
        findings.append(
            Finding(
                code="system.macos",
                severity=Severity.INFO,
                title="macOS: TensorFlow runs on the CPU (or Apple GPUs via tensorflow-metal), never CUDA",
                evidence=[f"os: {s.os}", f"arch: {s.arch}"],
                fix=None,
            )
        )
    no_devices = _container_without_devices(facts)
    findings += no_devices
    findings += _toolkit_missing(facts)
    if s.container and not no_devices and not has_nvidia_gpu(facts) and facts.driver.nvml_error is not None:
        findings.append(
            Finding(
                code="system.container-no-gpu",
                severity=Severity.INFO,
                title=f"Running in a {s.container} container that sees no NVIDIA GPU",
                evidence=[f"container: {s.container}", f"NVML: {facts.driver.nvml_error.message}"],
                fix="# if the host has a GPU: install nvidia-container-toolkit on the host, "
                "then start the container with\n"
                "# --gpus all (Docker) or --device nvidia.com/gpu=all (Podman, CDI)",
            )
        )
    return with_ok("system", findings, lambda: _ok(facts))


# NVIDIA Container Toolkit docs, "Running a Sample Workload": the command that proves a container gets the GPUs.
SAMPLE_WORKLOAD = "sudo docker run --rm --runtime=nvidia --gpus all ubuntu nvidia-smi"


def _nvidia_inside(facts: Facts) -> list[str]:
    """Why this container was meant for a GPU: NVIDIA's images set NVIDIA_VISIBLE_DEVICES, CUDA builds and wheels."""
    signs = []
    nvd = facts.env.variables.get("NVIDIA_VISIBLE_DEVICES")
    if nvd and nvd not in ("void", "none"):
        signs.append(f"NVIDIA_VISIBLE_DEVICES={nvd} (set by NVIDIA's CUDA images)")
    bi = facts.tensorflow.build_info
    if bi is not None and bi.is_cuda_build:
        signs.append(f"TensorFlow {facts.tensorflow.version} is a CUDA build")
    signs += [f"CUDA toolkit {t.version or ''} at {t.path}".replace("  ", " ") for t in facts.cuda.toolkits[:1]]
    if facts.cuda.nvidia_wheels:
        signs.append(f"{len(facts.cuda.nvidia_wheels)} NVIDIA CUDA pip wheel(s)")
    return signs


def _container_without_devices(facts: Facts) -> list[Finding]:
    """A container with CUDA inside but no /dev/nvidia*: started without --gpus (or CDI), so no driver inside it
    can help; the fix is on the host's docker/podman command line."""
    s, nodes = facts.system, facts.driver.device_nodes
    if not s.container or s.wsl or nodes is None or nodes or facts.gpus:
        return []
    signs = _nvidia_inside(facts)
    if not signs:
        return []
    # NVIDIA_VISIBLE_DEVICES comes from an image made for NVIDIA's runtime: the GPU was meant to be there. A CUDA
    # build or toolkit alone is common in CPU-only containers too (pip's tensorflow is a CUDA build).
    meant = facts.env.variables.get("NVIDIA_VISIBLE_DEVICES") not in (None, "", "void", "none")
    return [
        Finding(
            code="system.container-no-gpu-devices",
            severity=Severity.ERROR if meant else Severity.INFO,
            title=f"This {s.container} container has CUDA inside but no /dev/nvidia* devices: "
            "it was started without GPUs"
            if meant
            else f"This {s.container} container has no /dev/nvidia* devices: if the host has a GPU, it was started "
            "without it",
            evidence=[f"container: {s.container}", "/dev: no nvidia* device nodes"]
            + signs
            + ([f"NVML: {facts.driver.nvml_error.message}"] if facts.driver.nvml_error else []),
            fix="# on the host, start the container again with the GPUs: docker run --gpus all … "
            "(podman: --device nvidia.com/gpu=all; Kubernetes: resources.limits nvidia.com/gpu)\n"
            "# no driver is installed inside a container: the NVIDIA Container Toolkit on the host mounts it in\n"
            f"# to test the host's setup, on the host:\n{SAMPLE_WORKLOAD}",
        )
    ]


def _toolkit_missing(facts: Facts) -> list[Finding]:
    """A GPU host with Docker or Podman but no NVIDIA Container Toolkit: `docker run --gpus all` fails with
    'could not select device driver "" with capabilities: [[gpu]]'."""
    s, d = facts.system, facts.driver
    if s.container or s.wsl or not s.container_engines or d.container_toolkit is None or d.container_toolkit:
        return []
    if not (facts.gpus or (d.nvidia_module_loaded and nvidia_pci_bound(facts))):
        return []
    from envdoctor.distro_pkgs import distro_command

    install = distro_command(s.package_manager, "nvidia-container-toolkit") or (
        "# install nvidia-container-toolkit from NVIDIA's repository "
        "(docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html)"
    )
    lines = (
        ["sudo nvidia-ctk runtime configure --runtime=docker", "sudo systemctl restart docker"]
        if "docker" in s.container_engines
        else []
    )
    if "podman" in s.container_engines:  # Podman takes the GPU through CDI
        lines.append("sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml")
    configure = "\n".join(lines)
    return [
        Finding(
            code="system.container-toolkit-missing",
            severity=Severity.WARNING,
            title=f"{' and '.join(s.container_engines)} cannot give containers the GPU: "
            "the NVIDIA Container Toolkit is not installed",
            evidence=[
                f"container engine: {', '.join(s.container_engines)}",
                "nvidia-ctk, nvidia-container-runtime, nvidia-container-cli: not found in /usr/bin, /usr/local/bin",
                'docker run --gpus all fails: could not select device driver "" with capabilities: [[gpu]]',
            ],
            fix=f"{install}\n{configure}\n# then test it:\n{SAMPLE_WORKLOAD}",
        )
    ]


def nvidia_pci_bound(facts: Facts) -> bool:
    return any(g.driver == "nvidia" for g in facts.driver.pci_gpus if g.vendor_id.lower() == "0x10de")


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
        parts.append(
            ("envdoctor on " if other else "")
            + f"Python {s.python_version}"
            + (f" ({s.python_env})" if s.python_env else "")
        )
    if s.container:
        parts.append(f"in {s.container}")
    if s.wsl:
        parts.append(f"WSL{s.wsl}")
    evidence = [f"glibc: {s.glibc}"] if s.glibc else []
    if s.memory_total_bytes:
        evidence.append(f"memory: {gib(s.memory_available_bytes)} available of {gib(s.memory_total_bytes)}")
    if s.package_manager:
        evidence.append(f"package manager: {s.package_manager}")
    return Finding(code="system.ok", severity=Severity.OK, title=", ".join(parts), evidence=evidence)
