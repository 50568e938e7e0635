"""End to end without a GPU: the real probes over fake roots (tests/fixtures/roots/*/README.md say where each
file came from) and the real H100 capture, NVML replayed from recorded captures, then every check."""

from __future__ import annotations

from pathlib import Path

from checks_support import H100, TESTS, FakeNvml, tensorflow

from envdoctor.checks import Finding, Severity, run_checks
from envdoctor.facts import Facts
from envdoctor.probes import ProbeContext, collect
from envdoctor.probes import cuda as cuda_probe
from envdoctor.probes.nvidia import collect_gpus

ROOTS = TESTS / "fixtures" / "roots"


def _facts(root: Path, nvml_json: Path | None = None, python: str | None = None) -> tuple[Facts, ProbeContext]:
    ctx = ProbeContext(root=root, env={}, python=python)
    facts = collect(ctx)
    assert facts.probe_errors == []
    if nvml_json is not None:  # what NVML said on that machine, replayed as the nvidia probe would merge it
        userspace, gpus = collect_gpus(ctx, FakeNvml.from_json(nvml_json))
        for name in ("userspace_version", "cuda_driver_version", "nvml_error", "gpu_source"):
            if getattr(userspace, name) is not None:
                setattr(facts.driver, name, getattr(userspace, name))
        facts.gpus = gpus
    return facts, ctx


def _by_code(facts: Facts) -> dict[str, Finding]:
    found = run_checks(facts)
    assert not [f for f in found if f.category == "envdoctor"], found
    return {f.code: f for f in found}


def test_h100_busy_capture():
    facts, _ = _facts(H100 / "busy" / "root", H100 / "busy" / "nvml.json")
    found = _by_code(facts)
    assert found["driver.ok"].title == "NVIDIA driver 580.159.04 (open kernel module), supports CUDA ≤ 13.0"
    assert found["gpu.memory-in-use"].severity is Severity.WARNING
    assert any("pid 720" in e for e in found["gpu.memory-in-use"].evidence)
    assert "gpu.none" not in found and "driver.version-mismatch" not in found


def test_laptop_nouveau_with_secure_boot():
    facts, _ = _facts(ROOTS / "laptop-nouveau" / "root")
    found = _by_code(facts)
    nouveau = found["driver.nouveau"]
    assert nouveau.severity is Severity.ERROR
    assert "PCI 0000:01:00.0 0x10de:0x1f95 class 0x030000, kernel driver: nouveau" in nouveau.evidence
    # No NVIDIA driver installed yet: Secure Boot is the next hurdle, not the reason a module is missing.
    secure = found["driver.secure-boot"]
    assert secure.severity is Severity.WARNING and "must be signed" in secure.title
    assert "NVIDIA userspace driver: not found" in secure.evidence
    assert "gpu.none" not in found  # the HDMI audio function is no GPU, the GeForce is one
    assert "driver.ok" not in found


def test_driver_library_mismatch():
    facts, _ = _facts(ROOTS / "driver-mismatch" / "root", ROOTS / "driver-mismatch" / "nvml.json")
    found = _by_code(facts)
    mismatch = found["driver.version-mismatch"]
    assert mismatch.severity is Severity.ERROR
    assert "kernel module: 550.120 (/proc/driver/nvidia/version)" in mismatch.evidence
    assert mismatch.fix.startswith("sudo reboot")
    assert "driver.ok" not in found


def test_driver_library_mismatch_from_files_alone():
    # Without NVML (--root): the kernel module says 550.120, libnvidia-ml.so.1 links to libnvidia-ml.so.550.127.05.
    facts, _ = _facts(ROOTS / "driver-mismatch" / "root")
    assert facts.driver.userspace_version == "550.127.05"
    mismatch = _by_code(facts)["driver.version-mismatch"]
    assert "userspace library: 550.127.05" in mismatch.evidence


def test_old_driver_new_toolkit():
    facts, _ = _facts(ROOTS / "old-driver-new-toolkit" / "root", ROOTS / "old-driver-new-toolkit" / "nvml.json")
    facts.tensorflow = tensorflow("2.18.0")  # the real 2.18 wheel's build info: CUDA 12.5.1
    found = _by_code(facts)
    toolkit = found["driver.too-old-for-toolkit"]
    assert toolkit.severity is Severity.WARNING
    assert "driver 470.256.02 supports CUDA ≤ 11.4 (NVML)" in toolkit.evidence
    assert any(e.startswith("CUDA toolkit 12.6") and "/usr/local/cuda-12.6" in e for e in toolkit.evidence)
    assert "CUDA toolkit 12.6.20241114 at /usr/local/cuda-12.6 needs CUDA 12.6" in toolkit.evidence
    tf = found["driver.too-old-for-tf"]
    assert tf.severity is Severity.ERROR
    assert tf.fix.startswith("# upgrade the NVIDIA driver to ≥ 555.42.02\n")
    assert "gpu.ok" in found  # a T4 (7.5) has sm_70 SASS in TF 2.18


