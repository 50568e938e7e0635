"""Driver and GPU findings over the real H100 capture and real multi-GPU reports (see tests/checks_support.py)."""

from __future__ import annotations

import pytest
from checks_support import codes, fix_convention_violations, gpus_fixture, h100, no_gpu_facts, one, tensorflow

from envdoctor.checks import Severity
from envdoctor.facts import NvmlError, PciGpu


def test_h100_idle_with_tf_221_is_ok_and_jit_is_info():
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0")
    ok = one(facts, "driver.ok")
    assert ok.severity is Severity.OK
    assert ok.title == "NVIDIA driver 580.159.04 (open kernel module), supports CUDA ≤ 13.0"
    jit = one(facts, "gpu.ptx-jit")  # TF 2.21 has sm_89 + compute_90: an H100 (9.0) runs the PTX
    assert jit.severity is Severity.INFO
    assert "compute_90" in " ".join(jit.evidence)
    assert one(facts, "gpu.ok").title.startswith("1 GPU(s): NVIDIA H100 80GB HBM3 (compute capability 9.0")
    assert "gpu.memory-in-use" not in codes(facts)


def test_no_gpu_is_info_and_silences_driver():
    facts = no_gpu_facts()
    none = one(facts, "gpu.none")
    assert none.severity is Severity.INFO
    assert not any(c.startswith("driver.") for c in codes(facts))


def test_gpu_on_pci_without_driver():
    facts = no_gpu_facts()  # Rocky 9.3 (dnf)
    facts.driver.pci_gpus = [PciGpu("0000:01:00.0", "0x10de", "0x2684", "0x030000", None)]
    f = one(facts, "driver.not-installed")
    assert f.severity is Severity.ERROR
    assert "PCI 0000:01:00.0 0x10de:0x2684 class 0x030000, kernel driver: none" in f.evidence
    # Rocky: NVIDIA's CUDA repository (and EPEL for dkms) first, then the open kernel module.
    assert f.fix.startswith("sudo dnf config-manager --set-enabled crb && sudo dnf install -y epel-release && ")
    assert f.fix.endswith("sudo dnf install -y nvidia-open && sudo reboot")
    assert "gpu.none" not in codes(facts)


def test_pre_turing_gpu_without_driver_gets_the_proprietary_modules():
    # A GTX 1080 (Pascal, 6.1; 0x1b80 in pci.ids): Rocky's nvidia-open cannot drive it, the R580 branch's
    # proprietary modules can (NVIDIA Driver Installation Guide, kernel-modules).
    facts = no_gpu_facts()  # Rocky 9.3 (dnf)
    facts.driver.pci_gpus = [PciGpu("0000:01:00.0", "0x10de", "0x1b80", "0x030000", None)]
    f = one(facts, "driver.not-installed")
    assert "nvidia-driver:580-dkms" in f.fix and "nvidia-open" not in f.fix


@pytest.mark.parametrize(
    "distro_id, distro_like",
    [
        ("ubuntu", ["debian"]),
        ("linuxmint", ["ubuntu", "debian"]),  # Linux Mint 21 os-release: a derivative gets it through ID_LIKE
    ],
)
def test_ubuntu_and_derivatives_install_with_ubuntu_drivers(distro_id, distro_like):
    facts = h100()  # the H100 server with its driver removed: the GPU stays on PCI with no kernel driver
    facts.system.distro_id, facts.system.distro_like = distro_id, distro_like
    facts.gpus = []
    facts.driver.nvidia_module_loaded = False
    facts.driver.userspace_version = facts.driver.kernel_module_version = None
    facts.driver.pci_gpus[0].driver = None
    facts.driver.nvml_error = NvmlError("library_not_found", "NVML Shared Library Not Found")
    assert one(facts, "driver.not-installed").fix == "sudo ubuntu-drivers install && sudo reboot"


