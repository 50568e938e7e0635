"""The NVIDIA probe: /proc and /sys under fake roots, NVML through recorded captures, nvidia-smi through fakes."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.facts import DriverFacts, Facts
from envdoctor.probes import ProbeContext, nvidia
from envdoctor.probes.nvidia import (
    collect_gpus,
    cuda_version_string,
    loaded_modules,
    parse_nvidia_smi_xml,
    parse_proc_driver_version,
    read_gpus_nvml,
    read_kernel_side,
)

sys.path.insert(0, str(Path(__file__).parent))
from fakenvml import FakeNvml

FIXTURES = Path(__file__).parent / "fixtures"
H100 = FIXTURES / "h100-firecracker"
ROOTS = FIXTURES / "roots"


def root_ctx(root: Path) -> ProbeContext:
    return ProbeContext(root=root.resolve(), env={})


def kernel_side(root: Path) -> DriverFacts:
    driver = DriverFacts()
    read_kernel_side(root_ctx(root), driver)
    return driver


def capture(name: str) -> dict:
    return json.loads((H100 / name / "nvml.json").read_text())


def fake_smi(tmp_path: Path, body: str) -> dict[str, str]:
    """A fake `nvidia-smi` first on PATH; returns the env to run with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


# --- files ------------------------------------------------------------------------------------------


def test_proc_version_open_module_from_real_h100():
    text = (H100 / "idle/root/proc/driver/nvidia/version").read_text()
    assert parse_proc_driver_version(text) == ("580.159.04", "open")


def test_proc_version_proprietary_module():
    text = (ROOTS / "old-driver-new-toolkit/root/proc/driver/nvidia/version").read_text()
    assert parse_proc_driver_version(text) == ("470.256.02", "proprietary")


def test_proc_version_absent_or_garbage():
    assert parse_proc_driver_version("") == (None, None)
    assert parse_proc_driver_version("GCC version: gcc 12\n") == (None, None)


def test_h100_server_kernel_side():
    driver = kernel_side(H100 / "idle/root")
    assert (driver.kernel_module_version, driver.kernel_module_flavour) == ("580.159.04", "open")
    assert driver.nvidia_module_loaded and not driver.nouveau_loaded
    # The capture holds six virtio devices and one NVIDIA 3D controller (class 0x030200) bound to nvidia.
    assert [(g.address, g.device_id, g.class_code, g.driver) for g in driver.pci_gpus] == [
        ("0000:00:06.0", "0x2330", "0x030200", "nvidia")
    ]
    assert driver.secure_boot is None  # a Firecracker VM: no UEFI variables


def test_laptop_with_nouveau_bound_to_the_gpu():
    driver = kernel_side(ROOTS / "laptop-nouveau/root")
    assert driver.nouveau_loaded and not driver.nvidia_module_loaded
    assert driver.kernel_module_version is None
    # The iGPU (Intel) and the GPU's HDMI audio function (class 0x0403) are not NVIDIA GPUs.
    assert [(g.address, g.driver) for g in driver.pci_gpus] == [("0000:01:00.0", "nouveau")]
    assert driver.secure_boot is True


def test_gpu_on_pci_without_driver(tmp_path):
    dev = tmp_path / "sys/bus/pci/devices/0000:65:00.0"
    dev.mkdir(parents=True)
    for name, value in {"vendor": "0x10de", "device": "0x2684", "class": "0x030000"}.items():
        (dev / name).write_text(value + "\n")
    driver = kernel_side(tmp_path)
    assert [(g.address, g.driver) for g in driver.pci_gpus] == [("0000:65:00.0", None)]
    assert not driver.nvidia_module_loaded


def test_no_gpu_at_all(tmp_path):
    driver = kernel_side(tmp_path)
    assert driver.pci_gpus == [] and driver.kernel_module_version is None and driver.secure_boot is None


def test_secure_boot_off_and_efi_without_variable(tmp_path):
    assert kernel_side(ROOTS / "driver-mismatch/root").secure_boot is False
    (tmp_path / "sys/firmware/efi/efivars").mkdir(parents=True)
    assert kernel_side(tmp_path).secure_boot is False  # UEFI firmware that has no Secure Boot variable


