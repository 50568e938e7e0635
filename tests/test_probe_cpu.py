"""CPU probe on real /proc/cpuinfo files (tests/fixtures/cpuinfo/README.md says where each came from)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.facts import Facts
from envdoctor.probes import ProbeContext
from envdoctor.probes.cpu import arch_from_cpuinfo, cpu_facts_from_cpuinfo, probe

FIXTURES = Path(__file__).parent / "fixtures"
CPUINFO = FIXTURES / "cpuinfo"
H100_ROOT = FIXTURES / "h100-firecracker" / "idle" / "root"

AVX512_BASE = {"AVX512F", "AVX512BW", "AVX512VL", "AVX512DQ"}
AMX = {"AMX_TILE", "AMX_BF16", "AMX_INT8"}

# file -> (vendor, psABI level, features that must be present, features that must be absent)
EXPECTED = {
    "x86-pentium-g640-no-avx.txt": ("GenuineIntel", 2, {"SSE4_1", "SSE4_2"}, {"AVX", "AVX2", "FMA", "F16C"}),
    "x86-core-i9-10885h-x16.txt": ("GenuineIntel", 3, {"AVX", "AVX2", "FMA", "F16C"}, {"AVX512F", "AVX_VNNI"}),
    "x86-core-ultra-9-285.txt": ("GenuineIntel", 3, {"AVX2", "FMA", "AVX_VNNI"}, {"AVX512F", "AMX_TILE"}),
    "x86-ryzen9-5950x-zen3.txt": ("AuthenticAMD", 3, {"AVX2", "FMA", "F16C"}, {"AVX512F", "AVX_VNNI"}),
    "x86-xeon-gold-6132-skylake-avx512.txt": ("GenuineIntel", 4, AVX512_BASE, {"AVX512_VNNI", "AVX512_BF16"}),
    "x86-xeon-platinum-8260m-cascadelake.txt": (
        "GenuineIntel",
        4,
        AVX512_BASE | {"AVX512_VNNI"},
        {"AVX512_BF16"} | AMX,
    ),
    "x86-epyc-9654-zen4.txt": ("AuthenticAMD", 4, AVX512_BASE | {"AVX512_VNNI", "AVX512_BF16"}, {"AVX512_FP16"} | AMX),
    "x86-xeon-platinum-8480-sapphirerapids.txt": (
        "GenuineIntel",
        4,
        AVX512_BASE | {"AVX512_VNNI", "AVX512_BF16", "AVX512_FP16", "AVX_VNNI"} | AMX,
        set(),
    ),
}


def test_every_real_cpuinfo_is_covered() -> None:
    files = {p.name for p in CPUINFO.glob("*.txt")}
    assert files == set(EXPECTED) | {"arm64-graviton3-neoverse-v1.txt"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_x86_features_and_psabi_level(name: str) -> None:
    vendor, level, present, absent = EXPECTED[name]
    cpu = cpu_facts_from_cpuinfo((CPUINFO / name).read_text(), "x86_64")
    assert cpu.arch == "x86_64"
    assert cpu.vendor == vendor
    assert cpu.psabi_level == level
    assert present <= set(cpu.features), set(cpu.features)
    assert not absent & set(cpu.features)
    assert "sse2" in cpu.flags and cpu.model


def test_graviton3_neoverse_v1() -> None:
    cpu = cpu_facts_from_cpuinfo((CPUINFO / "arm64-graviton3-neoverse-v1.txt").read_text(), "aarch64", max_mhz=2600)
    assert (cpu.vendor, cpu.model) == ("ARM", "Neoverse V1")
    assert {"ASIMD", "SVE", "BF16", "I8MM"} <= set(cpu.features)
    assert "SVE2" not in cpu.features  # V1 is Armv8.4 + SVE, no SVE2
    assert cpu.psabi_level is None
    # One CPU block listed, no SMT on Arm servers: 1 core × 2.6 GHz × 32 FLOP/cycle (2×256-bit SVE FMA).
    assert (cpu.cores, cpu.threads) == (1, 1)
    assert cpu.peak_gflops_fp32_estimate == pytest.approx(83.2)
    assert "Neoverse V1" in (cpu.peak_basis or "") and cpu.peak_basis.startswith("estimate")


def test_arm64_alias_and_unknown_part() -> None:
    text = "processor\t: 0\nFeatures\t: fp asimd sve2 bf16\nCPU implementer\t: 0x61\nCPU part\t: 0x999\n"
    cpu = cpu_facts_from_cpuinfo(text, "arm64")
    assert cpu.arch == "aarch64" and cpu.vendor == "Apple"
    assert cpu.model == "implementer 0x61 part 0x999"
    assert {"ASIMD", "SVE2", "BF16"} <= set(cpu.features)


def test_topology_from_full_listing_h100_server() -> None:
    # 16 blocks, physical id 0, core ids 0..15, no SMT siblings: a 16-vCPU Firecracker VM.
    cpu = cpu_facts_from_cpuinfo((H100_ROOT / "proc" / "cpuinfo").read_text(), "x86_64")
    assert (cpu.sockets, cpu.cores, cpu.threads) == (1, 16, 16)
    assert cpu.psabi_level == 4 and set(cpu.features) >= AMX


def test_topology_counts_distinct_package_core_pairs_across_sockets() -> None:
    # Two sockets, CPUs numbered non-contiguously (0, 1, 8, 9): two cores per socket, SMT on socket 0.
    block = "processor\t: {p}\nvendor_id\t: GenuineIntel\nphysical id\t: {s}\ncore id\t\t: {c}\nflags\t\t: fpu sse\n"
    text = "\n".join(
        block.format(p=p, s=s, c=c) for p, s, c in [(0, 0, 0), (1, 0, 0), (8, 0, 1), (9, 1, 0), (12, 1, 1)]
    )
    cpu = cpu_facts_from_cpuinfo(text, "x86_64")
    assert (cpu.sockets, cpu.cores, cpu.threads) == (2, 4, 5)


def test_topology_of_partial_listing_uses_declared_counts() -> None:
    # Archspec kept one block of a 24-core/48-thread Cascade Lake; the block says so itself.
    cpu = cpu_facts_from_cpuinfo((CPUINFO / "x86-xeon-platinum-8260m-cascadelake.txt").read_text(), "x86_64")
    assert (cpu.sockets, cpu.cores, cpu.threads) == (1, 24, 48)
    laptop = cpu_facts_from_cpuinfo((CPUINFO / "x86-core-i9-10885h-x16.txt").read_text(), "x86_64")
    assert (laptop.cores, laptop.threads) == (8, 16)


@pytest.mark.parametrize(
    ("name", "mhz", "flops"),
    [
        ("x86-xeon-gold-6132-skylake-avx512.txt", 2600, 64),  # AVX-512, 2 FMA units
        ("x86-epyc-9654-zen4.txt", 2400, 32),  # Zen 4 double-pumps AVX-512
        ("x86-ryzen9-5950x-zen3.txt", 3400, 32),  # AVX2 + FMA
        ("x86-pentium-g640-no-avx.txt", 2800, 8),  # SSE only
    ],
)
def test_peak_estimate_is_cores_times_clock_times_flops(name: str, mhz: float, flops: int) -> None:
    cpu = cpu_facts_from_cpuinfo((CPUINFO / name).read_text(), "x86_64", max_mhz=mhz)
    assert cpu.max_mhz == mhz
    assert cpu.peak_gflops_fp32_estimate == pytest.approx(cpu.cores * mhz / 1000 * flops, abs=0.1)
    assert f"× {flops} FP32 FLOP/cycle" in (cpu.peak_basis or "")
    assert "max clock" in (cpu.peak_basis or "")


def test_avx_without_fma_is_16_flops_per_cycle() -> None:
    text = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu cores\t: 4\nphysical id\t: 0\ncore id\t: 0\n"
    text += "flags\t\t: fpu sse sse2 avx\ncpu MHz\t\t: 3000.000\n"
    cpu = cpu_facts_from_cpuinfo(text, "x86_64")
    assert cpu.peak_gflops_fp32_estimate == pytest.approx(4 * 3.0 * 16)
    assert "current 'cpu MHz'" in (cpu.peak_basis or "")


def test_clock_prefers_the_model_names_nominal_clock_over_cpu_mhz() -> None:
    # 'cpu MHz' says 1901/2070 (power saving); the model name says "@ 2.80GHz".
    text = (CPUINFO / "x86-pentium-g640-no-avx.txt").read_text()
    cpu = cpu_facts_from_cpuinfo(text, "x86_64")
    assert cpu.max_mhz == 2800.0 and cpu.peak_gflops_fp32_estimate == pytest.approx(2 * 2.8 * 8)
    assert "nominal clock from the model name" in (cpu.peak_basis or "")
    assert cpu_facts_from_cpuinfo(text, "x86_64", max_mhz=3000).max_mhz == 3000  # sysfs max wins


def test_clock_falls_back_to_highest_cpu_mhz() -> None:
    text = (CPUINFO / "x86-pentium-g640-no-avx.txt").read_text().replace(" @ 2.80GHz", "")
    cpu = cpu_facts_from_cpuinfo(text, "x86_64")
    assert cpu.max_mhz == pytest.approx(2070.796)
    assert "current 'cpu MHz', may be a power-saving clock" in (cpu.peak_basis or "")


def test_estimate_in_a_vm_says_so_and_is_no_ceiling() -> None:
    # The H100 server is a Firecracker VM ('hypervisor' flag): 16 vCPUs, one per core, 'cpu MHz' 2100.
    cpu = cpu_facts_from_cpuinfo((H100_ROOT / "proc" / "cpuinfo").read_text(), "x86_64")
    basis = cpu.peak_basis or ""
    assert basis.startswith("estimate: 16 cores as the VM presents them × 2.10 GHz")
    assert "ceiling" in basis and "not a ceiling" in basis and "turbo clocks can exceed it" in basis
    bare = cpu_facts_from_cpuinfo((CPUINFO / "x86-epyc-9654-zen4.txt").read_text(), "x86_64")
    assert "96 physical cores" in (bare.peak_basis or "")  # no 'hypervisor' flag: bare metal


def test_arch_from_cpuinfo() -> None:
    assert arch_from_cpuinfo((CPUINFO / "arm64-graviton3-neoverse-v1.txt").read_text()) == "aarch64"
    assert arch_from_cpuinfo((CPUINFO / "x86-epyc-9654-zen4.txt").read_text()) == "x86_64"
    assert arch_from_cpuinfo("") is None


def test_probe_reads_root_and_sysfs_max_freq(tmp_path: Path) -> None:
    shutil.copytree(H100_ROOT / "proc", tmp_path / "proc")
    freq = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    freq.parent.mkdir(parents=True)
    freq.write_text("3800000\n")  # kHz
    facts = Facts()
    probe(ProbeContext(root=tmp_path), facts)
    assert facts.cpu.max_mhz == 3800.0
    assert facts.cpu.peak_gflops_fp32_estimate == pytest.approx(16 * 3.8 * 64)


def test_probe_without_cpuinfo_leaves_facts_empty(tmp_path: Path) -> None:
    facts = Facts()
    probe(ProbeContext(root=tmp_path), facts)
    assert facts.cpu.flags == [] and facts.cpu.cores is None and facts.cpu.arch is None


def test_probe_on_this_host() -> None:
    facts = Facts()
    probe(ProbeContext(), facts)
    if Path("/proc/cpuinfo").exists():
        assert facts.cpu.threads and facts.cpu.threads >= 1 and facts.cpu.flags


# --- fuzzing: random and truncated cpuinfo never raises -------------------------------------------------

REAL_TEXTS = [p.read_text() for p in sorted(CPUINFO.glob("*.txt"))]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(REAL_TEXTS), st.floats(0, 1), st.sampled_from(["x86_64", "aarch64", "arm64", "", "ppc64le"]))
def test_truncated_real_cpuinfo_never_raises(text: str, fraction: float, arch: str) -> None:
    cpu = cpu_facts_from_cpuinfo(text[: int(len(text) * fraction)], arch)
    assert cpu.psabi_level in (None, 1, 2, 3, 4)


KEYS = [
    "processor",
    "flags",
    "Features",
    "physical id",
    "core id",
    "cpu cores",
    "siblings",
    "cpu MHz",
    "vendor_id",
    "CPU implementer",
    "CPU part",
    "cpu family",
    "model name",
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(KEYS),
            st.one_of(st.text(max_size=30), st.sampled_from(["nan", "inf", "-1", "0x41", "1e309"])),
        ),
        max_size=30,
    ),
    st.sampled_from(["x86_64", "aarch64"]),
    st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e6)),
)
def test_random_cpuinfo_never_raises(lines: list[tuple[str, str]], arch: str, mhz: float | None) -> None:
    text = "\n".join(f"{k}\t: {v}" if k else v for k, v in lines)
    cpu = cpu_facts_from_cpuinfo(text, arch, mhz)
    assert isinstance(cpu.features, list)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises(text: str) -> None:
    cpu_facts_from_cpuinfo(text, "x86_64")
    arch_from_cpuinfo(text)
