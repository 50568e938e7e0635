"""NVIDIA driver and GPU facts: kernel module, PCI devices, Secure Boot, then NVML (or `nvidia-smi -q -x`).

Files are read under --root too; NVML and nvidia-smi only on the host. Nothing here creates a CUDA context:
NVML talks to the kernel driver directly.
"""

from __future__ import annotations

import os
import re
from typing import Any

from envdoctor.facts import (
    DriverFacts,
    DriverLibrary,
    Facts,
    GpuFacts,
    GpuProcess,
    MigDevice,
    ModuleFlavour,
    NvmlError,
    NvmlErrorKind,
    PciGpu,
)
from envdoctor.probes import ProbeContext

NVIDIA_VENDOR = "0x10de"
GPU_CLASSES = ("0x0300", "0x0302")  # PCI class VGA controller / 3D controller (subclass prefix of 0xCCSSPP)
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
NVIDIA_SMI_TIMEOUT = 4.0  # seconds; nvidia-smi can hang on a wedged GPU, check must not
WSL_NVIDIA_SMI = "/usr/lib/wsl/lib/nvidia-smi"  # WSL2 ships it there, often not on PATH

# nvml.h return codes (nvidia-ml-py names them NVML_ERROR_*); everything else is "unknown".
NVML_ERROR_KINDS: dict[int, NvmlErrorKind] = {
    12: "library_not_found",
    9: "driver_not_loaded",
    18: "lib_rm_version_mismatch",
    4: "no_permission",
    15: "gpu_lost",
}

_LIBRARY_VERSION = re.compile(r"libnvidia-ml\.so\.(\d+\.\d+(?:\.\d+)?)")
_MODULE_VERSION = re.compile(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)*)")


def probe(ctx: ProbeContext, facts: Facts) -> None:
    driver = facts.driver
    read_kernel_side(ctx, driver)
    arch = facts.system.arch or facts.cpu.arch
    driver.container_toolkit = [p for p in CONTAINER_TOOLKIT if ctx.fs.exists(p)]
    if facts.system.wsl == 2:
        driver.wsl_linux_libraries = wsl_linux_libraries(ctx, arch)
    if not ctx.host:  # --root: files only, no NVML, no commands
        driver.userspace_version = userspace_version_from_files(ctx, arch)
        return
    if not nvidia_present(ctx, driver):
        return  # CPU-only: skip pynvml's import (~15 ms of the 0.2 s budget) and nvidia-smi
    userspace, gpus = collect_gpus(ctx)
    _merge_userspace(driver, userspace)
    facts.gpus = gpus
    if driver.userspace_version is None:  # NVML failed (a version mismatch, say): the library's name still tells
        driver.userspace_version = userspace_version_from_files(ctx, arch)


# The NVIDIA Container Toolkit's programs (NVIDIA Container Toolkit install guide: nvidia-container-toolkit
# brings nvidia-ctk and nvidia-container-runtime, libnvidia-container-tools nvidia-container-cli).
CONTAINER_TOOLKIT = tuple(
    f"{d}/{n}"
    for d in ("/usr/bin", "/usr/local/bin")
    for n in ("nvidia-ctk", "nvidia-container-runtime", "nvidia-container-cli")
)
_DRIVER_LIB = re.compile(r"lib(?:cuda|nvidia-ml)\.so(?:\.(\d{3,}\.\d+(?:\.\d+)?)|(?:\.\d+)*)")


def wsl_linux_libraries(ctx: ProbeContext, arch: str | None) -> list[DriverLibrary]:
    """libcuda / libnvidia-ml files of a Linux driver inside WSL2, in the directories the loader searches before
    or besides /usr/lib/wsl/lib: they shadow the Windows driver's. Versions from the file names
    (libcuda.so.550.54.14); a link is listed with the version of the file it names."""
    from envdoctor.probes.cuda import loader_dirs

    fs = ctx.fs
    found: list[DriverLibrary] = []
    for directory, _ in loader_dirs(fs, arch):
        if directory.startswith("/usr/lib/wsl"):
            continue
        for name in sorted(n for n in fs.listdir(directory) if n.startswith(("libcuda.so", "libnvidia-ml.so"))):
            real = fs.realpath(f"{directory}/{name}")
            if real.startswith("/usr/lib/wsl/"):  # a link to the Windows driver's own file is how it should be
                continue
            match = _DRIVER_LIB.fullmatch(os.path.basename(real))
            if match and f"{directory}/{name}" not in {lib.path for lib in found}:
                found.append(DriverLibrary(f"{directory}/{name}", match.group(1)))
    return found