def test_wsl2_has_no_kernel_module_and_no_pci_gpu():
    driver = kernel_side(ROOTS / "wsl2/root")
    assert driver.pci_gpus == [] and not driver.nvidia_module_loaded and driver.kernel_module_version is None


def test_loaded_modules_from_real_lists():
    real = FIXTURES / "proc/modules-server-nvidia-open.txt"  # origin: tests/fixtures/proc/README.md
    text = (ROOTS / "laptop-nouveau/root/proc/modules").read_text()
    assert {"nouveau", "i915"} <= loaded_modules(text)
    assert "nvidia" in loaded_modules((ROOTS / "driver-mismatch/root/proc/modules").read_text())
    assert "nvidia" in loaded_modules(real.read_text())


def test_probe_under_root_uses_no_nvml_and_no_commands():
    facts = Facts()
    nvidia.probe(root_ctx(H100 / "idle/root"), facts)
    assert facts.gpus == []
    assert facts.driver.gpu_source is None and facts.driver.nvml_error is None
    assert facts.driver.kernel_module_version == "580.159.04"


# --- NVML ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_nvml_real_h100_capture(state):
    data = capture(state)
    nvml = FakeNvml(data)
    driver, gpus = read_gpus_nvml(nvml)
    g = data["gpus"][0]
    assert nvml.init_count == nvml.shutdown_count == 1
    assert driver.userspace_version == data["driver_version"] == "580.159.04"
    assert driver.cuda_driver_version == "13.0" and driver.gpu_source == "nvml" and driver.nvml_error is None
    (gpu,) = gpus
    assert (gpu.index, gpu.name, gpu.uuid, gpu.pci_bus_id) == (0, g["name"], g["uuid"], g["pci"]["busId"])
    assert gpu.compute_capability == "9.0"
    # memory_v2 is preferred: its `used` excludes the driver's reservation, as nvidia-smi shows it.
    assert (gpu.memory_total_bytes, gpu.memory_used_bytes, gpu.memory_free_bytes) == tuple(
        g["memory_v2"][k] for k in ("total", "used", "free")
    )
    assert gpu.mig_enabled is False and gpu.mig_devices == []
    assert (gpu.max_sm_clock_mhz, gpu.cuda_cores, gpu.utilization_gpu) == (1980, 16896, 0)
    assert [(p.pid, p.used_memory_bytes) for p in gpu.processes] == [
        (p["pid"], p["usedGpuMemory"]) for p in g["compute_processes"]
    ]


def test_nvml_busy_capture_shows_the_process_holding_memory():
    _, (gpu,) = read_gpus_nvml(FakeNvml(capture("busy")))
    assert [p.pid for p in gpu.processes] == [720]
    assert gpu.processes[0].used_memory_bytes > 6 << 30


def test_nvml_old_driver_falls_back_to_memory_v1():
    data = json.loads((ROOTS / "old-driver-new-toolkit/nvml.json").read_text())
    driver, (gpu,) = read_gpus_nvml(FakeNvml(data))
    assert (driver.userspace_version, driver.cuda_driver_version) == ("470.256.02", "11.4")
    assert gpu.memory_total_bytes == data["gpus"][0]["memory_v1"]["total"]
    assert gpu.compute_capability == "7.5" and gpu.mig_enabled is None and gpu.cuda_cores is None


@pytest.mark.parametrize(
    ("cls", "value", "kind"),
    [
        ("NVMLError_LibraryNotFound", 12, "library_not_found"),
        ("NVMLError_DriverNotLoaded", 9, "driver_not_loaded"),
        ("NVMLError_LibRmVersionMismatch", 18, "lib_rm_version_mismatch"),
        ("NVMLError_NoPermission", 4, "no_permission"),
        ("NVMLError_GpuIsLost", 15, "gpu_lost"),
        ("NVMLError_Unknown", 999, "unknown"),
        ("NVMLError_InsufficientPower", 8, "unknown"),
    ],
)
def test_nvml_init_errors_are_classified(cls, value, kind):
    nvml = FakeNvml({"init_error": {"class": cls, "value": value}})
    driver, gpus = read_gpus_nvml(nvml)
    assert gpus == [] and driver.nvml_error is not None
    assert driver.nvml_error.kind == kind and cls in driver.nvml_error.message
    assert nvml.shutdown_count == 0 and driver.gpu_source is None