def test_nouveau_bound():
    facts = no_gpu_facts()
    facts.system.package_manager, facts.system.distro_id = "pacman", "arch"
    facts.driver.nouveau_loaded = True
    facts.driver.pci_gpus = [PciGpu("0000:01:00.0", "0x10de", "0x1f95", "0x030000", "nouveau")]
    f = one(facts, "driver.nouveau")
    assert f.severity is Severity.ERROR
    assert f.fix == (
        "sudo pacman -S --needed nvidia-open nvidia-utils\nprintf 'blacklist nouveau\\noptions nouveau "
        "modeset=0\\n' | sudo tee /etc/modprobe.d/blacklist-nouveau.conf\nsudo mkinitcpio -P\nsudo reboot"
    )
    assert "driver.not-installed" not in codes(facts)


def test_secure_boot_blocks_module():
    facts = h100()
    facts.gpus = []
    facts.driver.nvidia_module_loaded = False
    facts.driver.kernel_module_version = None
    facts.driver.pci_gpus[0].driver = None
    facts.driver.secure_boot = True
    facts.driver.userspace_version = None
    facts.driver.nvml_error = NvmlError("driver_not_loaded", "Driver Not Loaded")
    f = one(facts, "driver.secure-boot")
    assert f.severity is Severity.ERROR
    assert f.fix.startswith("sudo mokutil --import /var/lib/shim-signed/mok/MOK.der\nsudo reboot\n")
    assert "Secure Boot: enabled" in f.evidence
    assert "driver.module-not-loaded" not in codes(facts)


def test_secure_boot_on_arch_names_no_mokutil_or_dkms_key():
    facts = h100()
    facts.system.package_manager, facts.system.distro_id, facts.system.distro_like = "pacman", "arch", []
    facts.gpus = []
    facts.driver.nvidia_module_loaded = False
    facts.driver.kernel_module_version = facts.driver.userspace_version = None
    facts.driver.pci_gpus[0].driver = None
    facts.driver.secure_boot = True
    facts.driver.nvml_error = NvmlError("driver_not_loaded", "Driver Not Loaded")
    f = one(facts, "driver.secure-boot")
    # Arch: no shim/mokutil, nvidia-open is prebuilt (no DKMS key), and the kernel loads unsigned modules.
    assert "mokutil" not in f.fix and "/var/lib/dkms" not in f.fix
    assert "sudo dmesg | grep -i -e nvidia -e lockdown -e 'unsigned module'" in f.fix.splitlines()
    assert "rejected" not in f.title
    assert fix_convention_violations([f]) == []
    # Not installed yet (nouveau laptop on Arch): Secure Boot is no hurdle there, so no warning.
    facts.driver.nvml_error = NvmlError("library_not_found", "NVML Shared Library Not Found")
    assert "driver.secure-boot" not in codes(facts)
    assert one(facts, "driver.not-installed").fix == "sudo pacman -S --needed nvidia-open nvidia-utils && sudo reboot"


def test_module_not_loaded_without_secure_boot():
    facts = h100()
    facts.gpus = []
    facts.driver.nvidia_module_loaded = False
    facts.driver.kernel_module_version = None
    facts.driver.pci_gpus[0].driver = None
    facts.driver.secure_boot = False
    facts.driver.nvml_error = NvmlError("driver_not_loaded", "Driver Not Loaded")
    f = one(facts, "driver.module-not-loaded")
    assert f.fix.startswith("sudo modprobe nvidia")
    assert "sudo apt-get install -y linux-headers-$(uname -r) dkms" in f.fix


def test_kernel_userspace_mismatch():
    facts = h100()
    facts.driver.userspace_version = "580.95.05"  # upgraded packages, old module still loaded
    f = one(facts, "driver.version-mismatch")
    assert f.severity is Severity.ERROR
    assert f.fix.startswith("sudo reboot")
    assert "kernel module: 580.159.04 (/proc/driver/nvidia/version)" in f.evidence
    assert "driver.ok" not in codes(facts)


def test_mismatch_reported_by_nvml():
    facts = h100()
    facts.gpus, facts.driver.userspace_version = [], None
    facts.driver.nvml_error = NvmlError("lib_rm_version_mismatch", "Driver/library version mismatch")
    assert "NVML: Driver/library version mismatch" in one(facts, "driver.version-mismatch").evidence


