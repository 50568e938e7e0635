"""What CUDA will see: CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER applied to the GPUs NVML reports.

CUDA's rules (CUDA Programming Guide, "CUDA Environment Variables"; NVIDIA MIG user guide; nvitop's emulation),
checked against the real driver (580.159.04, H100: tests/fixtures/gpus/h100-cuda-visible.json):
- unset: every GPU is visible; set but empty: none is;
- entries are CUDA ordinals (integers, numbered under CUDA_DEVICE_ORDER; " 0", "+0", "00" and "0abc" all read
  as 0) or UUIDs written `GPU-…`/`MIG-…`, in any case, and unique prefixes of them ("GPU-7"); a bare UUID
  without the prefix, "GPU-" alone, "all" and "none" are invalid. CUDA enumerates the entries in list order;
- the first invalid entry ends the list: it and every entry after it are ignored ("0,1,0" on one GPU: GPU 0);
- a device named twice makes CUDA fail to initialise (CUDA_ERROR_INVALID_DEVICE): no GPU at all;
- integers and UUIDs do not mix: the first entry of the other kind ends the list ("0,GPU-…" keeps GPU 0 only);
- CUDA_DEVICE_ORDER other than FASTEST_FIRST or PCI_BUS_ID makes cuInit fail: no GPU at all.
The real driver accepted `MIG-<GPU UUID>` for a whole GPU: the GPU-/MIG- prefix is matched loosely, so we match
the UUID body against GPUs and MIG devices alike.

CUDA_DEVICE_ORDER: PCI_BUS_ID numbers GPUs by PCI bus id (as nvidia-smi and NVML do). FASTEST_FIRST, the
default, uses an undocumented "simple heuristic". What is observed in public reports: a higher compute capability
comes first (GTX TITAN 3.5 before GeForce 8400 GS 1.1, Theano/libgpuarray#57; GTX 1080 Ti 6.1 before GTX 745 5.0,
pytorch/pytorch#86539; GTX 780 Ti 3.5 before GTX 460 2.1, NVIDIA/nvidia-docker#262), identical GPUs keep PCI
order, but GPUs of equal compute capability and different models come in an order that neither SM count x clock
nor memory explains (GTX TITAN X before GTX 1080 Ti, nicolargo/glances#1329; GTX 750 Ti/750 interleaved,
xmrig/xmrig-nvidia#69). So we sort by compute capability (highest first), then PCI bus id, and report the order as
inexact (`VisibleResolution.order_exact`) when two different models share a compute capability.

MIG: a MIG-enabled GPU runs CUDA work only through its MIG devices. It takes one ordinal slot and exposes its
first MIG device there; without MIG devices it cannot run CUDA work and takes no slot. This is the documented
single-MIG-device-per-process behaviour; select MIG devices by their MIG- UUID to be explicit.

Plain functions over GpuFacts: no NVML, no CUDA, safe for `envdoctor check`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from envdoctor.facts import GpuFacts, MigDevice

PCI_BUS_ID = "PCI_BUS_ID"
FASTEST_FIRST = "FASTEST_FIRST"
EMPTY_PROBLEM = "CUDA_VISIBLE_DEVICES is set but empty: CUDA sees no GPU"  # the problem sentence for hidden_all


@dataclass
class VisibleDevice:
    """One device CUDA enumerates: a whole GPU, or a MIG device of it."""

    ordinal: int  # the CUDA ordinal inside the process (cuda:N, /GPU:N)
    gpu: GpuFacts
    mig: MigDevice | None = None

    @property
    def uuid(self) -> str:
        return self.mig.uuid if self.mig else self.gpu.uuid


@dataclass
class VisibleResolution:
    visible: list[GpuFacts] = field(default_factory=list)  # physical GPUs, in CUDA ordinal order
    problems: list[str] = field(default_factory=list)  # human sentences
    hidden_all: bool = False  # CUDA_VISIBLE_DEVICES set but empty
    devices: list[VisibleDevice] = field(default_factory=list)  # what CUDA enumerates, MIG devices included
    order: str = FASTEST_FIRST  # the CUDA_DEVICE_ORDER in effect
    order_exact: bool = True  # False when FASTEST_FIRST had to be approximated (mixed GPU models)

    def ordinal_of(self, gpu: GpuFacts) -> int | None:
        """The CUDA ordinal of a physical GPU (its first enumerated device), None if hidden."""
        return next((d.ordinal for d in self.devices if d.gpu.uuid == gpu.uuid), None)


def effective_order(device_order: str | None) -> tuple[str, str | None]:
    """CUDA_DEVICE_ORDER as CUDA applies it, and a problem sentence for an invalid value."""
    if device_order in (None, "", FASTEST_FIRST):
        return FASTEST_FIRST, None
    if device_order == PCI_BUS_ID:
        return PCI_BUS_ID, None
    return FASTEST_FIRST, (
        f"CUDA_DEVICE_ORDER={device_order!r} is neither FASTEST_FIRST nor PCI_BUS_ID: "
        "CUDA fails to initialise (CUDA_ERROR_INVALID_DEVICE) and no GPU is usable"
    )


def _pci_key(gpu: GpuFacts) -> tuple[int, ...]:
    # "00000000:01:00.0" and "0000:01:00.0" name the same device: compare numerically.
    parts = re.split(r"[:.]", gpu.pci_bus_id or "")
    try:
        return tuple(int(p, 16) for p in parts)
    except ValueError:
        return (1 << 62, gpu.index)


def _cc(gpu: GpuFacts) -> tuple[int, int]:
    try:
        major, _, minor = (gpu.compute_capability or "").partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        return (-1, -1)


def cuda_order(gpus: list[GpuFacts], order: str) -> tuple[list[GpuFacts], bool]:
    """Physical GPUs in CUDA enumeration order, and whether that order is certain (see module docstring)."""
    by_pci = sorted(gpus, key=_pci_key)
    if order == PCI_BUS_ID:
        return by_pci, True
    fastest = sorted(by_pci, key=lambda g: tuple(-x for x in _cc(g)))  # stable: PCI order within a capability
    models: dict[tuple[int, int], set[str]] = {}
    for g in gpus:
        models.setdefault(_cc(g), set()).add(g.name)
    exact = len(gpus) <= 1 or (all(len(n) == 1 for n in models.values()) and (-1, -1) not in models)
    return fastest, exact


def _slots(gpus: list[GpuFacts], order: str) -> tuple[list[VisibleDevice], bool]:
    """What CUDA enumerates with CUDA_VISIBLE_DEVICES unset, one entry per ordinal."""
    ordered, exact = cuda_order(gpus, order)
    slots: list[VisibleDevice] = []
    for gpu in ordered:
        if gpu.mig_enabled:
            if gpu.mig_devices:  # the first MIG device stands for the GPU
                slots.append(VisibleDevice(len(slots), gpu, gpu.mig_devices[0]))
        else:
            slots.append(VisibleDevice(len(slots), gpu))
    return slots, exact


def _mig_problems(gpus: list[GpuFacts]) -> list[str]:
    # A MIG list NVML could not read (mig_devices_error) is unknown, not empty: no claim about it here.
    return [
        f"GPU {g.index} ({g.name}) has MIG enabled but no MIG devices: it cannot run CUDA work"
        for g in gpus
        if g.mig_enabled and not g.mig_devices and not g.mig_devices_error
    ]


_MIG_LEGACY = re.compile(r"^MIG-GPU-[0-9a-fA-F-]+/\d+/\d+$")


def _body(uuid: str) -> str:
    return uuid[4:].lower() if uuid[:4].upper() in ("GPU-", "MIG-") else uuid.lower()


def _match_uuid(entry: str, gpus: list[GpuFacts]) -> list[VisibleDevice]:
    """GPUs and MIG devices whose UUID body starts with the entry's (case-insensitive; GPU-/MIG- alike)."""
    body = _body(entry)
    found = [VisibleDevice(0, g) for g in gpus if _body(g.uuid).startswith(body)]
    found += [VisibleDevice(0, g, m) for g in gpus for m in g.mig_devices if _body(m.uuid).startswith(body)]
    return found