def test_nvml_mismatch_fixture():
    driver, _ = read_gpus_nvml(FakeNvml.from_json(ROOTS / "driver-mismatch/nvml.json"))
    assert driver.nvml_error.kind == "lib_rm_version_mismatch"


def test_nvml_mig_devices_and_a_lost_gpu():
    data = capture("idle")
    mig_gpu = json.loads(json.dumps(data["gpus"][0]))
    mig_gpu.update(
        mig_mode=[1, 1],
        max_mig_device_count=7,
        errors={"utilization": "NVMLError_NotSupported: Not Supported"},  # NVML has no utilisation under MIG
        mig_devices=[
            {
                "index": 0,
                "uuid": "MIG-0e3a0c5b-4b0f-5d2e-9a2a-1f6f3c1e0a01",
                "name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb",
                "memory_v1": {"total": 42949672960, "used": 0, "free": 42949672960},
            },
            {
                "index": 2,
                "uuid": "MIG-0e3a0c5b-4b0f-5d2e-9a2a-1f6f3c1e0a02",
                "name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb",
                "memory_v1": {"total": 42949672960, "used": 0, "free": 42949672960},
            },
        ],
    )
    lost = {"index": 1, "handle_error": "NVMLError_GpuIsLost"}
    nvml = FakeNvml({**data, "device_count": 2, "gpus": [mig_gpu, lost]})
    driver, gpus = read_gpus_nvml(nvml)
    (gpu,) = gpus
    assert gpu.mig_enabled is True and gpu.utilization_gpu is None
    assert [(m.index, m.uuid[-2:], m.memory_total_bytes) for m in gpu.mig_devices] == [
        (0, "01", 42949672960),
        (2, "02", 42949672960),
    ]
    assert driver.nvml_error is not None and driver.nvml_error.kind == "gpu_lost"
    assert driver.gpu_source == "nvml" and nvml.shutdown_count == 1


def test_mig_devices_that_nvml_cannot_list_are_unknown_not_empty():
    # Only NOT_FOUND means an empty slot; NO_PERMISSION / NOT_SUPPORTED mean "could not list", not "none".
    data = capture("idle")
    gpu = json.loads(json.dumps(data["gpus"][0]))
    gpu.update(mig_mode=[1, 1], max_mig_device_count=7, mig_devices=[])
    (empty,) = read_gpus_nvml(FakeNvml({**data, "gpus": [gpu]}))[1]
    assert empty.mig_devices == [] and empty.mig_devices_error is None  # every slot NOT_FOUND: truly none
    gpu["errors"] = {"mig_device_handle": "NVMLError_NoPermission: Insufficient Permissions"}
    (denied,) = read_gpus_nvml(FakeNvml({**data, "gpus": [gpu]}))[1]
    assert denied.mig_devices == []
    assert denied.mig_devices_error.startswith("MIG device handle 0: NVMLError_NoPermission")
    gpu["errors"] = {"max_mig_device_count": "NVMLError_NotSupported: Not Supported"}
    (unsupported,) = read_gpus_nvml(FakeNvml({**data, "gpus": [gpu]}))[1]
    assert unsupported.mig_devices_error.startswith("max MIG device count: NVMLError_NotSupported")
    whole = json.loads(json.dumps(data["gpus"][0]))  # MIG off: no listing, no error
    assert read_gpus_nvml(FakeNvml({**data, "gpus": [whole]}))[1][0].mig_devices_error is None


def test_nvml_shutdown_even_when_count_fails():
    data = {**capture("idle"), "errors": {"device_count": "NVMLError_Unknown: Unknown Error"}}
    nvml = FakeNvml(data)
    driver, gpus = read_gpus_nvml(nvml)
    assert gpus == [] and driver.nvml_error.kind == "unknown" and nvml.shutdown_count == 1