def test_driver_too_old_for_tf_cuda_major():
    facts = h100()
    facts.driver.userspace_version = facts.driver.kernel_module_version = "470.82.01"
    facts.driver.cuda_driver_version = "11.4"
    facts.tensorflow = tensorflow("2.18.0")
    f = one(facts, "driver.too-old-for-tf")
    assert f.severity is Severity.ERROR
    assert "driver 470.82.01 supports CUDA ≤ 11.4 (NVML)" in f.evidence
    assert "TensorFlow 2.18.0 needs CUDA 12.5" in f.evidence
    assert f.fix.splitlines() == ["# upgrade the NVIDIA driver to ≥ 555.42.02", "sudo ubuntu-drivers install"]


def test_driver_upgrade_in_a_container_happens_on_the_host():
    # The container's driver is the host's: installing one inside causes a Driver/library version mismatch.
    facts = h100()
    facts.system.container = "docker"
    facts.driver.userspace_version = facts.driver.kernel_module_version = "550.127.05"
    facts.driver.cuda_driver_version = "12.4"
    facts.tensorflow = tensorflow("2.21.0")  # CUDA 12.5; the H100 runs its compute_90 PTX: an error
    f = one(facts, "driver.too-old-for-tf")
    assert f.fix.splitlines() == [
        "# upgrade the NVIDIA driver on the host to ≥ 555.42.02, then restart the container",
        "# this runs in a docker container: do not install a driver inside it",
        # 2.17's CUDA 12.3 is within the driver's 12.4, PTX JIT included (KosinskiLab/AlphaPulldown#296 did this)
        "# or keep this driver: TensorFlow 2.17 (CUDA 12.3) is the newest for this Python that runs on it",
        "/home/user/venv/bin/python -m pip install 'tensorflow[and-cuda]==2.17.*'",
    ]
    facts.gpus = gpus_fixture("v100-busy.json")  # SASS, no JIT: minor-version compatibility, same host-side fix
    assert "ubuntu-drivers" not in one(facts, "driver.minor-compat-for-tf").fix


def test_minor_version_compat_is_info_but_ptx_jit_makes_it_an_error():
    facts = h100()
    facts.driver.userspace_version = facts.driver.kernel_module_version = "535.104.05"
    facts.driver.cuda_driver_version = "12.2"
    facts.tensorflow = tensorflow("2.17.0")  # CUDA 12.3; the H100 runs its compute_90 PTX
    f = one(facts, "driver.too-old-for-tf")
    assert f.severity is Severity.ERROR
    assert any("CUDA_ERROR_UNSUPPORTED_PTX_VERSION" in e for e in f.evidence)
    facts.gpus = gpus_fixture("v100-busy.json")  # V100 (7.0): SASS sm_70, no JIT needed
    g = one(facts, "driver.minor-compat-for-tf")
    assert g.severity is Severity.INFO
    assert "CUDA 12.x minor-version compatibility: driver ≥ 525.60.13 runs it" in g.evidence


def test_driver_too_old_for_toolkit_derived_without_nvml():
    facts = h100()
    facts.gpus, facts.driver.cuda_driver_version = [], None  # as under --root: no NVML
    facts.driver.userspace_version = None
    facts.driver.kernel_module_version = "550.54.14"
    from envdoctor.facts import CudaToolkit

    facts.cuda.toolkits = [CudaToolkit("/usr/local/cuda-13.0", "13.0", "version.json", active=True)]
    f = one(facts, "driver.too-old-for-toolkit")
    assert f.severity is Severity.WARNING
    assert "driver 550.54.14 supports CUDA ≤ 12.4 (CUDA release-notes table)" in f.evidence


