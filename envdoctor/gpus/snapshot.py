"""Where the GPU list comes from: the live machine (NVML, else nvidia-smi) or a saved JSON snapshot."""

from __future__ import annotations

from pathlib import Path

from envdoctor.errors import UsageError
from envdoctor.facts import GpuFacts, from_dict
from envdoctor.gpus.nogpu import nvml_reason


def load_gpus(path: str | Path) -> list[GpuFacts]:
    """GPUs from a JSON file with a "gpus" list: a `check --save` snapshot or `gpus --json` output."""
    from envdoctor.jsonload import load_json_input

    data = load_json_input(Path(path), "--from")
    gpus = data.get("gpus") if isinstance(data, dict) else None
    if not isinstance(gpus, list):
        raise UsageError(f'{path} has no "gpus" list (expected a `check --save` or `gpus --json` file)')
    try:
        return [from_dict(GpuFacts, g) for g in gpus]
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{path}: bad GPU entry: {exc}") from None


def live_gpus() -> tuple[list[GpuFacts], str | None]:
    """This machine's GPUs and, when there are none, why (never raises)."""
    try:
        from envdoctor.probes import ProbeContext
        from envdoctor.probes.nvidia import collect_gpus
    except ImportError as exc:
        return [], f"the NVIDIA probe is not available ({exc})"
    try:
        driver, gpus = collect_gpus(ProbeContext())
    except Exception as exc:  # a probe failure means "no usable GPU", never a traceback
        return [], f"reading the GPUs failed: {type(exc).__name__}: {exc}"
    if gpus:
        return gpus, None
    return [], nvml_reason(driver.nvml_error) or driver.nvidia_smi_error or "no NVIDIA GPU found"


def gpus_from(path: str | Path | None) -> tuple[list[GpuFacts], str | None]:
    """The GPUs to work with: from a snapshot file when given, else from this machine."""
    if path:
        gpus = load_gpus(path)
        return gpus, None if gpus else f"the snapshot {path} lists no GPU"
    return live_gpus()
