"""FakeNvml: replays an NVML capture so GPU code can be tested without a GPU.

Use it wherever code takes the `pynvml` module as an argument:

    nvml = FakeNvml.from_json("tests/fixtures/h100-firecracker/idle/nvml.json")
    driver, gpus = read_gpus_nvml(nvml)
    assert nvml.init_count == nvml.shutdown_count == 1

The exception classes and NVML_ERROR_* codes are the real ones from nvidia-ml-py, so `except
pynvml.NVMLError_NotSupported` works the same against the fake and the real library.

JSON format: what `scripts/capture_nvml.py` writes on a real host, plus three extensions (marked *).

    {
      "init_error": {"class": "NVMLError_DriverNotLoaded", "value": 9},   # nvmlInit() raises this; nothing else
      "driver_version": "580.159.04",          # nvmlSystemGetDriverVersion()
      "nvml_version": "13.580.159.04",         # nvmlSystemGetNVMLVersion()
      "cuda_driver_version": 13000,            # nvmlSystemGetCudaDriverVersion(), also _v2 ("cuda_driver_version_v2")
      "device_count": 1,                       # nvmlDeviceGetCount(); defaults to len(gpus)
      "errors": {"<key>": "NVMLError_NotSupported: Not Supported"},       # a top-level call that raises
      "gpus": [                                # in NVML index order (PCI bus order)
        {
          "index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-…",
          "pci": {"busId": "00000000:00:06.0", "pciDeviceId": 590352606, "pciSubSystemId": 381751518},
          "cuda_compute_capability": [9, 0],
          "memory_v2": {"total": …, "used": …, "free": …, "reserved": …},  # GetMemoryInfo(h, version=nvmlMemory_v2)
          "memory_v1": {"total": …, "used": …, "free": …},                 # GetMemoryInfo(h)
          "utilization": {"gpu": 0, "memory": 0},
          "mig_mode": [0, 0],                  # (current, pending); 1 = enabled
          "max_mig_device_count": 0,
          "compute_processes": [{"pid": 720, "usedGpuMemory": 6985613312, "name": "python3"*}],
          "graphics_processes": [],
          "max_sm_clock_mhz": 1980, "num_gpu_cores": 16896, "persistence_mode": 1, "compute_mode": 0,
          "power_usage_mw": 117860, "enforced_power_limit_mw": 700000, "temperature_c": 36,
          "minor_number": 0, "brand": 14, "architecture": 9, "vbios_version": "96.00.DA.00.0C",
          "errors": {"utilization": "NVMLError_NotSupported(...)"},      # per-GPU calls that raise
                                               # ("mig_device_handle"*: GetMigDeviceHandleByIndex, any slot)
          "handle_error": "NVMLError_GpuIsLost"*,                         # GetHandleByIndex(i) raises
          "mig_devices"*: [                    # MIG children, by slot ("index") for GetMigDeviceHandleByIndex
            {"index": 0, "uuid": "MIG-…", "name": "NVIDIA A100-SXM4-40GB MIG 3g.20gb",
             "memory_v1": {"total": …, "used": …, "free": …}}
          ]
        }
      ]
    }

A key that is absent (and not in "errors") raises NVMLError_NotSupported, which is what NVML answers for a
query a device or driver cannot serve. An error string names its class by its first `NVMLError_\\w+`.
"""

from __future__ import annotations

import json
import os
import re
from types import SimpleNamespace
from typing import Any

import pynvml as _real

_ERROR_NAME = re.compile(r"NVMLError_\w+")


class _Handle:
    def __init__(self, data: dict[str, Any], mig: bool = False) -> None:
        self.data = data
        self.mig = mig

    def __repr__(self) -> str:
        return f"<FakeNvml handle {self.data.get('uuid')}>"


