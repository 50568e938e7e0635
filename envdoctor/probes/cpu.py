"""CPU facts from /proc/cpuinfo: vendor, model, topology, DL instruction sets, psABI level, peak estimate.

The feature, psABI-level and FLOPs-per-cycle tables live in recipes/cpu_features.json.
"""

from __future__ import annotations

import re
from typing import Any

from envdoctor.facts import CpuFacts, Facts
from envdoctor.probes import ProbeContext
from envdoctor.resources import load_recipe

_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
_X86 = {"x86_64", "i386", "i486", "i586", "i686", "x86"}


def probe(ctx: ProbeContext, facts: Facts) -> None:
    text = ctx.read_text("/proc/cpuinfo")
    arch = facts.system.arch or (arch_from_cpuinfo(text) if text else None)
    if text is None:
        facts.cpu = CpuFacts(arch=arch)
        return
    facts.cpu = cpu_facts_from_cpuinfo(text, arch or "", _sysfs_max_mhz(ctx))


def _sysfs_max_mhz(ctx: ProbeContext) -> float | None:
    # cpuinfo_max_freq is in kHz; "cpu MHz" in cpuinfo is only the current clock (800 MHz on an idle laptop).
    raw = ctx.read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", limit=64)
    khz = _number(raw)
    return khz / 1000 if khz else None


def arch_from_cpuinfo(text: str) -> str | None:
    """Guess the architecture of a cpuinfo file (used under --root, where platform.machine() is the host's)."""
    blocks = _blocks(text)
    if any("cpu implementer" in b or "features" in b for b in blocks):
        return "aarch64"
    flags = next((b["flags"].split() for b in blocks if "flags" in b), None)
    if flags is None:
        return None
    return "x86_64" if "lm" in flags else "i686"


def cpu_facts_from_cpuinfo(text: str, arch: str, max_mhz: float | None = None) -> CpuFacts:
    """Parse /proc/cpuinfo text (x86 or aarch64). Never raises; what cannot be read stays None."""
    arch = _ARCH_ALIASES.get(arch.lower(), arch.lower()) if arch else (arch_from_cpuinfo(text) or "")
    recipe = load_recipe("cpu_features.json")
    blocks = _blocks(text)
    cpus = [b for b in blocks if b.get("processor", "").strip().isdigit()] or blocks[:1]
    first = cpus[0] if cpus else {}
    flags = _common_flags(cpus, "features" if arch == "aarch64" else "flags")
    flag_set = set(flags)
    table = recipe["features_aarch64"] if arch == "aarch64" else recipe["features_x86"]
    facts = CpuFacts(
        arch=arch or None,
        flags=flags,
        features=[name for name, flag in table.items() if flag in flag_set],
    )
    facts.max_mhz, clock = _clock(max_mhz, first, cpus)
    if arch == "aarch64":
        _arm_identity(facts, first, recipe)
    else:
        facts.vendor = first.get("vendor_id") or None
        facts.model = " ".join(first.get("model name", "").split()) or None
    _topology(facts, cpus)
    if arch == "x86_64":
        facts.psabi_level = psabi_level(flag_set, recipe["psabi_levels"])
    _peak(facts, first, flag_set, recipe["fp32_flops_per_cycle"], clock)
    return facts


def _clock(max_mhz: float | None, first: dict[str, str], cpus: list[dict[str, str]]) -> tuple[float | None, str]:
    """The clock for the estimate and what it is: sysfs max > the model name's nominal clock > 'cpu MHz'.

    'cpu MHz' is the clock of the moment: a power-saving one on an idle machine, a fixed one in many VMs.
    """
    if max_mhz:
        return max_mhz, "max clock"
    match = re.search(r"@\s*(\d+(?:\.\d+)?)\s*GHz", first.get("model name", ""))
    if match and float(match.group(1)) > 0:
        return float(match.group(1)) * 1000, "nominal clock from the model name"
    return _max_number(cpus, "cpu mhz"), "current 'cpu MHz', may be a power-saving clock"


def _blocks(text: str) -> list[dict[str, str]]:
    """Split cpuinfo into blocks of lower-cased 'key: value' pairs (the first colon splits)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(" ".join(key.split()).lower(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def _common_flags(cpus: list[dict[str, str]], key: str) -> list[str]:
    """Flags every listed CPU has (hybrid or odd VMs can differ per CPU), in the first CPU's order."""
    lists = [b[key].split() for b in cpus if key in b]
    if not lists:
        return []
    common = set(lists[0]).intersection(*map(set, lists[1:]))
    return list(dict.fromkeys(f for f in lists[0] if f in common))


