"""Every fix is copy-pasteable: one command per line, explanations as '# ' lines (README, "check").

The scenarios below reach nearly every finding code on realistic facts (tests/checks_support.py says where
they come from); the test fails on any fix line that is prose, or on a code the scenarios stop reaching.
"""

from __future__ import annotations

from checks_support import (
    H100,
    TESTS,
    fix_convention_violations,
    gpus_fixture,
    h100,
    no_gpu_facts,
    tensorflow,
)

from envdoctor.checks import Finding, Severity, run_checks
from envdoctor.facts import (
    CudaToolkit,
    DeepFacts,
    Facts,
    LibraryResolution,
    NvmlError,
    PciGpu,
    PythonPackage,
)
from envdoctor.probes import ProbeContext, collect


def _roots() -> list[Facts]:
    roots = sorted((TESTS / "fixtures" / "roots").glob("*/root")) + sorted(H100.glob("*/root"))
    return [collect(ProbeContext(root=root, env={})) for root in roots]


def _gpu_scenarios() -> list[Facts]:
    out = []
    for build in ("2.12.0", "2.17.0", "2.21.0"):
        facts = h100("busy")
        facts.gpus = gpus_fixture("theano-8400gs-titan.json") + gpus_fixture("v100-busy.json")
        facts.tensorflow = tensorflow(build, python="3.11.9")
        facts.cuda.toolkits = [CudaToolkit("/usr/local/cuda-13.0", "13.0", "version.json", active=True)]
        facts.cuda.tf_libraries = [
            LibraryResolution("cudart", "libcudart.so.12", "missing"),
            LibraryResolution("cuda", "libcuda.so.1", "missing"),
            LibraryResolution("cublas", "libcublas.so.12", "off_loader_path", candidates=["/opt/x/libcublas.so.12"]),
        ]
        facts.env.variables = {"CUDA_VISIBLE_DEVICES": "0,7", "TF_FORCE_GPU_ALLOW_GROWTH": "yes"}
        facts.env.variables["TF_ENABLE_ONEDNN_OPTS"] = "on"
        if build == "2.17.0":
            facts.env.variables["CUDA_DEVICE_ORDER"] = "bogus"  # CUDA then sees no GPU at all (init error 101)
        out.append(facts)
    old = h100("idle")
    old.driver.userspace_version = old.driver.kernel_module_version = "535.54.03"
    old.driver.cuda_driver_version = "12.2"
    old.tensorflow = tensorflow("2.21.0")
    out.append(old)
    blackwell = h100("idle")
    blackwell.gpus[0].name, blackwell.gpus[0].compute_capability = "NVIDIA GeForce RTX 5090", "12.0"
    blackwell.tensorflow = tensorflow("2.21.0")
    out.append(blackwell)
    mig = h100("idle")
    mig.gpus = gpus_fixture("a100-mig.json")
    for g in mig.gpus:
        g.mig_devices = []
    out.append(mig)
    unknown = h100("idle")
    unknown.gpus = gpus_fixture("a100-mig.json")
    for g in unknown.gpus:
        g.mig_devices = []
        g.mig_devices_error = "max MIG device count: NVMLError_NoPermission: Insufficient Permissions"
    out.append(unknown)
    return out


def _driver_scenarios() -> list[Facts]:
    out = []
    for pm, distro in (("apt", "debian"), ("dnf", "fedora"), (None, None)):
        facts = no_gpu_facts()
        facts.system.package_manager, facts.system.distro_id = pm, distro
        facts.driver.pci_gpus = [PciGpu("0000:01:00.0", "0x10de", "0x2684", "0x030000", "nouveau")]
        facts.driver.nouveau_loaded = True
        facts.driver.secure_boot = True
        out.append(facts)
        bare = no_gpu_facts()
        bare.system.package_manager = pm
        bare.driver.pci_gpus = [PciGpu("0000:01:00.0", "0x10de", "0x2684", "0x030000", None)]
        bare.driver.userspace_version = "550.54.14" if pm == "apt" else None
        out.append(bare)
    for kind in ("library_not_found", "gpu_lost", "no_permission", "unknown"):
        for container in (None, "docker"):
            facts = h100("idle")
            facts.gpus = []
            facts.system.container = container
            facts.driver.nvml_error = NvmlError(kind, "NVMLError: x")
            out.append(facts)
    wsl = h100("idle")
    wsl.system.wsl = 2
    wsl.driver.nvml_error = NvmlError("driver_not_loaded", "NVMLError_DriverNotLoaded: Driver Not Loaded")
    out.append(wsl)
    return out


