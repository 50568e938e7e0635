"""A GPU past NVIDIA's support (Kepler: last driver branch R470) and the PTX wording of compute_XY entries.

The K80 facts are the real H100 capture (tests/checks_support.py) with its GPU and driver swapped for what a
Tesla K80 host reports: NVML's name "Tesla K80", compute capability 3.7, driver 470.256.02 (CUDA 11.4)."""

from __future__ import annotations

from checks_support import codes, findings, fix_convention_violations, h100, one, tensorflow

from envdoctor.checks import Severity
from envdoctor.knowledge.cuda import branch_runs_cuda, driver_limit


def k80(tf: str, python: str):
    facts = h100("idle")
    facts.gpus = facts.gpus[:1]
    facts.gpus[0].name, facts.gpus[0].compute_capability = "Tesla K80", "3.7"
    facts.driver.userspace_version = facts.driver.kernel_module_version = "470.256.02"
    facts.driver.cuda_driver_version = "11.4"
    facts.tensorflow = tensorflow(tf, python=python)
    return facts


def test_driver_limits_come_from_the_recipe():
    assert driver_limit((3, 7))["branch"] == "470"
    assert driver_limit((6, 1))["branch"] == "580"
    assert driver_limit((7, 5)) is None and driver_limit((9, 0)) is None
    assert branch_runs_cuda(470, "11.8")  # CUDA 11.x minor-version compatibility: >= 450.80.02
    assert not branch_runs_cuda(470, "12.2")  # 12.x needs >= 525.60.13
    assert branch_runs_cuda(580, "13.1")  # 13.x minor-version compatibility: >= 580


def test_k80_tf215_never_suggests_a_driver_past_r470():
    facts = k80("2.15.0", "3.11.9")
    drv = one(facts, "driver.too-old-for-tf")
    assert drv.severity is Severity.ERROR
    assert "Tesla K80" in drv.title and "R470" in drv.title
    assert "535" not in drv.fix and "upgrade" not in drv.fix
    assert drv.fix.splitlines()[0].endswith("-m pip install 'tensorflow[and-cuda]==2.14.*'")
    gpu = one(facts, "gpu.cc-unsupported")
    assert gpu.fix.splitlines()[0].endswith("-m pip install 'tensorflow[and-cuda]==2.14.*'")
    assert "build-tf" not in gpu.fix  # CUDA 12.2 dropped Kepler: build-tf refuses 3.7 for TF 2.15
    assert fix_convention_violations(findings(facts)) == []


def test_k80_tf221_on_python_312_gets_a_python_311_venv():
    facts = k80("2.21.0", "3.12.3")
    for code in ("driver.too-old-for-tf", "gpu.cc-unsupported"):
        f = one(facts, code)
        assert f.fix.splitlines()[:2] == [
            "python3.11 -m venv ~/tf",
            "~/tf/bin/python -m pip install 'tensorflow[and-cuda]==2.14.*'",
        ]
        assert "555" not in f.fix and "build-tf" not in f.fix
    assert fix_convention_violations(findings(facts)) == []


def test_k80_tf212_minor_compat_suggests_no_upgrade():
    facts = k80("2.12.0", "3.10.12")
    info = one(facts, "driver.minor-compat-for-tf")
    assert info.severity is Severity.INFO
    assert "520" not in info.fix and info.fix.startswith("# nothing to upgrade: R470")
    assert "gpu.cc-unsupported" not in codes(facts)  # 2.12 has sm_35


def test_hopper_on_its_own_compute_90_says_part_of_the_kernels_are_ptx():
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0")
    jit = one(facts, "gpu.ptx-jit")
    assert jit.severity is Severity.INFO
    text = " ".join(jit.evidence)
    assert "sm_90 SASS" in text and "part of the kernels" in text and "no sm_9x binary" not in text


def test_hopper_on_compute_80_is_a_warning_citing_only_what_applies():
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.15.0", python="3.11.9")
    jit = one(facts, "gpu.ptx-jit")
    assert jit.severity is Severity.WARNING
    text = " ".join(jit.evidence)
    assert "no sm_9x binary" in text and "tensorflow#60739" in text
    assert "89272" not in text and "99592" not in text


def test_k80_evidence_names_minor_version_compatibility_for_the_cuda_11_8_fix():
    # R470's toolkit-table maximum is CUDA 11.4, yet the fix installs TF 2.14 (CUDA 11.8): 11.x minor-version
    # compatibility (>= 450.80.02) is what runs it, and the evidence has to say so.
    from envdoctor.facts import CudaToolkit

    facts = k80("2.15.0", "3.11.9")
    drv = one(facts, "driver.too-old-for-tf")
    assert drv.evidence[-1].endswith(": CUDA ≤ 11.4 (11.x through minor-version compatibility)")
    facts.cuda.toolkits = [CudaToolkit("/usr/local/cuda-12.4", "12.4", "version.json", active=True)]
    kit = one(facts, "driver.too-old-for-toolkit")
    note = "# use a CUDA toolkit ≤ 11.4 for this GPU (11.x through minor-version compatibility)"
    assert note in kit.fix.splitlines()


def test_fermi_branch_says_no_known_cuda_toolkit_runs_on_it():
    from envdoctor.facts import CudaToolkit

    facts = k80("2.15.0", "3.11.9")
    facts.gpus[0].name, facts.gpus[0].compute_capability = "GeForce GTX 580", "2.0"
    facts.driver.userspace_version = facts.driver.kernel_module_version = "390.157"
    facts.driver.cuda_driver_version = "9.1"
    facts.cuda.toolkits = [CudaToolkit("/usr/local/cuda-12.4", "12.4", "version.json", active=True)]
    for code in ("driver.too-old-for-tf", "driver.too-old-for-toolkit"):
        f = one(facts, code)
        assert f.evidence[-1].endswith(": no CUDA toolkit envdoctor knows (11.0 or later) runs on R390")
        assert "the one that branch supports" not in f.fix and "CUDA ≤" not in f.fix
    assert fix_convention_violations(findings(facts)) == []