def test_real_pynvml_without_a_driver_records_why():
    pynvml = pytest.importorskip("pynvml")
    driver, gpus = read_gpus_nvml(pynvml)
    if driver.gpu_source == "nvml":  # a machine with a working driver: nothing to classify
        assert all(g.uuid for g in gpus)
    else:
        assert driver.nvml_error.kind in {
            "library_not_found",
            "driver_not_loaded",
            "lib_rm_version_mismatch",
            "no_permission",
            "gpu_lost",
            "unknown",
        }


@pytest.mark.parametrize(
    ("value", "text"), [(13000, "13.0"), (12020, "12.2"), (11040, "11.4"), (0, None), (None, None)]
)
def test_cuda_version_string(value, text):
    assert cuda_version_string(value) == text


# --- nvidia-smi ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_parse_real_nvidia_smi_xml(state):
    driver, (gpu,) = parse_nvidia_smi_xml((H100 / state / "nvidia-smi-q-x.xml").read_text())
    assert (driver.userspace_version, driver.cuda_driver_version, driver.gpu_source) == (
        "580.159.04",
        "13.0",
        "nvidia-smi",
    )
    assert (gpu.index, gpu.pci_bus_id, gpu.uuid) == (0, "00000000:00:06.0", capture(state)["gpus"][0]["uuid"])
    assert gpu.memory_total_bytes == 81559 * 1024 * 1024 and gpu.mig_enabled is False
    assert gpu.max_sm_clock_mhz == 1980 and gpu.utilization_gpu == 0
    expected = [(720, 6662 * 1024 * 1024, "python3")] if state == "busy" else []
    assert [(p.pid, p.used_memory_bytes, p.name) for p in gpu.processes] == expected


def test_parse_nvidia_smi_garbage_is_recorded():
    driver, gpus = parse_nvidia_smi_xml("Failed to initialize NVML: Driver/library version mismatch\n")
    assert gpus == [] and driver.nvidia_smi_error.startswith("unparsable")


def test_fallback_to_nvidia_smi_when_nvml_fails(tmp_path):
    xml = H100 / "busy/nvidia-smi-q-x.xml"
    env = fake_smi(tmp_path, f'[ "$1 $2" = "-q -x" ] || exit 2\ncat "{xml}"')
    nvml = FakeNvml({"init_error": {"class": "NVMLError_LibraryNotFound", "value": 12}})
    driver, gpus = collect_gpus(ProbeContext(env=env), nvml=nvml)
    assert driver.nvml_error.kind == "library_not_found"
    assert driver.gpu_source == "nvidia-smi" and driver.userspace_version == "580.159.04"
    assert [g.processes[0].pid for g in gpus] == [720]


def test_fallback_records_nvidia_smi_failure(tmp_path):
    # nvidia-smi's own words on a mismatch; it exits non-zero.
    env = fake_smi(tmp_path, 'echo "Failed to initialize NVML: Driver/library version mismatch"\nexit 18')
    nvml = FakeNvml.from_json(ROOTS / "driver-mismatch/nvml.json")
    driver, gpus = collect_gpus(ProbeContext(env=env), nvml=nvml)
    assert gpus == [] and driver.gpu_source is None
    assert driver.nvml_error.kind == "lib_rm_version_mismatch"
    assert "exit 18" in driver.nvidia_smi_error and "version mismatch" in driver.nvidia_smi_error


def test_hanging_nvidia_smi_is_cut_off_by_the_timeout(tmp_path):
    env = fake_smi(tmp_path, "sleep 30")
    nvml = FakeNvml({"init_error": {"class": "NVMLError_DriverNotLoaded", "value": 9}})
    started = time.perf_counter()
    driver, gpus = collect_gpus(ProbeContext(env=env, command_timeout=1.0), nvml=nvml)
    assert time.perf_counter() - started < 5
    assert gpus == [] and driver.nvidia_smi_error.startswith("timeout")
    assert driver.nvml_error.kind == "driver_not_loaded"