def _tensorflow_scenarios() -> list[Facts]:
    out = []
    for deep in (
        DeepFacts(returncode=-4, signal="SIGILL"),
        DeepFacts(
            returncode=-6,
            signal="SIGABRT",
            messages=["F cpu_feature_guard] ... these aren't available on your machine."],
        ),
        DeepFacts(timed_out=True, seconds=60),
        DeepFacts(returncode=1, error="import tensorflow failed: ImportError"),
        DeepFacts(returncode=0),
        DeepFacts(error="not run"),
        DeepFacts(returncode=0, failed_libraries=["libcudnn.so.9"]),
    ):
        facts = h100("idle")
        facts.tensorflow = tensorflow("2.21.0", python="3.14.0")
        facts.tensorflow.distributions.append(PythonPackage("tensorflow-cpu", "2.21.0"))
        facts.tensorflow.error = "could not run /x/python: exit 1"
        facts.deep = deep
        out.append(facts)
    for py, dist, os_ in (("3.14.0", None, "Linux"), ("3.12.3", "tensorflow-cpu", "Windows")):
        facts = h100("idle")
        facts.system.os = os_
        facts.tensorflow.python_version = py
        if dist:
            facts.tensorflow = tensorflow("2.21.0", dist)
        out.append(facts)
    unknown = no_gpu_facts("x86-pentium-g640-no-avx.txt")
    unknown.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    unknown.tensorflow.version = "2.99.0"
    out.append(unknown)
    for cpu in ("x86-ryzen9-5950x-zen3.txt", "x86-xeon-platinum-8480-sapphirerapids.txt"):
        facts = no_gpu_facts(cpu)
        facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
        out.append(facts)
    wsl1 = no_gpu_facts()
    wsl1.system.wsl = 1
    out.append(wsl1)
    return out


def _all_findings() -> list[Finding]:
    found: list[Finding] = []
    for facts in _roots() + _gpu_scenarios() + _driver_scenarios() + _tensorflow_scenarios():
        found += run_checks(facts)
    return found


def test_every_fix_is_commands_and_comments():
    found = _all_findings()
    assert [f for f in found if f.category == "envdoctor"] == []
    assert fix_convention_violations(found) == []
    reached = {f.code for f in found if f.fix}
    expected = {
        "cpu.no-avx", "cpu.unused-instructions", "cpu.onednn-off",
        "driver.nouveau", "driver.secure-boot", "driver.not-installed", "driver.module-not-loaded",
        "driver.userspace-missing", "driver.gpu-lost", "driver.nvml-failed", "driver.wsl-linux-driver",
        "driver.too-old-for-tf", "driver.too-old-for-toolkit", "driver.version-mismatch",
        "gpu.cc-unsupported", "gpu.ptx-jit", "gpu.ptx-fails", "gpu.mig-no-devices", "gpu.mig-devices-unknown",
        "gpu.memory-in-use",
        "cuda.library-missing", "cuda.driver-library-missing", "cuda.library-off-path", "cuda.toolkit-drops-gpu",
        "cuda.load-failed", "cuda.cudnn-other-major",
        "tensorflow.inspect-failed", "tensorflow.several-distributions", "tensorflow.python-unsupported",
        "tensorflow.cpu-only-with-gpu", "tensorflow.import-sigill", "tensorflow.import-cpu-unsupported",
        "tensorflow.import-timeout",
        "tensorflow.import-failed", "tensorflow.not-installed",
        "environment.cuda-visible-devices-invalid", "environment.allow-growth-invalid",
        "environment.onednn-opts-invalid", "environment.cuda-device-order-invalid", "system.wsl1", "gpu.unknown",
    }  # fmt: skip
    assert expected - reached == set()


def test_the_convention_checker_catches_prose():
    prose = Finding("x.y", Severity.INFO, "t", [], "Run `nvidia-smi` to see.\nnvidia-smi\n# why")
    assert fix_convention_violations([prose]) == ["x.y: Run `nvidia-smi` to see."]