class FakeNvml:
    """The subset of the pynvml API that envdoctor uses, answering from a captured dict."""

    NVML_CLOCK_SM = _real.NVML_CLOCK_SM
    NVML_TEMPERATURE_GPU = _real.NVML_TEMPERATURE_GPU
    NVML_DEVICE_MIG_ENABLE = _real.NVML_DEVICE_MIG_ENABLE
    NVML_DEVICE_MIG_DISABLE = _real.NVML_DEVICE_MIG_DISABLE
    nvmlMemory_v2 = _real.nvmlMemory_v2

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.init_count = 0
        self.shutdown_count = 0
        self.initialized = False
        # The real exception classes and error codes, so callers can catch them by their usual names.
        for name in dir(_real):
            if name.startswith(("NVMLError", "NVML_ERROR_")):
                setattr(self, name, getattr(_real, name))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> FakeNvml:
        with open(path, encoding="utf-8") as fh:
            return cls(json.load(fh))

    # --- lifecycle ---
    def nvmlInit(self) -> None:
        err = self.data.get("init_error")
        if err:
            raise self._error(err.get("class"), err.get("value"))
        self.init_count += 1
        self.initialized = True

    def nvmlInitWithFlags(self, flags: int) -> None:
        self.nvmlInit()

    def nvmlShutdown(self) -> None:
        self._require_init()
        self.shutdown_count += 1
        self.initialized = False

    # --- system ---
    def nvmlSystemGetDriverVersion(self) -> str:
        return self._top("driver_version")

    def nvmlSystemGetNVMLVersion(self) -> str:
        return self._top("nvml_version")

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self._top("cuda_driver_version")

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return self._top("cuda_driver_version_v2")

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        self._require_init()
        for gpu in self._gpus():
            for proc in gpu.get("compute_processes", []) + gpu.get("graphics_processes", []):
                if proc.get("pid") == pid and proc.get("name"):
                    return proc["name"]
        raise _real.NVMLError(_real.NVML_ERROR_NOT_FOUND)

    # --- devices ---
    def nvmlDeviceGetCount(self) -> int:
        self._require_init()
        if "device_count" in self.data.get("errors", {}):
            raise self._error(self.data["errors"]["device_count"])
        return int(self.data.get("device_count", len(self._gpus())))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._require_init()
        gpus = self._gpus()
        if not 0 <= index < len(gpus):
            raise _real.NVMLError(_real.NVML_ERROR_INVALID_ARGUMENT)
        if gpus[index].get("handle_error"):
            raise self._error(gpus[index]["handle_error"])
        return _Handle(gpus[index])

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> _Handle:
        self._require_init()
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        for gpu in self._gpus():
            if gpu.get("uuid") == uuid:
                return _Handle(gpu)
            for mig in gpu.get("mig_devices", []):
                if mig.get("uuid") == uuid:
                    return _Handle(mig, mig=True)
        raise _real.NVMLError(_real.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str | bytes) -> _Handle:
        self._require_init()
        bus_id = bus_id.decode() if isinstance(bus_id, bytes) else bus_id
        for gpu in self._gpus():
            if gpu.get("pci", {}).get("busId", "").lower() == bus_id.lower():
                return _Handle(gpu)
        raise _real.NVMLError(_real.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetIndex(self, handle: _Handle) -> int:
        return self._get(handle, "index")

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return self._get(handle, "name")

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        return self._get(handle, "uuid")

    def nvmlDeviceGetPciInfo(self, handle: _Handle) -> SimpleNamespace:
        return SimpleNamespace(**self._get(handle, "pci"))

    def nvmlDeviceGetCudaComputeCapability(self, handle: _Handle) -> tuple[int, int]:
        major, minor = self._get(handle, "cuda_compute_capability")
        return major, minor

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> SimpleNamespace:
        return SimpleNamespace(**self._get(handle, "memory_v2" if version else "memory_v1"))

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> SimpleNamespace:
        return SimpleNamespace(**self._get(handle, "utilization"))

    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:
        return list(self._get(handle, "mig_mode"))

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:
        return self._get(handle, "max_mig_device_count")

    def nvmlDeviceIsMigDeviceHandle(self, handle: _Handle) -> bool:
        self._require_init()
        return handle.mig

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _Handle:
        self._require_init()
        if "mig_device_handle" in handle.data.get("errors", {}):  # e.g. NVMLError_NoPermission for every slot
            raise self._error(handle.data["errors"]["mig_device_handle"])
        for mig in handle.data.get("mig_devices", []):
            if mig.get("index") == index:
                return _Handle(mig, mig=True)
        raise _real.NVMLError(_real.NVML_ERROR_NOT_FOUND)  # an empty MIG slot, as on real hardware

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(pid=p["pid"], usedGpuMemory=p.get("usedGpuMemory"))
            for p in self._get(handle, "compute_processes")
        ]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: _Handle) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(pid=p["pid"], usedGpuMemory=p.get("usedGpuMemory"))
            for p in self._get(handle, "graphics_processes")
        ]

    def nvmlDeviceGetMaxClockInfo(self, handle: _Handle, clock_type: int) -> int:
        if clock_type != self.NVML_CLOCK_SM:
            raise _real.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)  # only the SM clock is captured
        return self._get(handle, "max_sm_clock_mhz")

    def nvmlDeviceGetNumGpuCores(self, handle: _Handle) -> int:
        return self._get(handle, "num_gpu_cores")

    def nvmlDeviceGetPersistenceMode(self, handle: _Handle) -> int:
        return self._get(handle, "persistence_mode")

    def nvmlDeviceGetComputeMode(self, handle: _Handle) -> int:
        return self._get(handle, "compute_mode")

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        return self._get(handle, "power_usage_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        return self._get(handle, "enforced_power_limit_mw")

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        return self._get(handle, "temperature_c")

    def nvmlDeviceGetMinorNumber(self, handle: _Handle) -> int:
        return self._get(handle, "minor_number")

    def nvmlDeviceGetBrand(self, handle: _Handle) -> int:
        return self._get(handle, "brand")

    def nvmlDeviceGetArchitecture(self, handle: _Handle) -> int:
        return self._get(handle, "architecture")

    def nvmlDeviceGetVbiosVersion(self, handle: _Handle) -> str:
        return self._get(handle, "vbios_version")

    # --- plumbing ---
    def _gpus(self) -> list[dict[str, Any]]:
        return list(self.data.get("gpus", []))

    def _require_init(self) -> None:
        if not self.initialized:
            raise _real.NVMLError(_real.NVML_ERROR_UNINITIALIZED)

    def _top(self, key: str) -> Any:
        self._require_init()
        return self._lookup(self.data, key)

    def _get(self, handle: _Handle, key: str) -> Any:
        self._require_init()
        return self._lookup(handle.data, key)

    def _lookup(self, data: dict[str, Any], key: str) -> Any:
        if key in data.get("errors", {}):
            raise self._error(data["errors"][key])
        if data.get(key) is None:
            raise _real.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
        return data[key]

    @staticmethod
    def _error(name: str | None, value: int | None = None) -> Exception:
        """The real NVMLError subclass named in a capture (by class name, else by code)."""
        match = _ERROR_NAME.search(name or "")
        cls = getattr(_real, match.group(0), None) if match else None
        if isinstance(cls, type) and issubclass(cls, _real.NVMLError) and cls is not _real.NVMLError:
            return cls()
        return _real.NVMLError(value if isinstance(value, int) else _real.NVML_ERROR_UNKNOWN)
