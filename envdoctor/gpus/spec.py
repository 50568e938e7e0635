"""The GPU SPEC of `env`, `run` and configure_tensorflow, and the environment that selects it.

SPEC: `all`, `none` (CPU only), `auto:N`, or a comma list of nvidia-smi indices (`0,2`), `G:M` (MIG device M of
GPU G, as nvidia-smi numbers them), GPU-/MIG- UUIDs or unique prefixes of them. Indices are NVML's = nvidia-smi's
(PCI bus order), whatever the GPU models. The environment names the chosen devices by UUID, so CUDA's own
numbering (FASTEST_FIRST or PCI_BUS_ID) cannot change which GPUs a process gets; CUDA_DEVICE_ORDER=PCI_BUS_ID is
set too, so that any ordinal inside the process follows nvidia-smi's order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from envdoctor.errors import UsageError
from envdoctor.facts import GpuFacts, MigDevice

ALLOCATORS = ("cuda_malloc_async",)  # the only value TF_GPU_ALLOCATOR accepts besides the default BFC
MEMORY_LIMIT_VAR = "ENVDOCTOR_TF_MEMORY_LIMIT_MB"  # read by envdoctor.configure_tensorflow(), not by TensorFlow
# `none`: an invalid first entry hides every GPU (CUDA ignores it and all after it). Unlike an empty value it
# survives every shell (PowerShell before 7.5 deletes a variable set to ''), and the doctor reads it as intended.
HIDE_ALL = "-1"
# Bounds on what a SPEC may hold, so that garbage is a usage error and never a huge number or message: a list of
# every MIG device of a 16-GPU node by full UUID stays well under MAX_SPEC_CHARS; no entry, UUID or number is
# longer than MAX_ENTRY_CHARS; no machine has a GPU count or index of more than MAX_DIGITS digits.
MAX_SPEC_CHARS = 8192
MAX_ENTRY_CHARS = 64
MAX_DIGITS = 6
MAX_MEMORY_LIMIT_MB = 1 << 30  # 1 PiB: far above any GPU, and its bytes still fit TensorFlow's int64


@dataclass
class Chosen:
    gpu: GpuFacts
    mig: MigDevice | None = None

    @property
    def uuid(self) -> str:
        return self.mig.uuid if self.mig else self.gpu.uuid

    @property
    def label(self) -> str:
        return f"{self.gpu.index}:{self.mig.index}" if self.mig else str(self.gpu.index)


@dataclass
class Selection:
    spec: str
    devices: list[Chosen] = field(default_factory=list)
    all_gpus: bool = False  # `all`: every usable device (possibly none)
    auto: int | None = None  # N of auto:N (devices are chosen later, under the lock)

    @property
    def uuids(self) -> list[str]:
        return [d.uuid for d in self.devices]


def usable_devices(gpus: list[GpuFacts]) -> list[Chosen]:
    """Every device that can run CUDA work: whole GPUs, and the MIG devices of MIG-enabled GPUs."""
    out: list[Chosen] = []
    for g in sorted(gpus, key=lambda g: g.index):
        out += [Chosen(g, m) for m in g.mig_devices] if g.mig_enabled else [Chosen(g)]
    return out


def parse_spec(spec: str, gpus: list[GpuFacts], no_gpu_reason: str | None = None) -> Selection:
    """Check a SPEC against the machine's GPUs; a bad SPEC raises UsageError (one line).

    no_gpu_reason: why the GPU list is empty (NVML's error), added to the errors that a missing GPU causes."""
    if len(spec or "") > MAX_SPEC_CHARS:
        raise UsageError(f"GPU SPEC {_short(spec)} is {len(spec)} characters long: at most {MAX_SPEC_CHARS}")
    text = (spec or "").strip()
    why = f" ({no_gpu_reason})" if no_gpu_reason and not gpus else ""
    if text == "none":
        return Selection(text)
    if text == "all":
        return Selection(text, usable_devices(gpus), all_gpus=True)
    if text.startswith("auto:") or text == "auto":
        return Selection(text, auto=_auto_count(text, gpus, why))
    if not text:
        raise UsageError("empty GPU SPEC: give all, none, auto:N, indices (0,2) or UUIDs")
    if not usable_devices(gpus):
        raise UsageError(f"GPU SPEC {_short(text)} on a machine with no usable NVIDIA GPU{why}: use 'none' or 'all'")
    chosen: list[Chosen] = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            raise UsageError(f"GPU SPEC {_short(text)} has an empty entry: remove the extra comma")
        if len(entry) > MAX_ENTRY_CHARS:
            raise UsageError(f"bad GPU {_short(entry)}: {len(entry)} characters, longer than any index or UUID")
        device = _entry(entry, gpus)
        if any(c.uuid == device.uuid for c in chosen):
            raise UsageError(f"GPU {entry!r} is named twice in {_short(text)}")
        chosen.append(device)
    return Selection(text, chosen)


def _short(text: str, keep: int = 40) -> str:
    """repr of text, cut in the middle when long: error messages stay one short line."""
    return repr(text) if len(text) <= keep else f"{text[: keep // 2]!r}…{text[-keep // 2 :]!r}"


def _auto_count(text: str, gpus: list[GpuFacts], why: str = "") -> int:
    m = re.fullmatch(r"auto:([1-9][0-9]*)", text)  # ASCII digits only: int() would also read '١' or '²'
    if not m:
        raise UsageError(f"bad {_short(text)}: write auto:N with N >= 1")
    digits = m.group(1)
    n = int(digits) if len(digits) <= MAX_DIGITS else None  # None: more GPUs than any machine has
    whole = [g for g in gpus if not g.mig_enabled]
    if n is None or n > len(whole):
        text = text if n is not None else f"auto:{digits[:MAX_DIGITS]}… ({len(digits)} digits)"
        mig = [str(g.index) for g in gpus if g.mig_enabled]
        if mig:
            why = f"; auto skips MIG-enabled GPU(s) {', '.join(mig)}: name a MIG device (G:M or MIG- UUID)"
        raise UsageError(f"{text}: this machine has {len(whole)} GPU(s) that auto can choose from{why}")
    return n


def free_memory(gpu: GpuFacts) -> int:
    if gpu.memory_free_bytes is not None:
        return gpu.memory_free_bytes
    if gpu.memory_total_bytes is not None:
        return gpu.memory_total_bytes - (gpu.memory_used_bytes or 0)
    return 0


def auto_candidates(gpus: list[GpuFacts], taken: set[str] | frozenset[str] = frozenset()) -> list[GpuFacts]:
    """The GPUs auto:N may pick, best first: whole GPUs with no compute process and no recent pick (`taken`),
    most free memory first, ties broken by utilization.

    MIG devices are never picked: processes are recorded per GPU, not per MIG device, so which MIG device is free
    is unknown; and a CUDA process uses only one MIG device anyway (name it by G:M or MIG- UUID)."""
    free = [g for g in gpus if not g.mig_enabled and not g.processes and g.uuid not in taken]
    return sorted(free, key=lambda g: (-free_memory(g), g.utilization_gpu or 0, g.index))


def _entry(entry: str, gpus: list[GpuFacts]) -> Chosen:
    by_index = {g.index: g for g in gpus}
    if re.fullmatch(r"[0-9]+", entry):
        gpu = by_index.get(int(entry))
        if gpu is None:
            raise UsageError(f"GPU index {entry} is out of range: nvidia-smi lists {_indices(gpus)}")
        if gpu.mig_enabled:
            raise UsageError(
                f"GPU {entry} has MIG enabled: name one of its MIG devices ({entry}:0 or a MIG- UUID)"
                if gpu.mig_devices
                else f"GPU {entry} has MIG enabled but no MIG devices: it cannot run CUDA work"
            )
        return Chosen(gpu)
    if m := re.fullmatch(r"([0-9]+):([0-9]+)", entry):
        gpu = by_index.get(int(m.group(1)))
        if gpu is None:
            raise UsageError(f"GPU index {m.group(1)} is out of range: nvidia-smi lists {_indices(gpus)}")
        if not gpu.mig_enabled:
            raise UsageError(f"{entry}: GPU {gpu.index} ({gpu.name}) does not have MIG enabled")
        mig = next((d for d in gpu.mig_devices if d.index == int(m.group(2))), None)
        if mig is None:
            raise UsageError(f"{entry}: GPU {gpu.index} has no MIG device {m.group(2)}")
        return Chosen(gpu, mig)
    return _by_uuid(entry, gpus)


_KEYWORDS = ("all", "none", "auto")


def _not_uuid_like(entry: str) -> str | None:
    """Why an entry that is neither an index nor G:M cannot be a UUID prefix; None if it may be one."""
    low = entry.lower()
    if low in _KEYWORDS or low.startswith("auto:"):
        if entry != low:
            return f"bad GPU SPEC {entry!r}: write {low!r} (SPEC keywords are lowercase)"
        return f"bad GPU {entry!r}: all, none and auto:N stand alone, not in a list"
    if re.fullmatch(r"-[0-9]+", entry):
        return f"bad GPU {entry!r}: to hide every GPU write none"
    if re.fullmatch(r"\+[0-9]+", entry):
        return f"bad GPU {entry!r}: write the nvidia-smi index without a sign ({entry[1:]})"
    if re.search(r"\s", entry):
        return f"bad GPU {entry!r}: separate GPUs with commas ({','.join(entry.split())})"
    if not low.startswith(("gpu-", "mig-")):
        return f"bad GPU {entry!r}: expected an index, G:M, a GPU-/MIG- UUID, all, none or auto:N"
    if len(low) == 4:
        return f"bad GPU {entry!r}: give at least the first characters of a UUID after the prefix"
    return None


def _by_uuid(entry: str, gpus: list[GpuFacts]) -> Chosen:
    if why := _not_uuid_like(entry):
        raise UsageError(why)
    prefix = entry.lower()
    if prefix.startswith("mig-"):
        found = [Chosen(g, m) for g in gpus for m in g.mig_devices if m.uuid.lower().startswith(prefix)]
        if not found and any(g.uuid.lower().startswith("gpu-" + prefix[4:]) for g in gpus):
            raise UsageError(f"{entry!r}: that GPU has no MIG devices (is MIG enabled?)")
    else:
        found = [Chosen(g) for g in gpus if g.uuid.lower().startswith(prefix)]
    if not found:
        raise UsageError(f"no GPU has a UUID starting with {entry!r} (see `envdoctor gpus`)")
    if len(found) > 1:
        raise UsageError(f"{entry!r} is ambiguous: it starts {len(found)} UUIDs; give more characters")
    chosen = found[0]
    if chosen.mig is None and chosen.gpu.mig_enabled:
        raise UsageError(f"{entry!r} has MIG enabled: name one of its MIG devices (MIG- UUID) instead")
    return chosen


def _indices(gpus: list[GpuFacts]) -> str:
    return ", ".join(str(g.index) for g in sorted(gpus, key=lambda g: g.index)) or "none"


def build_environment(
    devices: list[Chosen] | None,
    allow_growth: bool = True,
    memory_limit_mb: int | None = None,
    allocator: str | None = None,
) -> dict[str, str]:
    """The variables for a chosen device list (None: leave CUDA_VISIBLE_DEVICES alone)."""
    check_options(memory_limit_mb, allocator)
    check_memory_limit(devices or [], memory_limit_mb)
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(d.uuid for d in devices) or HIDE_ALL
    if allow_growth:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"  # TF accepts exactly "true"/"false"
    if memory_limit_mb is not None:
        env[MEMORY_LIMIT_VAR] = str(memory_limit_mb)
    if allocator:
        env["TF_GPU_ALLOCATOR"] = allocator
    return env


def mig_note(env: dict[str, str]) -> str | None:
    """A stderr note when the environment names several MIG devices, of which CUDA enumerates only one.

    NVIDIA's MIG user guide: with CUDA 11/R450 and CUDA 12/R525 a process enumerates a single MIG device,
    however many are visible; the others are idle for that process (`all` on a MIG machine selects them all).
    """
    migs = [e for e in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if e.startswith("MIG-")]
    if len(migs) < 2:
        return None
    return (
        f"envdoctor: note: {len(migs)} MIG devices selected, but a CUDA process uses only one of them "
        "(start one process per MIG device)"
    )


def _total_mb(device: Chosen) -> int | None:
    total = device.mig.memory_total_bytes if device.mig else device.gpu.memory_total_bytes
    return total // 2**20 if total else None  # TensorFlow's memory_limit counts MiB


def check_memory_limit(devices: list[Chosen], memory_limit_mb: int | None) -> None:
    """Refuse a cap above the smallest chosen device's memory: no GPU can honour it, so it is a typo."""
    if memory_limit_mb is None:
        return
    sized = [(total, d) for d in devices if (total := _total_mb(d)) is not None]
    if sized:
        total, device = min(sized, key=lambda t: t[0])
        if memory_limit_mb > total:
            raise UsageError(
                f"--memory-limit {memory_limit_mb} MB is more than GPU {device.label} has ({total} MB in total)"
            )


def memory_limit_note(env: dict[str, str]) -> str | None:
    """A stderr note: the cap is applied by configure_tensorflow() in the program, not by TensorFlow itself."""
    if MEMORY_LIMIT_VAR not in env:
        return None
    return (
        f"envdoctor: note: --memory-limit takes effect only where the program calls "
        f"envdoctor.configure_tensorflow() ({MEMORY_LIMIT_VAR}; TensorFlow has no variable for a cap)"
    )


def check_options(memory_limit_mb: int | None, allocator: str | None) -> None:
    if memory_limit_mb is not None and memory_limit_mb <= 0:
        raise UsageError(f"--memory-limit must be a positive number of MB, not {_short(str(memory_limit_mb))}")
    if memory_limit_mb is not None and memory_limit_mb > MAX_MEMORY_LIMIT_MB:
        raise UsageError(
            f"--memory-limit {_short(str(memory_limit_mb))} MB is more than any GPU has (at most {MAX_MEMORY_LIMIT_MB})"
        )
    if allocator is not None and allocator not in ALLOCATORS:
        raise UsageError(f"unknown allocator {allocator!r}: TensorFlow accepts {', '.join(ALLOCATORS)}")


def fixed_devices(selection: Selection) -> list[Chosen] | None:
    """The devices of a SPEC other than auto:N; None leaves CUDA_VISIBLE_DEVICES alone.

    `all` on a machine without a usable GPU is all of none: hiding nothing is the honest rendering.
    """
    return None if selection.all_gpus and not selection.devices else selection.devices


def environment_for(
    spec: str,
    gpus: list[GpuFacts],
    allow_growth: bool = True,
    memory_limit_mb: int | None = None,
    allocator: str | None = None,
    read_gpus: Callable[[], list[GpuFacts]] | None = None,
    no_gpu_reason: str | None = None,
    read_at: float | None = None,
) -> dict[str, str]:
    """The environment that gives a process the GPUs of SPEC. UsageError if bad.

    auto:N picks from gpus as read at read_at (a time.time() taken just before the read), else from a fresh
    read_gpus() (default: gpus), honouring the other pickers' claims (see envdoctor.gpus.lock).
    """
    check_options(memory_limit_mb, allocator)
    selection = parse_spec(spec, gpus, no_gpu_reason)
    if selection.auto is None:
        devices = fixed_devices(selection)
    else:
        from envdoctor.gpus.lock import pick_auto, pick_from

        # The cap is checked against the GPUs picked before the pick is recorded: a refused `env` reserves nothing.
        def check(chosen: list[Chosen]) -> None:
            check_memory_limit(chosen, memory_limit_mb)

        if read_at is not None:
            devices = pick_from(selection.auto, gpus, read_at, check=check)
        else:
            devices = pick_auto(selection.auto, read_gpus or (lambda: gpus), check=check)
    return build_environment(devices, allow_growth, memory_limit_mb, allocator)
