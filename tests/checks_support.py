"""Realistic Facts for the check tests, built from real captures through the real parsers.

Origins:
- H100 server: tests/fixtures/h100-firecracker/ (a real capture, see its README.md): NVML through FakeNvml and
  envdoctor.probes.nvidia.read_gpus_nvml, /proc/driver/nvidia/version, /etc/os-release, /proc/cpuinfo.
- CPUs: tests/fixtures/cpuinfo/ (real machines; origins in tests/fixtures/cpuinfo/README.md), parsed
  with envdoctor.probes.cpu.cpu_facts_from_cpuinfo.
- Other GPUs: tests/fixtures/gpus/*.json (GpuFacts from real nvidia-smi reports, sources inside each file).
- TensorFlow build info: the values read from each PyPI wheel's build_info.py
  (each wheel's build_info.py on PyPI), written below as the probe would record them.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from envdoctor.checks import Finding, run_checks
from envdoctor.facts import Facts, GpuFacts, PciGpu, PythonPackage, SystemFacts, TensorflowFacts, TfBuildInfo, from_dict
from envdoctor.probes.cpu import cpu_facts_from_cpuinfo
from envdoctor.probes.nvidia import parse_proc_driver_version, read_gpus_nvml

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from fakenvml import FakeNvml  # noqa: E402

H100 = TESTS / "fixtures" / "h100-firecracker"

CPUINFO = TESTS / "fixtures" / "cpuinfo"

# build_info.py of the official Linux x86_64 wheels (PyPI): (cuda_version, cudnn major, capabilities)
WHEEL_BUILD_INFO = {
    "2.12.0": ("11.8", "8", ["sm_35", "sm_50", "sm_60", "sm_70", "sm_75", "compute_80"]),
    "2.15.0": ("12.2", "8", ["sm_50", "sm_60", "sm_70", "sm_75", "compute_80"]),
    "2.16.1": ("12.3", "8", ["sm_50", "sm_60", "sm_70", "sm_80", "compute_90"]),
    "2.17.0": ("12.3", "8", ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]),
    "2.18.0": ("12.5.1", "9", ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]),
    "2.21.0": ("12.5.1", "9", ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]),
}


def cpuinfo_text(name: str) -> str:
    """A real /proc/cpuinfo from tests/fixtures/cpuinfo (origins in the README.md there)."""
    return (CPUINFO / name).read_text()


def cpu(name: str, arch: str = "x86_64"):
    return cpu_facts_from_cpuinfo(cpuinfo_text(name), arch)


def tensorflow(
    version: str = "2.21.0",
    dist: str = "tensorflow",
    python: str = "3.12.3",
    cuda: bool = True,
    site: str = "/home/user/venv/lib/python3.12/site-packages",
    python_exe: str = "/home/user/venv/bin/python",
) -> TensorflowFacts:
    build = None
    if dist in ("tensorflow", "tf-nightly"):
        cuda_v, cudnn, caps = WHEEL_BUILD_INFO[version]
        build = TfBuildInfo(
            is_cuda_build=cuda,
            is_rocm_build=False,
            cuda_version=cuda_v if cuda else None,
            cudnn_version=cudnn if cuda else None,
            cuda_compute_capabilities=caps if cuda else [],
            cpu_compiler="/usr/lib/llvm-18/bin/clang",
        )
    elif dist == "tensorflow-cpu":
        build = TfBuildInfo(is_cuda_build=False, is_rocm_build=False, cpu_compiler="/usr/lib/llvm-18/bin/clang")
    return TensorflowFacts(
        python_executable=python_exe,
        python_version=python,
        distributions=[PythonPackage(dist, version, site)],
        version=version,
        location=f"{site}/tensorflow",
        build_info=build,
        site_packages=[site],
    )


def h100(state: str = "busy") -> Facts:
    """The real H100 server: Ubuntu 24.04, driver 580.159.04 (open), one H100, its own CPU."""
    base = H100 / state
    driver, gpus = read_gpus_nvml(FakeNvml.from_json(base / "nvml.json"))
    driver.kernel_module_version, driver.kernel_module_flavour = parse_proc_driver_version(
        (base / "root/proc/driver/nvidia/version").read_text()
    )
    driver.nvidia_module_loaded = True
    driver.pci_gpus = [PciGpu("0000:00:06.0", "0x10de", "0x2330", "0x030200", "nvidia")]
    facts = Facts(
        system=SystemFacts(
            os="Linux",
            distro_id="ubuntu",
            distro_version="24.04",
            distro_name="Ubuntu 24.04.3 LTS",
            distro_like=["debian"],
            package_manager="apt",
            kernel="6.18.44",
            arch="x86_64",
            python_version="3.12.3",
            python_executable="/home/user/venv/bin/python",
            python_env="venv",
        ),
        cpu=cpu_facts_from_cpuinfo((base / "root/proc/cpuinfo").read_text(), "x86_64"),
        driver=driver,
        gpus=gpus,
    )
    return facts


def gpus_fixture(name: str) -> list[GpuFacts]:
    data = json.loads((TESTS / "fixtures" / "gpus" / name).read_text())
    return [from_dict(GpuFacts, g) for g in data["gpus"]]


def no_gpu_facts(cpu_file: str = "x86-epyc-9654-zen4.txt") -> Facts:
    return Facts(
        system=SystemFacts(
            os="Linux",
            distro_id="rocky",
            distro_version="9.3",
            distro_name="Rocky Linux 9.3",
            package_manager="dnf",
            arch="x86_64",
            python_version="3.12.3",
        ),
        cpu=cpu(cpu_file),
    )


# The fix convention: one shell command per line, explanations as lines starting with "# ". A command line
# starts with one of these words (or an interpreter path such as /home/user/venv/bin/python).
_COMMAND = re.compile(
    r"(sudo|export|unset|eval|printf|echo|mkdir|conda|curl|envdoctor|wsl|nvidia-smi|ls|[A-Z_]+=\S*|\S*python[\d.]*(?:\.exe)?"
    r"|\S*/bin/pip)"
)


def fix_convention_violations(found: list[Finding]) -> list[str]:
    """Each fix line that is neither a command nor a '# ' comment, as 'code: line'."""
    bad = []
    for f in found:
        for line in f.fix.split("\n") if f.fix else []:  # a shell's lines (str.splitlines also splits at \x1e)
            if line.startswith("# "):
                continue
            quoted = re.match(r"'[^']*python[\d.]*(?:\.exe)?'", line)  # an interpreter path with spaces, quoted
            first = quoted.group(0) if quoted else line.split(" ", 1)[0]
            if not (quoted or _COMMAND.fullmatch(first)) or "`" in line or line.rstrip().endswith("."):
                bad.append(f"{f.code}: {line}")
    return bad


def findings(facts: Facts) -> list[Finding]:
    return run_checks(facts)


def codes(facts: Facts) -> set[str]:
    return {f.code for f in run_checks(facts)}


def one(facts: Facts, code: str) -> Finding:
    found = [f for f in run_checks(facts) if f.code == code]
    assert len(found) == 1, f"{code}: {[f.code for f in run_checks(facts)]}"
    return found[0]
