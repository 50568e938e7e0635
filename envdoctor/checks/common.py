"""Small helpers the check modules share: version parsing, knowledge-table look-ups, the OK rule."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from typing import Any

from packaging.version import InvalidVersion, Version

from envdoctor.checks.base import Finding, Severity
from envdoctor.facts import Facts

# What the checks know about names, releases and versions comes from envdoctor/knowledge/, re-exported here for them.
from envdoctor.knowledge.names import dist_name as dist_name
from envdoctor.knowledge.releases import has_and_cuda_extra as has_and_cuda_extra
from envdoctor.knowledge.releases import release_rows as release_rows
from envdoctor.knowledge.releases import releases_for_python as releases_for_python
from envdoctor.knowledge.releases import stock_wheel_instructions as stock_wheel_instructions
from envdoctor.knowledge.releases import supports_python as supports_python
from envdoctor.knowledge.releases import tf_release as tf_release
from envdoctor.knowledge.releases import wheels as tf_releases  # noqa: F401
from envdoctor.knowledge.versions import major_minor as major_minor
from envdoctor.knowledge.versions import version as version
from envdoctor.resources import load_recipe

NVIDIA_VENDOR = "0x10de"


def requirement(name: str, pin: str | None) -> str:
    """A shell-quoted pip requirement, `name==pin` when pin is a valid version (a snapshot may hold anything)."""
    try:
        exact = f"=={Version(pin)}" if pin else ""
    except InvalidVersion:
        exact = ""
    return shlex.quote(f"{name}{exact}")


def is_tf_distribution(name: str) -> bool:
    """A distribution that installs the `tensorflow` package (python_packages.json, as the probe uses it)."""
    table = load_recipe("python_packages.json")
    canonical = dist_name(name)
    names = {dist_name(n) for n in table["tensorflow_distributions"]}
    return canonical in names or canonical.startswith(tuple(table["tensorflow_prefixes"]))


def nvidia_pci(facts: Facts) -> list[Any]:
    return [g for g in facts.driver.pci_gpus if g.vendor_id.lower() == NVIDIA_VENDOR]


def has_nvidia_gpu(facts: Facts) -> bool:
    """A GPU is there: NVML (or nvidia-smi) listed one, or the PCI bus shows one (even with no driver)."""
    return bool(facts.gpus or nvidia_pci(facts))


def gpu_usable(facts: Facts) -> bool:
    """An NVIDIA GPU with a working driver: NVML listed it, or (under --root) the nvidia module holds it."""
    if facts.gpus:
        return True
    if facts.system.wsl == 2:
        return False  # WSL2 GPUs are only known through NVML
    return facts.driver.nvidia_module_loaded and any(g.driver == "nvidia" for g in nvidia_pci(facts))


def on_linux(facts: Facts) -> bool:
    """Linux, or unknown (a snapshot without it): where the [and-cuda] extra and NVIDIA's wheels exist."""
    return (facts.system.os or "Linux") == "Linux"


def tf_requirement(facts: Facts, pin: str = "") -> str:
    """A shell-quoted `tensorflow[and-cuda]==pin` where a GPU is usable on Linux and that release has the
    extra (a plain `tensorflow` there installs no CUDA libraries: TF runs on the CPU), else `tensorflow==pin`.
    pin: "2.20.0", "2.21.*" or "" (any)."""
    cuda = gpu_usable(facts) and on_linux(facts)
    extra = "[and-cuda]" if cuda and has_and_cuda_extra(pin) is not False else ""
    if pin.endswith(".*"):
        return shlex.quote(f"tensorflow{extra}=={pin}")
    return requirement(f"tensorflow{extra}", pin or None)


WSL_LIB = "/usr/lib/wsl/"


def wsl_linux_driver_evidence(facts: Facts) -> list[str]:
    """Signs of a Linux NVIDIA driver inside WSL2 (where the driver is Windows'): empty when there are none."""
    d = facts.driver
    evidence: list[str] = []
    if d.kernel_module_version or d.nvidia_module_loaded:
        evidence.append(f"nvidia kernel module inside WSL: {d.kernel_module_version or 'loaded'}")
    if d.nvml_error is not None and d.nvml_error.kind in ("driver_not_loaded", "lib_rm_version_mismatch"):
        evidence.append(
            f"NVML: {d.nvml_error.message} (a Linux libnvidia-ml looks for a kernel module WSL does not have)"
        )
    for lib in facts.cuda.tf_libraries:
        if lib.name in ("cuda", "nvidia-ml") and lib.path and not lib.path.startswith(WSL_LIB):
            evidence.append(f"{lib.soname} resolves to {lib.path}, not {WSL_LIB}lib")
    for found in d.wsl_linux_libraries or []:
        release = f" (driver {found.version})" if found.version else ""
        evidence.append(f"{found.path}: a Linux driver's library{release}, found before {WSL_LIB}lib")
    return evidence


def python_cmd(facts: Facts) -> str:
    """The interpreter whose environment is diagnosed, quoted for a shell."""
    exe = facts.tensorflow.python_executable or facts.system.python_executable or "python3"
    return shlex.quote(exe)


def pip_fix(facts: Facts, requirement: str, remove: str = "") -> str:
    """`pip install requirement` (after uninstalling `remove`) for the diagnosed interpreter; for one that is
    externally managed (PEP 668), where pip refuses both, a new virtual environment that gets it instead."""
    py = python_cmd(facts)
    if facts.tensorflow.externally_managed:
        return venv_fix(facts, requirement)
    install = f"{py} -m pip install {requirement}"
    return f"{py} -m pip uninstall -y {remove} && {install}" if remove else install


def venv_fix(facts: Facts, requirement: str) -> str:
    py = python_cmd(facts)
    lines = [
        f"{py} -m venv ~/tf-venv",
        f"~/tf-venv/bin/python -m pip install {requirement}",
        f"# {py} is externally managed (PEP 668): pip refuses to change it, so TensorFlow goes into a venv",
    ]
    from envdoctor.distro_pkgs import install_command

    # Debian/Ubuntu split venv support into its own package; elsewhere it comes with Python.
    if venv_pkg := install_command(facts.system.package_manager, ["python3-venv"]):
        lines.append(f"# if the venv step fails: {venv_pkg}")
    return "\n".join(lines)


def gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def with_ok(category: str, findings: list[Finding], ok: Callable[[], Finding | None]) -> list[Finding]:
    """Add the category's OK finding when nothing in it is a warning or an error."""
    if not any(f.category == category and f.severity.rank >= Severity.WARNING.rank for f in findings):
        extra = ok()
        if extra is not None:
            findings.append(extra)
    return findings


def join(items: Iterable[str], empty: str = "none") -> str:
    items = list(items)
    return ", ".join(items) if items else empty