def test_compute_capability_not_covered():
    facts = h100()
    facts.gpus = gpus_fixture("theano-8400gs-titan.json")  # 1.1 and 3.5
    facts.tensorflow = tensorflow("2.17.0")
    errors = [f for f in __import__("checks_support").findings(facts) if f.code == "gpu.cc-unsupported"]
    assert len(errors) == 2
    titan = next(f for f in errors if "3.5" in f.title)
    assert titan.severity is Severity.ERROR
    # Python 3.12 here: the newest wheel with sm_35 is 2.14, which stops at Python 3.11: a Python 3.11 venv.
    # No build-tf: TF 2.17 builds with CUDA 12.3, which dropped Kepler, and build-tf refuses 3.5 ("below 5.0").
    assert titan.fix.splitlines()[:2] == [
        "python3.11 -m venv ~/tf",
        "~/tf/bin/python -m pip install 'tensorflow[and-cuda]==2.14.*'",
    ]
    assert "R470" in titan.fix and "build-tf" not in titan.fix
    facts.tensorflow.python_version = "3.11.9"
    titan = next(f for f in __import__("checks_support").findings(facts) if "3.5" in f.title)
    assert titan.fix.splitlines()[0] == "/home/user/venv/bin/python -m pip install 'tensorflow[and-cuda]==2.14.*'"
    assert "build-tf" not in titan.fix
    facts.tensorflow.externally_managed = True  # a distro Python (PEP 668): the older wheel goes into a new venv
    titan = next(f for f in __import__("checks_support").findings(facts) if "3.5" in f.title)
    assert titan.fix.splitlines()[1] == "~/tf-venv/bin/python -m pip install 'tensorflow[and-cuda]==2.14.*'"
    kepler_old = next(f for f in errors if "1.1" in f.title)
    # No CUDA TensorFlow builds with (11.x: >= 3.5) compiles for 1.1: neither a wheel nor a build helps.
    assert "pip install" not in kepler_old.fix and "build-tf" not in kepler_old.fix
    assert kepler_old.fix.startswith("# no CUDA")


@pytest.mark.parametrize("name, cc", [("NVIDIA GeForce RTX 5090", "12.0"), ("NVIDIA B200", "10.0")])
def test_blackwell_on_older_generation_ptx_is_an_error_without_build_tf(name, cc):
    # Stock 2.16-2.21 wheels fail there (CUDA_ERROR_INVALID_PTX, tensorflow#99592, #101746), and build-tf's
    # CUDA 12.5.1 cannot compile for Blackwell (CUDA >= 12.8): only NGC's container works today.
    facts = h100()
    facts.gpus[0].name, facts.gpus[0].compute_capability = name, cc
    facts.tensorflow = tensorflow("2.21.0")
    f = one(facts, "gpu.ptx-fails")
    assert f.severity is Severity.ERROR
    assert any("CUDA_ERROR_INVALID_PTX" in e for e in f.evidence)
    assert "build-tf --cuda-cc" not in f.fix and "nvcr.io/nvidia/tensorflow" in f.fix
    assert f"compute capability {cc} needs CUDA ≥ 12.8" in f.fix
    assert "gpu.ptx-jit" not in codes(facts)
    assert fix_convention_violations([f]) == []


def test_hopper_on_ampere_ptx_stays_a_warning_and_build_tf_fits():
    facts = h100()
    facts.tensorflow = tensorflow("2.15.0")  # compute_80 PTX, CUDA 12.2 compiles sm_90
    f = one(facts, "gpu.ptx-jit")
    assert f.severity is Severity.WARNING
    assert f.fix.startswith("envdoctor build-tf --cuda-cc 9.0")


