"""The one phrasing of "no GPU here", shared by `envdoctor check` and `envdoctor gpus`, and NVML's reason in plain
words. Light on purpose (facts only): both the doctor and the GPU commands import it."""

from __future__ import annotations

from envdoctor.facts import NvmlError

NO_GPU = "No NVIDIA GPU: TensorFlow will run on the CPU (a valid setup)"

# NvmlError.kind -> what it means to a user; the raw NVML text stays available in `check -v` and --json.
_PLAIN = {
    "library_not_found": "libnvidia-ml not found: no NVIDIA driver is installed",
    "driver_not_loaded": "the NVIDIA kernel driver is not loaded",
    "lib_rm_version_mismatch": "the NVIDIA kernel module and driver library differ in version: reboot",
    "no_permission": "no permission to open the GPU devices /dev/nvidia*",
    "gpu_lost": "a GPU has fallen off the bus",
}


def nvml_reason(err: NvmlError | None) -> str | None:
    """Why NVML listed no GPU, in plain words (its own message where the kind is not one of the known ones)."""
    if err is None:
        return None
    return _PLAIN.get(err.kind) or err.message


def no_gpu_line(reason: str | None) -> str:
    """`NO_GPU`, with the reason appended when there is one."""
    return f"{NO_GPU}; {reason}" if reason else NO_GPU