def test_several_toolkits_side_by_side():
    facts, _ = _facts(ROOTS / "multi-toolkit" / "root")
    found = _by_code(facts)
    several = found["cuda.several-toolkits"]
    assert several.title == "3 CUDA toolkits are installed"
    assert sum("(active)" in e for e in several.evidence) == 1
    assert found["gpu.none"].severity is Severity.INFO


def test_pip_installed_cuda_libraries_on_the_h100():
    root = ROOTS / "pip-cuda" / "root"
    facts, ctx = _facts(root, H100 / "idle" / "nvml.json", python="/opt/venv/bin/python")
    site = "/opt/venv/lib/python3.11/site-packages"
    # The fixture's tensorflow/ is a stub: give it the real 2.18 wheel's facts, then resolve its libraries again.
    facts.tensorflow = tensorflow("2.18.0", python="3.11.9", site=site, python_exe="/opt/venv/bin/python")
    cuda_probe.probe(ctx, facts)
    found = _by_code(facts)
    ok = found["cuda.ok"]
    assert ok.title == "All 11 CUDA libraries TensorFlow 2.18.0 (CUDA 12.5.1) needs are found"
    assert f"libcudnn.so.9: {site}/nvidia/cudnn/lib/libcudnn.so.9 (via rpath)" in ok.evidence
    assert not {"cuda.library-missing", "cuda.library-off-path", "cuda.cudnn-too-old"} & set(found)


def test_wsl2_root():
    facts, _ = _facts(ROOTS / "wsl2" / "root")
    assert facts.system.wsl == 2
    found = _by_code(facts)
    assert facts.driver.userspace_version is None  # /usr/lib/wsl/lib/libnvidia-ml.so.1 carries no version
    assert "driver.wsl-linux-driver" not in found
    # NVML is not queried under --root and WSL's libcuda is there: the GPU state is unknown, not "no GPU".
    assert "gpu.none" not in found
    assert any("WSL2" in e for e in found["gpu.unknown"].evidence)
    assert "WSL2" in found["system.ok"].title


def test_tf217_with_cudnn9_wheel_names_both_majors_and_pins_tfs_own_wheel():
    facts, _ = _facts(ROOTS / "pip-cuda-tf217" / "root")
    found = _by_code(facts)
    f = found["cuda.cudnn-other-major"]
    assert f.severity is Severity.ERROR
    assert f.title == "cuDNN 9.3.0 is installed, but TensorFlow 2.17.0 needs cuDNN 8 (libcudnn.so.8)"
    assert "TensorFlow 2.17.0 was built with cuDNN 8.9: it loads libcudnn.so.8, which is not found" in f.evidence
    assert "installed: cuDNN 9.3.0 (wheel: /opt/venv/lib/python3.11/site-packages/nvidia/cudnn)" in f.evidence
    # The pin is TF 2.17's own and-cuda requirement (recipes/tf_releases.json cudnn_wheel).
    # pip runs as the Python that owns TF's site-packages (/opt/venv), not as some `python3` on PATH.
    assert f.fix.splitlines()[-1] == "/opt/venv/bin/python -m pip install nvidia-cudnn-cu12==8.9.7.29"
    assert f.fix.startswith("# this replaces the cuDNN 9.3.0 wheel here")
    assert "cuda.library-missing" not in found and "cuda.ok" not in found
    # Were TF in Debian's system Python (PEP 668), one wheel into a new venv would not do: all of TF goes there.
    facts.tensorflow.python_executable, facts.tensorflow.externally_managed = "/usr/bin/python3.11", True
    fix = run_checks_fix(facts, "cuda.cudnn-other-major")
    assert fix.splitlines()[:2] == [
        "/usr/bin/python3.11 -m venv ~/tf-venv",
        "~/tf-venv/bin/python -m pip install 'tensorflow[and-cuda]==2.17.0'",
    ]


def run_checks_fix(facts: Facts, code: str) -> str:
    return next(f.fix or "" for f in run_checks(facts) if f.code == code)


def test_cuda_ok_never_says_all_when_a_library_is_missing():
    facts, _ = _facts(ROOTS / "pip-cuda-tf217" / "root")
    facts.driver.pci_gpus = []  # no GPU: the libraries are not judged, only listed
    facts.driver.nvidia_module_loaded = False
    ok = _by_code(facts)["cuda.ok"]
    assert ok.title == "10 of 11 CUDA libraries TensorFlow 2.17.0 (CUDA 12.3) needs are found"
    assert "libcudnn.so.8: missing" in ok.evidence