def userspace_version_from_files(ctx: ProbeContext, arch: str | None) -> str | None:
    """The installed driver's version from the file libnvidia-ml.so.1 links to (libnvidia-ml.so.550.127.05),
    in the first directory the loader searches. None where the file is not versioned (WSL2's /usr/lib/wsl/lib)."""
    from envdoctor.probes.cuda import loader_dirs

    fs = ctx.fs
    for directory, _ in loader_dirs(fs, arch):
        if "libnvidia-ml.so.1" in fs.listdir(directory):
            name = os.path.basename(fs.realpath(f"{directory}/libnvidia-ml.so.1"))
            match = _LIBRARY_VERSION.fullmatch(name)
            return match.group(1) if match else None
    return None


def nvidia_present(ctx: ProbeContext, driver: DriverFacts) -> bool:
    """Any sign of an NVIDIA GPU or driver: a PCI device, the kernel module, its device nodes, WSL2's /dev/dxg."""
    if driver.pci_gpus or driver.nvidia_module_loaded:
        return True
    return any(ctx.fs.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/usr/lib/wsl/lib"))


# --- files: /proc, /sys -------------------------------------------------------------------------------


def read_kernel_side(ctx: ProbeContext, driver: DriverFacts) -> None:
    """Everything that comes from files: module version/flavour, loaded modules, Secure Boot, PCI GPUs."""
    version, flavour = parse_proc_driver_version(ctx.read_text("/proc/driver/nvidia/version") or "")
    if version is None:  # /proc/driver/nvidia absent (e.g. a container without it): the module says it too
        version = (ctx.read_text("/sys/module/nvidia/version") or "").strip() or None
    driver.kernel_module_version, driver.kernel_module_flavour = version, flavour
    dev = ctx.fs.listdir("/dev")
    # A live /dev always has null; an image's empty /dev (--root) says nothing about the device nodes.
    driver.device_nodes = sorted(n for n in dev if n.startswith("nvidia")) if "null" in dev else None
    modules = loaded_modules(ctx.read_text("/proc/modules") or "")
    driver.nvidia_module_loaded = "nvidia" in modules or version is not None
    driver.nouveau_loaded = "nouveau" in modules
    driver.secure_boot = read_secure_boot(ctx)
    driver.pci_gpus = pci_gpus(ctx)


def parse_proc_driver_version(text: str) -> tuple[str | None, ModuleFlavour | None]:
    """(version, "open" | "proprietary") from /proc/driver/nvidia/version's NVRM line."""
    for line in text.splitlines():
        if line.startswith("NVRM version:"):
            match = _MODULE_VERSION.search(line)
            flavour: ModuleFlavour = "open" if "Open Kernel Module" in line else "proprietary"
            return (match.group(1) if match else None), flavour
    return None, None


def loaded_modules(text: str) -> set[str]:
    """Module names from /proc/modules (first field of each line)."""
    return {line.split(maxsplit=1)[0] for line in text.splitlines() if line.strip()}


def read_secure_boot(ctx: ProbeContext) -> bool | None:
    """True/False from the UEFI SecureBoot variable (4 attribute bytes, then the value); None if unknown."""
    data = ctx.fs.read_bytes(SECURE_BOOT_VAR, 8)
    if data is None:
        # UEFI with efivars mounted but no such variable: firmware without Secure Boot. Else unknown (BIOS).
        return False if ctx.fs.isdir("/sys/firmware/efi/efivars") else None
    return data[4] == 1 if len(data) >= 5 else None


def pci_gpus(ctx: ProbeContext) -> list[PciGpu]:
    """NVIDIA display/3D controllers on PCI, with the kernel driver bound to each (None if unbound)."""
    base = "/sys/bus/pci/devices"
    found = []
    for address in sorted(ctx.fs.listdir(base)):
        dev = f"{base}/{address}"
        vendor = _read_stripped(ctx, f"{dev}/vendor")
        if vendor != NVIDIA_VENDOR:
            continue
        class_code = _read_stripped(ctx, f"{dev}/class") or ""
        if not class_code.startswith(GPU_CLASSES):
            continue
        link = ctx.fs.readlink(f"{dev}/driver")
        driver = os.path.basename(link) if link else None
        found.append(PciGpu(address, vendor, _read_stripped(ctx, f"{dev}/device") or "", class_code, driver))
    return found


def _read_stripped(ctx: ProbeContext, path: str) -> str | None:
    data = ctx.fs.read_bytes(path, 64)
    return None if data is None else data.decode("ascii", "replace").strip().lower()


# --- NVML and nvidia-smi ------------------------------------------------------------------------------


def collect_gpus(ctx: ProbeContext, nvml: Any = None) -> tuple[DriverFacts, list[GpuFacts]]:
    """GPUs through NVML, else through `nvidia-smi -q -x`. `nvml` defaults to the real pynvml module."""
    if not ctx.host and nvml is None:
        return DriverFacts(), []
    if nvml is None:
        try:
            import pynvml as nvml  # type: ignore[no-redef]  # lazily: --version and CPU-only paths never pay
        except Exception as exc:  # not installed, or shadowed by a broken module
            driver = DriverFacts(nvml_error=NvmlError("library_not_found", f"cannot import pynvml: {exc}"))
            return _fallback_smi(ctx, driver)
    answer = _within(ctx.command_timeout, read_gpus_nvml, nvml)
    if answer is None:  # nvidia-smi rides on the same hung driver: asking it too would only add its timeout
        return DriverFacts(
            nvml_error=NvmlError(
                "timeout", f"NVML did not answer within {ctx.command_timeout:g}s (a hung GPU or driver)"
            )
        ), []
    driver, gpus = answer
    if driver.gpu_source == "nvml":
        return driver, gpus
    return _fallback_smi(ctx, driver)


def _within(seconds: float, fn: Any, *args: Any) -> Any:
    """fn(*args), or None if it has not returned after `seconds`. NVML calls are C calls that no signal can
    interrupt, so they run in a daemon thread that is left behind (it cannot keep the process alive) on a hang."""
    import threading

    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(fn(*args)), name="envdoctor-nvml", daemon=True)
    worker.start()
    worker.join(seconds)
    return result[0] if result else None