def test_hanging_nvml_is_cut_off_by_the_timeout(tmp_path):
    class HangingNvml(FakeNvml):  # a wedged driver: nvmlInit never returns
        def nvmlInit(self) -> None:
            time.sleep(60)

    env = fake_smi(tmp_path, "echo must not be asked >&2; exit 1")
    started = time.perf_counter()
    driver, gpus = collect_gpus(ProbeContext(env=env, command_timeout=0.5), nvml=HangingNvml(capture("idle")))
    assert time.perf_counter() - started < 3
    assert gpus == [] and driver.nvml_error.kind == "timeout" and driver.nvidia_smi_error is None


def test_no_nvidia_smi_on_path(tmp_path):
    nvml = FakeNvml({"init_error": {"class": "NVMLError_LibraryNotFound", "value": 12}})
    driver, _ = collect_gpus(ProbeContext(env={"PATH": str(tmp_path)}), nvml=nvml)
    if not os.path.exists(nvidia.WSL_NVIDIA_SMI):
        assert driver.nvidia_smi_error == "not found"


def test_host_probe_merges_kernel_files_and_nvml(monkeypatch):
    monkeypatch.setattr(nvidia, "nvidia_present", lambda ctx, driver: True)
    monkeypatch.setattr(nvidia, "collect_gpus", lambda ctx: read_gpus_nvml(FakeNvml(capture("busy"))))
    facts = Facts()
    nvidia.probe(ProbeContext(env={}), facts)  # the host's files (no GPU here), NVML from the capture
    assert facts.driver.userspace_version == "580.159.04" and len(facts.gpus) == 1


def test_cpu_only_host_skips_nvml(monkeypatch, tmp_path):
    def boom(ctx):
        raise AssertionError("NVML must not be tried")

    monkeypatch.setattr(nvidia, "collect_gpus", boom)
    monkeypatch.setattr(nvidia, "read_kernel_side", lambda ctx, driver: None)  # no PCI GPU, no module
    monkeypatch.setattr(nvidia, "nvidia_present", lambda ctx, driver: False)  # no /dev nodes, no PCI GPU
    facts = Facts()
    nvidia.probe(ProbeContext(env={}), facts)
    assert facts.driver.gpu_source is None and facts.driver.nvml_error is None


def test_wsl2_counts_as_nvidia_present():
    ctx = root_ctx(ROOTS / "wsl2/root")
    assert nvidia.nvidia_present(ctx, DriverFacts())
    assert not nvidia.nvidia_present(root_ctx(ROOTS / "multi-toolkit/root"), DriverFacts())


# --- fuzzing: no exception escapes ----------------------------------------------------------------


REAL_XML = (H100 / "busy/nvidia-smi-q-x.xml").read_text()
REAL_PROC = (H100 / "idle/root/proc/driver/nvidia/version").read_text()


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_fuzz_nvidia_smi_random(text):
    parse_nvidia_smi_xml(text)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(REAL_XML)), st.integers(0, len(REAL_XML)), st.text(max_size=20))
def test_fuzz_nvidia_smi_truncated_and_spliced(cut, at, junk):
    parse_nvidia_smi_xml(REAL_XML[:cut])
    driver, gpus = parse_nvidia_smi_xml(REAL_XML[:at] + junk + REAL_XML[at:])
    assert isinstance(gpus, list)


@settings(max_examples=150, deadline=None)
@given(st.text(), st.integers(0, len(REAL_PROC)))
def test_fuzz_proc_driver_version(text, cut):
    parse_proc_driver_version(text)
    version, flavour = parse_proc_driver_version(REAL_PROC[:cut] + text)
    assert flavour in (None, "open", "proprietary")


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.text() | st.booleans(),
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    )
)
def test_fuzz_nvml_values(value):
    """Whatever a (fake or broken) binding returns for each value, read_gpus_nvml never raises."""
    gpu = {
        k: value
        for k in (
            "name",
            "uuid",
            "pci",
            "cuda_compute_capability",
            "memory_v2",
            "memory_v1",
            "utilization",
            "mig_mode",
            "compute_processes",
            "max_sm_clock_mhz",
            "num_gpu_cores",
        )
    }
    read_gpus_nvml(FakeNvml({"driver_version": value, "cuda_driver_version": value, "gpus": [gpu]}))
