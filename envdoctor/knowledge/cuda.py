"""CUDA, NVIDIA drivers and compute capabilities (recipes/cuda_drivers.json): which driver runs which CUDA, which
CUDA compiles for which GPU, and how a TensorFlow build's compute-capability list covers a GPU."""

from __future__ import annotations

from typing import Literal, TypedDict, cast

from packaging.version import Version

from envdoctor.knowledge.versions import major, major_minor, version, version_key
from envdoctor.resources import load_recipe

RECIPE = "cuda_drivers.json"

# The driver table's columns: under WSL2 the driver is the Windows one.
DriverColumn = Literal["linux", "windows"]
CC = tuple[int, int]


class ToolkitRow(TypedDict):
    """A row of NVIDIA's 'CUDA Toolkit and Corresponding Driver Versions' table (None: no bundled driver)."""

    cuda: str
    linux: str | None
    windows: str | None


class DriverLimit(TypedDict):
    """NVIDIA's last driver branch for GPUs below a compute capability."""

    below_cc: str
    branch: str
    architecture: str


class CudaDrivers(TypedDict):
    toolkits: list[ToolkitRow]
    minor_version_compatibility: dict[str, dict[DriverColumn, str]]
    min_compute_capability: dict[str, str]
    first_cuda_for_compute_capability: dict[str, str]
    ptx_cross_generation_fails_from: str
    max_driver_branch: list[DriverLimit]


def table() -> CudaDrivers:
    return cast(CudaDrivers, load_recipe(RECIPE))


def toolkit_minimum(cuda: str | None, column: DriverColumn) -> str | None:
    """The driver a CUDA toolkit of this major.minor needs outright (its release-notes row)."""
    mm = major_minor(cuda)
    return next((row[column] for row in table()["toolkits"] if major_minor(row["cuda"]) == mm), None)


def minor_compat_minimum(cuda_major: int, column: DriverColumn) -> str | None:
    """The driver that runs every CUDA of this major through minor-version compatibility."""
    return table()["minor_version_compatibility"].get(str(cuda_major), {}).get(column)


def within_branch(minimum: str | None, branch: int) -> bool:
    """A driver of this branch reaches this minimum version (unknown minimum: assume it does)."""
    head = major(minimum)
    return head is None or head <= branch


def max_cuda_for_driver(driver: str | None, column: DriverColumn) -> Version | None:
    """The newest CUDA whose toolkit-table minimum this driver version meets."""
    have = version(driver)
    if have is None:
        return None
    fits = [
        cuda
        for row in table()["toolkits"]
        if (need := version(row[column])) is not None and need <= have and (cuda := version(row["cuda"]))
    ]
    return max(fits) if fits else None


def branch_max_cuda(branch: int, column: DriverColumn = "linux") -> str | None:
    """The newest CUDA whose toolkit-table minimum driver is within this branch."""
    rows = [r["cuda"] for r in table()["toolkits"] if (b := major(r[column])) is not None and b <= branch]
    return max(rows, key=version_key) if rows else None


def branch_runs_cuda(branch: int, cuda: str, column: DriverColumn = "linux") -> bool:
    """A driver of this branch runs this CUDA: the toolkit's own minimum, or its major's minor-version
    compatibility minimum, is within the branch."""
    mm = major_minor(cuda)
    if mm is None:
        return False
    mins = [toolkit_minimum(cuda, column), minor_compat_minimum(mm[0], column)]
    return any((b := major(m)) is not None and b <= branch for m in mins)


def oldest_toolkit() -> str:
    return min((r["cuda"] for r in table()["toolkits"]), key=version_key)


def driver_limit(cc: CC | None) -> DriverLimit | None:
    """NVIDIA's last driver branch for this compute capability (None: no limit)."""
    if cc is None:
        return None
    for row in table()["max_driver_branch"]:
        below = major_minor(row["below_cc"])
        if below is not None and cc < below:
            return row
    return None


def min_compute_capability(cuda_major: int | str) -> CC | None:
    """The lowest compute capability a CUDA of this major compiles for (CUDA 12: 5.0)."""
    return major_minor(table()["min_compute_capability"].get(str(cuda_major)))


def first_cuda_for(cc: CC) -> str | None:
    """The first CUDA that compiles for this compute capability (None: any)."""
    firsts = table()["first_cuda_for_compute_capability"]
    below = [k for k in firsts if (mm := major_minor(k)) is not None and mm <= cc]
    return firsts[max(below, key=version_key)] if below else None


def cuda_compiles_for(cuda: str | None, cc: CC) -> bool:
    """This CUDA can compile SASS for cc: recent enough for it, and not past dropping it."""
    have = major_minor(cuda)
    if have is None:
        return False
    need = major_minor(first_cuda_for(cc))
    floor = min_compute_capability(have[0])
    return (need is None or have >= need) and (floor is None or cc >= floor)


def ptx_cross_generation_fails_from() -> CC:
    """From this compute capability on, PTX of an older GPU generation fails (tensorflow#99592)."""
    return major_minor(table()["ptx_cross_generation_fails_from"]) or (99, 0)


def parse_cc(text: str) -> CC | None:
    """ "sm_86" / "compute_90" / "sm_100a" / "8.6" -> (8, 6) / (9, 0) / (10, 0) / (8, 6)."""
    if "." in text:
        return major_minor(text)
    digits = text.rsplit("_", 1)[-1].rstrip("abf")  # sm_90a, sm_100f: arch-specific variants
    return (int(digits[:-1]), int(digits[-1])) if digits.isdigit() and len(digits) >= 2 else None


def sass_for(caps: list[str], cc: CC) -> str | None:
    """The sm_XY entry whose binary runs on cc: same major, minor at or below it.

    An arch-specific entry (sm_90a) runs on exactly that compute capability only (CUDA Programming Guide)."""
    for entry in caps:
        arch = parse_cc(entry)
        if not entry.startswith("sm_") or arch is None or arch[0] != cc[0]:
            continue
        if arch[1] == cc[1] or (arch[1] < cc[1] and not entry.endswith("a")):
            return entry
    return None