def _fallback_smi(ctx: ProbeContext, driver: DriverFacts) -> tuple[DriverFacts, list[GpuFacts]]:
    """Ask nvidia-smi when NVML could not answer; keep NVML's error either way."""
    argv = ["nvidia-smi", "-q", "-x"]
    if ctx.host and os.path.exists(WSL_NVIDIA_SMI):
        argv[0] = WSL_NVIDIA_SMI
    result = ctx.run(argv, timeout=min(ctx.command_timeout, NVIDIA_SMI_TIMEOUT))
    if not result.ok:
        why = result.error or f"exit {result.returncode}: {(result.stdout + result.stderr).strip()[:200]}"
        driver.nvidia_smi_error = why
        return driver, []
    smi_driver, gpus = parse_nvidia_smi_xml(result.stdout)
    if smi_driver.nvidia_smi_error:
        driver.nvidia_smi_error = smi_driver.nvidia_smi_error
        return driver, []
    _merge_userspace(driver, smi_driver)
    driver.gpu_source = "nvidia-smi"
    return driver, gpus


def _merge_userspace(into: DriverFacts, src: DriverFacts) -> None:
    for name in ("userspace_version", "cuda_driver_version", "nvml_error", "gpu_source", "nvidia_smi_error"):
        value = getattr(src, name)
        if value is not None:
            setattr(into, name, value)


def nvml_error(exc: BaseException) -> NvmlError:
    """Classify an exception from NVML by its nvml.h code (works for pynvml and the test fake alike)."""
    value = getattr(exc, "value", None)
    kind = NVML_ERROR_KINDS.get(value, "unknown") if isinstance(value, int) else "unknown"
    try:
        text = str(exc)
    except Exception:  # pynvml's __str__ calls into the library, which may be the thing that is missing
        text = ""
    return NvmlError(kind, f"{type(exc).__name__}: {text}".rstrip(": "))