def _shown(text: str, keep: int = 60) -> str:
    """text cut in the middle when long: a problem stays one readable line whatever the variable holds."""
    return text if len(text) <= keep else f"{text[: keep // 2]}…{text[-keep // 2 :]}"


def _leading_int(entry: str) -> int | None:
    """The number CUDA reads at the start of an entry (strtol: ASCII digits, an optional sign), else None.
    Beyond 18 digits it is clamped, as strtol saturates: either way it names no device."""
    m = re.match(r"^([+-]?)([0-9]+)", entry)
    if not m:
        return None
    number = int(m.group(2)) if len(m.group(2)) <= 18 else 2**63 - 1
    return -number if m.group(1) == "-" else number


def _resolve_entry(
    entry: str, kind: str | None, gpus: list[GpuFacts], slots: list[VisibleDevice]
) -> tuple[VisibleDevice | None, str, str | None]:
    """One CUDA_VISIBLE_DEVICES entry → (device or None, entry kind, why invalid)."""
    number = _leading_int(entry)
    this_kind = "int" if number is not None else "uuid"
    if kind and this_kind != kind:
        return None, this_kind, "mixes CUDA ordinals and UUIDs"
    if number is not None:
        if number < 0 or number >= len(slots):
            return None, this_kind, f"names no GPU (CUDA sees {len(slots)} here)"
        return slots[number], this_kind, None
    if _MIG_LEGACY.match(entry):
        return None, this_kind, "uses the old MIG-GPU-<uuid>/<GI>/<CI> form, which envdoctor cannot map"
    if entry[:4].upper() not in ("GPU-", "MIG-") or len(entry) == 4:
        return None, this_kind, "is neither a number nor a GPU-/MIG- UUID"
    found = _match_uuid(entry, gpus)
    if not found:
        return None, this_kind, "matches no GPU or MIG device UUID"
    if len(found) > 1:
        return None, this_kind, f"is a prefix of {len(found)} UUIDs"
    dev = found[0]
    if dev.mig is None and dev.gpu.mig_enabled:
        if not dev.gpu.mig_devices:
            return None, this_kind, "names a MIG-enabled GPU without MIG devices"
        dev = VisibleDevice(0, dev.gpu, dev.gpu.mig_devices[0])
    return dev, this_kind, None


