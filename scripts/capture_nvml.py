"""Dump every NVML value envdoctor reads, as JSON, for test fixtures (run on a real GPU host)."""

import json
import sys
import time

import pynvml as N

out: dict = {"binding": getattr(N, "__version__", None), "errors": {}}


def grab(key, fn, *args, into=None):
    into = out if into is None else into
    try:
        v = fn(*args)
        into[key] = v.decode() if isinstance(v, bytes) else v
    except Exception as e:  # record which call failed and how, as envdoctor must
        into.setdefault("errors", {})[key] = f"{type(e).__name__}: {e}"


t0 = time.perf_counter()
try:
    N.nvmlInit()
except N.NVMLError as e:
    out["init_error"] = {"class": type(e).__name__, "value": e.value, "str": str(e)}
    print(json.dumps(out, indent=1))
    sys.exit(0)
out["init_seconds"] = time.perf_counter() - t0
grab("driver_version", N.nvmlSystemGetDriverVersion)
grab("nvml_version", N.nvmlSystemGetNVMLVersion)
grab("cuda_driver_version", N.nvmlSystemGetCudaDriverVersion)
grab("cuda_driver_version_v2", N.nvmlSystemGetCudaDriverVersion_v2)
grab("device_count", N.nvmlDeviceGetCount)
gpus = []
for i in range(out.get("device_count", 0)):
    h = N.nvmlDeviceGetHandleByIndex(i)
    g: dict = {"index": i}
    grab("name", N.nvmlDeviceGetName, h, into=g)
    grab("uuid", N.nvmlDeviceGetUUID, h, into=g)
    try:
        p = N.nvmlDeviceGetPciInfo(h)
        g["pci"] = {
            "busId": p.busId.decode() if isinstance(p.busId, bytes) else p.busId,
            "pciDeviceId": p.pciDeviceId,
            "pciSubSystemId": p.pciSubSystemId,
        }
    except Exception as e:
        g.setdefault("errors", {})["pci"] = repr(e)
    grab("cuda_compute_capability", N.nvmlDeviceGetCudaComputeCapability, h, into=g)
    try:
        m = N.nvmlDeviceGetMemoryInfo(h, version=N.nvmlMemory_v2)
        g["memory_v2"] = {"total": m.total, "used": m.used, "free": m.free, "reserved": m.reserved}
    except Exception as e:
        g.setdefault("errors", {})["memory_v2"] = repr(e)
    try:
        m = N.nvmlDeviceGetMemoryInfo(h)
        g["memory_v1"] = {"total": m.total, "used": m.used, "free": m.free}
    except Exception as e:
        g.setdefault("errors", {})["memory_v1"] = repr(e)
    try:
        u = N.nvmlDeviceGetUtilizationRates(h)
        g["utilization"] = {"gpu": u.gpu, "memory": u.memory}
    except Exception as e:
        g.setdefault("errors", {})["utilization"] = repr(e)
    grab("mig_mode", N.nvmlDeviceGetMigMode, h, into=g)
    grab("max_mig_device_count", N.nvmlDeviceGetMaxMigDeviceCount, h, into=g)
    for kind, fn in (
        ("compute_processes", N.nvmlDeviceGetComputeRunningProcesses),
        ("graphics_processes", N.nvmlDeviceGetGraphicsRunningProcesses),
    ):
        try:
            g[kind] = [{"pid": p.pid, "usedGpuMemory": p.usedGpuMemory} for p in fn(h)]
        except Exception as e:
            g.setdefault("errors", {})[kind] = repr(e)
    grab("max_sm_clock_mhz", N.nvmlDeviceGetMaxClockInfo, h, N.NVML_CLOCK_SM, into=g)
    grab("num_gpu_cores", N.nvmlDeviceGetNumGpuCores, h, into=g)
    grab("multiprocessor_count", getattr(N, "nvmlDeviceGetMultiprocessorCount", lambda h: None), h, into=g)
    grab("persistence_mode", N.nvmlDeviceGetPersistenceMode, h, into=g)
    grab("compute_mode", N.nvmlDeviceGetComputeMode, h, into=g)
    grab("power_usage_mw", N.nvmlDeviceGetPowerUsage, h, into=g)
    grab("enforced_power_limit_mw", N.nvmlDeviceGetEnforcedPowerLimit, h, into=g)
    grab("temperature_c", N.nvmlDeviceGetTemperature, h, N.NVML_TEMPERATURE_GPU, into=g)
    grab("minor_number", N.nvmlDeviceGetMinorNumber, h, into=g)
    grab("brand", N.nvmlDeviceGetBrand, h, into=g)
    grab("architecture", N.nvmlDeviceGetArchitecture, h, into=g)
    grab("vbios_version", N.nvmlDeviceGetVbiosVersion, h, into=g)
    gpus.append(g)
out["gpus"] = gpus
N.nvmlShutdown()
out["total_seconds"] = time.perf_counter() - t0
print(json.dumps(out, indent=1))