def read_gpus_nvml(nvml: Any) -> tuple[DriverFacts, list[GpuFacts]]:
    """Init NVML, read the driver and every GPU, always shut down. Failures land in DriverFacts.nvml_error."""
    driver = DriverFacts()
    try:
        nvml.nvmlInit()
    except Exception as exc:
        driver.nvml_error = nvml_error(exc)
        return driver, []
    try:
        driver.userspace_version = _text(_query(nvml.nvmlSystemGetDriverVersion))
        driver.cuda_driver_version = cuda_version_string(_query(nvml.nvmlSystemGetCudaDriverVersion))
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            driver.nvml_error = nvml_error(exc)
            return driver, []
        gpus = []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            except Exception as exc:  # e.g. GPU_IS_LOST for one board: report it, keep the others
                driver.nvml_error = driver.nvml_error or nvml_error(exc)
                continue
            gpus.append(_read_gpu(nvml, index, handle))
        driver.gpu_source = "nvml"
        return driver, gpus
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def _read_gpu(nvml: Any, index: int, handle: Any) -> GpuFacts:
    pci = _query(nvml.nvmlDeviceGetPciInfo, handle)
    cc = _query(nvml.nvmlDeviceGetCudaComputeCapability, handle)
    gpu = GpuFacts(
        index=index,
        name=_text(_query(nvml.nvmlDeviceGetName, handle)) or "",
        uuid=_text(_query(nvml.nvmlDeviceGetUUID, handle)) or "",
        pci_bus_id=_text(getattr(pci, "busId", None)) or "",
        compute_capability=f"{cc[0]}.{cc[1]}" if isinstance(cc, (tuple, list)) and len(cc) == 2 else None,
        max_sm_clock_mhz=_int(_query(nvml.nvmlDeviceGetMaxClockInfo, handle, getattr(nvml, "NVML_CLOCK_SM", 1))),
        cuda_cores=_int(_query(nvml.nvmlDeviceGetNumGpuCores, handle)),
    )
    memory = _memory(nvml, handle)
    if memory is not None:
        gpu.memory_total_bytes = _int(getattr(memory, "total", None))
        gpu.memory_used_bytes = _int(getattr(memory, "used", None))
        gpu.memory_free_bytes = _int(getattr(memory, "free", None))
    gpu.utilization_gpu = _int(getattr(_query(nvml.nvmlDeviceGetUtilizationRates, handle), "gpu", None))
    gpu.processes = _processes(nvml, handle)
    mode = _query(nvml.nvmlDeviceGetMigMode, handle)  # (current, pending); NOT_SUPPORTED on non-MIG GPUs
    if isinstance(mode, (tuple, list)) and mode:
        gpu.mig_enabled = mode[0] == getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1)
        if gpu.mig_enabled:
            gpu.mig_devices, gpu.mig_devices_error = _mig_devices(nvml, handle)
    return gpu


def _memory(nvml: Any, handle: Any) -> Any:
    """nvmlMemory_v2 (driver >= 515: `used` excludes reserved memory, like nvidia-smi), else v1."""
    version = getattr(nvml, "nvmlMemory_v2", None)
    if version is not None:
        memory = _query(nvml.nvmlDeviceGetMemoryInfo, handle, version=version)
        if memory is not None:
            return memory
    return _query(nvml.nvmlDeviceGetMemoryInfo, handle)