def test_memory_held_by_other_process():
    facts = h100("busy")
    f = one(facts, "gpu.memory-in-use")
    assert f.severity is Severity.WARNING
    assert "GPU 0 (NVIDIA H100 80GB HBM3): 6.5 GiB of 79.6 GiB held by 1 process(es) (pid 720)" in f.evidence
    # Its only GPU is the busy one: memory growth on GPU 0, not auto:1 (which would find nothing to pick).
    assert 'envdoctor env --gpus 0)"' in f.fix and "TF_FORCE_GPU_ALLOW_GROWTH=true" in f.fix
    facts.env.variables["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    assert one(facts, "gpu.memory-in-use").severity is Severity.INFO


def test_wsl2_with_linux_driver():
    facts = no_gpu_facts()
    facts.system.wsl, facts.system.package_manager = 2, "apt"
    facts.driver.nvml_error = NvmlError("driver_not_loaded", "Driver Not Loaded")
    f = one(facts, "driver.wsl-linux-driver")
    assert f.severity is Severity.ERROR
    assert "apt-get remove --purge" in f.fix and "wsl --shutdown" in f.fix
    # the cuda / cuda-drivers metapackages are how the Linux driver usually gets in
    assert "sudo apt-get remove --purge cuda cuda-drivers" in f.fix.splitlines()
    assert "cuda-toolkit-12-x from NVIDIA's WSL-Ubuntu repository" in f.fix
    assert fix_convention_violations([f]) == []


def test_wsl2_linux_driver_makes_the_gpu_unknown_not_absent():
    from envdoctor.facts import LibraryResolution

    facts = no_gpu_facts()  # no GPU on PCI, no NVML GPU: as WSL2 looks with a Linux driver shadowing Windows'
    facts.system.wsl, facts.system.package_manager = 2, "apt"
    facts.driver.nvml_error = NvmlError("driver_not_loaded", "Driver Not Loaded")
    facts.cuda.tf_libraries = [
        LibraryResolution("cuda", "libcuda.so.1", "found", "/usr/lib/x86_64-linux-gnu/libcuda.so.1")
    ]
    assert "driver.wsl-linux-driver" in codes(facts)
    assert "gpu.none" not in codes(facts)
    unknown = one(facts, "gpu.unknown")
    assert "libcuda.so.1 resolves to /usr/lib/x86_64-linux-gnu/libcuda.so.1, not /usr/lib/wsl/lib" in unknown.evidence


def test_wsl2_without_gpu_is_just_no_gpu():
    facts = no_gpu_facts()
    facts.system.wsl = 2
    facts.driver.nvml_error = NvmlError("library_not_found", "NVML Shared Library Not Found")
    assert "driver.wsl-linux-driver" not in codes(facts)
    assert "WSL2" in one(facts, "gpu.none").evidence[0]


def test_gpu_lost():
    facts = h100()
    facts.gpus = []
    facts.driver.nvml_error = NvmlError("gpu_lost", "GPU is lost")
    assert one(facts, "driver.gpu-lost").severity is Severity.ERROR


def test_wsl2_libcuda_outside_wsl_lib_is_a_linux_driver():
    from envdoctor.facts import LibraryResolution

    facts = h100("idle")  # the GPU as NVML reports it through the Windows driver
    facts.system.wsl = 2
    facts.driver.kernel_module_version, facts.driver.nvidia_module_loaded, facts.driver.pci_gpus = None, False, []
    facts.tensorflow = tensorflow("2.21.0")
    facts.cuda.tf_libraries = [LibraryResolution("cuda", "libcuda.so.1", "found", "/usr/lib/wsl/lib/libcuda.so.1")]
    assert "driver.wsl-linux-driver" not in codes(facts)
    assert one(facts, "driver.ok").severity is Severity.OK
    facts.cuda.tf_libraries[0].path = "/usr/lib/x86_64-linux-gnu/libcuda.so.1"
    f = one(facts, "driver.wsl-linux-driver")
    assert "libcuda.so.1 resolves to /usr/lib/x86_64-linux-gnu/libcuda.so.1, not /usr/lib/wsl/lib" in f.evidence


def test_arch_specific_sass_runs_only_on_its_own_compute_capability():
    # sm_90a (Hopper-only features) is not binary compatible with later minors; plain sm_80 runs on 8.6.
    from envdoctor.knowledge.cuda import sass_for as _sass_for

    assert _sass_for(["sm_90a"], (9, 0)) == "sm_90a"
    assert _sass_for(["sm_90a"], (9, 1)) is None
    assert _sass_for(["sm_80"], (8, 6)) == "sm_80"
    assert _sass_for(["sm_80"], (9, 0)) is None


def test_nvml_timeout_points_at_the_kernel_log():
    facts = h100()
    facts.gpus = []
    facts.driver.nvml_error = NvmlError("timeout", "NVML did not answer within 5s (a hung GPU or driver)")
    f = one(facts, "driver.nvml-failed")
    assert f.severity is Severity.WARNING and "(timeout)" in f.title
    assert f.fix.startswith("sudo dmesg | grep -iE 'NVRM|Xid'")