def _arm_identity(facts: CpuFacts, first: dict[str, str], recipe: dict[str, Any]) -> None:
    implementer = _hex(first.get("cpu implementer"))
    part = _hex(first.get("cpu part"))
    unknown = f"implementer {implementer}" if implementer else None
    facts.vendor = recipe["aarch64_implementers"].get(implementer, unknown)
    part_name = recipe["aarch64_parts"].get(f"{implementer}/{part}")
    if part_name:
        facts.model = part_name
    elif implementer or part:
        facts.model = f"implementer {implementer or '?'} part {part or '?'}"


def _hex(value: str | None) -> str | None:
    """'0x41' / '0X41' / '65' -> '0x41'; anything else -> None."""
    if not value:
        return None
    try:
        return hex(int(value.strip(), 0))
    except ValueError:
        return None


def _topology(facts: CpuFacts, cpus: list[dict[str, str]]) -> None:
    """Threads, cores and sockets; a file may list CPUs non-contiguously or only some of them."""
    if not cpus:
        return
    packages: dict[str, dict[str, str]] = {}
    pairs: set[tuple[str, str]] = set()
    for cpu in cpus:
        package = cpu.get("physical id")
        if package is not None:
            packages.setdefault(package, cpu)
            if "core id" in cpu:
                pairs.add((package, cpu["core id"]))
    # Each package declares its own counts; they cover CPUs a partial listing leaves out.
    declared_cores = sum(int(_number(p.get("cpu cores")) or 0) for p in packages.values())
    declared_threads = sum(int(_number(p.get("siblings")) or 0) for p in packages.values())
    facts.threads = max(len(cpus), declared_threads)
    facts.sockets = len(packages) or None
    facts.cores = max(len(pairs), declared_cores) or None
    if facts.cores is None and facts.arch == "aarch64":
        facts.cores = facts.threads  # Arm server cores have no SMT: one logical CPU per core


def psabi_level(flags: set[str], levels: dict[str, list[str]]) -> int | None:
    """The highest x86-64 psABI level whose flags (and all lower levels' flags) are all present."""
    reached = None
    for level in sorted(levels, key=int):
        if not set(levels[level]) <= flags:
            break
        reached = int(level)
    return reached


def _peak(facts: CpuFacts, first: dict[str, str], flags: set[str], rules: list[dict[str, Any]], clock: str) -> None:
    rule = next((r for r in rules if _rule_matches(r, facts.arch, first, flags)), None)
    if rule is None or not facts.cores or not facts.max_mhz:
        return
    ghz = facts.max_mhz / 1000
    facts.peak_gflops_fp32_estimate = round(facts.cores * ghz * rule["flops"], 1)
    # In a VM the cores are those the hypervisor presents and the clock often a fixed nominal one.
    cores = "cores as the VM presents them" if "hypervisor" in flags else "physical cores"
    facts.peak_basis = (
        f"estimate: {facts.cores} {cores} × {ghz:.2f} GHz ({clock}) × {rule['flops']} FP32 FLOP/cycle "
        f"({rule['assumption']}); not a ceiling: turbo clocks can exceed it, sustained all-core vector clocks "
        "and real kernels usually reach less"
    )


def _rule_matches(rule: dict[str, Any], arch: str | None, first: dict[str, str], flags: set[str]) -> bool:
    if rule.get("arch") != arch:
        return False
    if "vendor" in rule and first.get("vendor_id") != rule["vendor"]:
        return False
    if "cpu_family" in rule and _number(first.get("cpu family")) != rule["cpu_family"]:
        return False
    if "implementer" in rule and _hex(first.get("cpu implementer")) != rule["implementer"]:
        return False
    if "part" in rule and _hex(first.get("cpu part")) != rule["part"]:
        return False
    return set(rule.get("requires", [])) <= flags


def _number(value: str | None) -> float | None:
    try:
        number = float(value.strip()) if value else None
    except ValueError:
        return None
    return number if number is not None and number == number and abs(number) != float("inf") else None


def _max_number(cpus: list[dict[str, str]], key: str) -> float | None:
    values = [n for n in (_number(c.get(key)) for c in cpus) if n and n > 0]
    return max(values) if values else None