def _processes(nvml: Any, handle: Any) -> list[GpuProcess]:
    found = []
    for proc in _query(nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []:
        pid = _int(getattr(proc, "pid", None))
        if pid is None:
            continue
        name_fn = getattr(nvml, "nvmlSystemGetProcessName", None)
        name = _text(_query(name_fn, pid)) if name_fn else None
        found.append(GpuProcess(pid, _int(getattr(proc, "usedGpuMemory", None)), name))
    return found


def _mig_devices(nvml: Any, handle: Any) -> tuple[list[MigDevice], str | None]:
    """The MIG devices NVML lists, and why the list is unknown (None when it is complete). Only NOT_FOUND
    means "no MIG device here" (an empty slot); NO_PERMISSION, NOT_SUPPORTED and the rest mean "could not
    list", which must not read as an empty list (gpu.mig-no-devices would call the GPU unusable)."""
    devices: list[MigDevice] = []
    try:
        count = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except Exception as exc:
        return devices, _mig_error("max MIG device count", exc)
    if _int(count) is None:
        return devices, f"max MIG device count: unexpected answer {count!r}"
    error = None
    for slot in range(count):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except Exception as exc:
            if getattr(exc, "value", None) != getattr(nvml, "NVML_ERROR_NOT_FOUND", 6):  # NOT_FOUND: empty slot
                error = error or _mig_error(f"MIG device handle {slot}", exc)
            continue
        memory = _query(nvml.nvmlDeviceGetMemoryInfo, mig)
        devices.append(
            MigDevice(
                index=slot,
                uuid=_text(_query(nvml.nvmlDeviceGetUUID, mig)) or "",
                memory_total_bytes=_int(getattr(memory, "total", None)),
                name=_text(_query(nvml.nvmlDeviceGetName, mig)),
            )
        )
    return devices, error


def _mig_error(what: str, exc: BaseException) -> str:
    return f"{what}: {nvml_error(exc).message}"


def _query(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """One optional NVML query: None when the device or driver does not support it."""
    try:
        return fn(*args, **kwargs)
    except Exception:  # NVMLError_NotSupported, FunctionNotFound…; never let one value sink the probe
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):  # older bindings return bytes
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cuda_version_string(value: Any) -> str | None:
    """NVML's CUDA driver version int (13000) as "13.0"."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


# --- nvidia-smi -q -x ---------------------------------------------------------------------------------


def parse_nvidia_smi_xml(text: str) -> tuple[DriverFacts, list[GpuFacts]]:
    """Driver and GPU facts from `nvidia-smi -q -x`; a parse failure is recorded in nvidia_smi_error."""
    import xml.etree.ElementTree as ET

    driver = DriverFacts(gpu_source="nvidia-smi")
    try:
        root = ET.fromstring(text)
    except (ET.ParseError, ValueError) as exc:
        driver.nvidia_smi_error = f"unparsable nvidia-smi XML: {exc}"
        return driver, []
    driver.userspace_version = _xml_text(root, "driver_version")
    driver.cuda_driver_version = _xml_text(root, "cuda_version")
    gpus = [_smi_gpu(index, node) for index, node in enumerate(root.iter("gpu"))]
    return driver, gpus


def _smi_gpu(index: int, node: Any) -> GpuFacts:
    # Elements are in PCI bus order, which is NVML's and nvidia-smi's index (minor_number is not).
    gpu = GpuFacts(
        index=index,
        name=_xml_text(node, "product_name") or "",
        uuid=_xml_text(node, "uuid") or "",
        pci_bus_id=_xml_text(node, "pci/pci_bus_id") or node.get("id") or "",
        memory_total_bytes=_mib(_xml_text(node, "fb_memory_usage/total")),
        memory_used_bytes=_mib(_xml_text(node, "fb_memory_usage/used")),
        memory_free_bytes=_mib(_xml_text(node, "fb_memory_usage/free")),
        utilization_gpu=_number(_xml_text(node, "utilization/gpu_util")),
        max_sm_clock_mhz=_number(_xml_text(node, "max_clocks/sm_clock")),
    )
    cc = _xml_text(node, "compute_cap")  # not in every driver's -q output
    gpu.compute_capability = cc if cc and re.fullmatch(r"\d+\.\d+", cc) else None
    mig = _xml_text(node, "mig_mode/current_mig")
    gpu.mig_enabled = {"Enabled": True, "Disabled": False}.get(mig or "")
    for slot, dev in enumerate(node.findall("mig_devices/mig_device")):
        number = _number(_xml_text(dev, "index"))
        gpu.mig_devices.append(
            MigDevice(
                index=slot if number is None else number,
                uuid=_xml_text(dev, "uuid") or "",  # nvidia-smi -q -x has no MIG UUID; `nvidia-smi -L` does
                memory_total_bytes=_mib(_xml_text(dev, "fb_memory_usage/total")),
            )
        )
    for proc in node.findall("processes/process_info"):
        pid = _number(_xml_text(proc, "pid"))
        if pid is not None and (_xml_text(proc, "type") or "C") != "G":  # compute processes, as NVML's list
            gpu.processes.append(GpuProcess(pid, _mib(_xml_text(proc, "used_memory")), _xml_text(proc, "process_name")))
    return gpu


def _xml_text(node: Any, path: str) -> str | None:
    found = node.find(path)
    text = (found.text or "").strip() if found is not None else ""
    return text if text and text not in ("N/A", "None", "[N/A]") else None


def _number(text: str | None) -> int | None:
    """Leading integer of "0 %", "1980 MHz", "720"."""
    match = re.match(r"\s*(\d+)", text or "")
    return int(match.group(1)) if match else None


def _mib(text: str | None) -> int | None:
    value = _number(text)
    return value * 1024 * 1024 if value is not None and "MiB" in (text or "") else None