def resolve_visible_devices(value: str | None, gpus: list[GpuFacts], device_order: str | None) -> VisibleResolution:
    """Apply CUDA_VISIBLE_DEVICES=value (None: unset) and CUDA_DEVICE_ORDER to the GPUs NVML lists."""
    order, order_problem = effective_order(device_order)
    slots, exact = _slots(gpus, order)
    res = VisibleResolution(order=order, order_exact=exact)
    res.problems += _mig_problems(gpus)
    res.hidden_all = value is not None and not value.strip()
    if order_problem:
        res.problems.append(order_problem)
        res.devices = []
    elif value is None:
        res.devices = slots
    elif res.hidden_all:
        res.problems.append(EMPTY_PROBLEM)
    elif _apply_list(value, gpus, slots, res) == "uuid":
        res.order_exact = True  # UUIDs are enumerated in list order: CUDA_DEVICE_ORDER plays no part
    res.visible = _unique_gpus(res.devices)
    if sum(1 for d in res.devices if d.mig) > 1:
        res.problems.append(
            "several MIG devices are visible: CUDA may enumerate only the first MIG device in a process"
        )
    return res


def _apply_list(value: str, gpus: list[GpuFacts], slots: list[VisibleDevice], res: VisibleResolution) -> str | None:
    """Fill res.devices from a set CUDA_VISIBLE_DEVICES; returns the kind of its entries (int | uuid)."""
    entries = [e.strip() for e in value.split(",")]
    kind: str | None = None
    chosen: list[VisibleDevice] = []
    for pos, entry in enumerate(entries):
        dev, kind_now, why = _resolve_entry(entry, kind, gpus, slots)
        if dev is None:
            rest = entries[pos + 1 :]
            if entry or any(rest):  # a trailing comma drops nothing
                after = f" and every entry after it ({_shown(', '.join(rest))})" if rest else ""
                res.problems.append(f"entry '{_shown(entry)}' {why}: CUDA ignores it{after}")
            break
        kind = kind or kind_now
        if any(c.uuid == dev.uuid for c in chosen):
            res.problems.append(f"entry '{_shown(entry)}' repeats a device: a duplicate makes CUDA see no GPU at all")
            res.devices = []
            return kind
        if kind_now == "int" and entry != str(_leading_int(entry)):
            res.problems.append(f"entry '{_shown(entry)}' is read as {_leading_int(entry)}")
        chosen.append(VisibleDevice(len(chosen), dev.gpu, dev.mig))
    res.devices = chosen
    return kind


def _unique_gpus(devices: list[VisibleDevice]) -> list[GpuFacts]:
    seen: dict[str, GpuFacts] = {}
    for d in devices:
        seen.setdefault(d.gpu.uuid, d.gpu)
    return list(seen.values())
