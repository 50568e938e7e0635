"""build-tf CPU targets: flags per --cpu choice, and the compile probe run for real with gcc and clang.

CPUs come from real /proc/cpuinfo files (tests/fixtures/cpuinfo/, origins in its README.md).
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest

from envdoctor.buildtf import flags
from envdoctor.errors import UsageError
from envdoctor.facts import CpuFacts
from envdoctor.probes.cpu import cpu_facts_from_cpuinfo

CPUINFO = Path(__file__).parent / "fixtures" / "cpuinfo"
GCC = shutil.which("gcc")
CLANG = shutil.which("clang")
HOST_X86 = platform.machine() in ("x86_64", "AMD64")
needs_x86 = pytest.mark.skipif(not HOST_X86, reason="x86 flags are probed with the host compiler")


def cpu(name: str) -> CpuFacts:
    arch = "aarch64" if name.startswith("arm64") else "x86_64"
    return cpu_facts_from_cpuinfo((CPUINFO / f"{name}.txt").read_text(), arch)


NO_AVX = "x86-pentium-g640-no-avx"
ZEN3 = "x86-ryzen9-5950x-zen3"
SKYLAKE = "x86-xeon-gold-6132-skylake-avx512"
SPR = "x86-xeon-platinum-8480-sapphirerapids"
GRAVITON = "arm64-graviton3-neoverse-v1"
COMPILERS = [pytest.param(c, id=Path(c).name) for c in (GCC, CLANG) if c]


def test_detected_without_avx_turns_avx_off_last() -> None:
    target = flags.target_for("detected", cpu(NO_AVX))
    assert "-msse4.2" in target.flags and "-mavx" not in target.flags
    # The stock configs add -mavx; the explicit -mno-avx comes after every enabling flag, so it wins.
    assert target.flags[-3:] == ["-mno-avx", "-mno-avx2", "-mno-avx512f"]


def test_detected_graviton_names_each_extension() -> None:
    target = flags.target_for("detected", cpu(GRAVITON))
    assert target.flags == ["-march=armv8.2-a+dotprod+fp16+sve+bf16+i8mm"]


def test_levels_and_march_names() -> None:
    assert flags.target_for("x86-64-v3", cpu(ZEN3)).flags == ["-march=x86-64-v3", "-mtune=generic"]
    assert flags.target_for("v4", cpu(SKYLAKE)).mode == "x86-64-v4"
    assert flags.target_for("native", cpu(GRAVITON)).flags == ["-mcpu=native"]
    assert flags.target_for("neoverse-v1", cpu(GRAVITON)).flags == ["-mcpu=neoverse-v1"]
    assert flags.target_for("znver3", cpu(ZEN3)).flags == ["-march=znver3"]


@pytest.mark.parametrize("spec", ["-mfoo", "x86-64 -mavx", "", "a;b"])
def test_bad_spec_refused(spec: str) -> None:
    with pytest.raises(UsageError):
        flags.target_for(spec, cpu(ZEN3))


def test_level_on_arm_and_unknown_features_refused() -> None:
    with pytest.raises(UsageError, match="x86-64 only"):
        flags.target_for("x86-64-v3", cpu(GRAVITON))
    with pytest.raises(UsageError, match="unknown"):
        flags.target_for("detected", CpuFacts(arch="x86_64"))


def test_parse_macros() -> None:
    macros = flags.parse_macros("#define __AVX2__ 1\n#define __FMA__ 1\n#define EMPTY\nnoise\n")
    assert macros == {"__AVX2__": "1", "__FMA__": "1", "EMPTY": ""}


EXPECTED_GUARD = {
    NO_AVX: ["SSE3", "SSE4.1", "SSE4.2"],
    ZEN3: ["SSE3", "SSE4.1", "SSE4.2", "AVX", "AVX2", "FMA"],
    SKYLAKE: ["SSE3", "SSE4.1", "SSE4.2", "AVX", "AVX2", "FMA", "AVX512F"],
}


@needs_x86
@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("name", list(EXPECTED_GUARD))
def test_probe_detected_for_real(compiler: str, name: str) -> None:
    facts = cpu(name)
    result = flags.probe_flags(compiler, flags.target_for("detected", facts), facts)
    assert result.guard_names == EXPECTED_GUARD[name]
    if name == NO_AVX:
        assert "__AVX__" not in result.macros and "__SSE4_2__" in result.macros


@needs_x86
@pytest.mark.parametrize("compiler", COMPILERS)
def test_probe_sapphire_rapids_amx_and_fp16(compiler: str) -> None:
    facts = cpu(SPR)
    result = flags.probe_flags(compiler, flags.target_for("detected", facts), facts)
    assert {"AVX512_FP16", "AVX512_BF16", "AVX_VNNI", "AMX_TILE", "AMX_INT8", "AMX_BF16"} <= set(result.guard_names)


EXTRAS = {  # cpuinfo name -> flag; not named by cpu_feature_guard, but real instructions the CPU reports
    "aes": "-maes",
    "pclmulqdq": "-mpclmul",
    "sha_ni": "-msha",
    "gfni": "-mgfni",
    "vaes": "-mvaes",
    "vpclmulqdq": "-mvpclmulqdq",
    "avx512ifma": "-mavx512ifma",
    "avx512vbmi": "-mavx512vbmi",
    "avx512_vbmi2": "-mavx512vbmi2",
    "avx512_bitalg": "-mavx512bitalg",
    "avx512_vpopcntdq": "-mavx512vpopcntdq",
}


@needs_x86
@pytest.mark.parametrize("compiler", COMPILERS)
def test_detected_passes_crypto_and_newer_avx512_each_proven_by_its_macro(compiler: str) -> None:
    facts = cpu(SPR)
    target = flags.target_for("detected", facts)
    assert set(EXTRAS.values()) <= set(target.flags)
    result = flags.probe_flags(compiler, target, facts)  # raises when a flag's macro is not defined
    assert set(EXTRAS) <= set(result.enabled)
    assert {"__SHA__", "__GFNI__", "__AVX512VBMI2__", "__AVX512VPOPCNTDQ__"} <= set(result.macros)
    zen3 = flags.target_for("detected", cpu(ZEN3))  # AES/SHA/VAES without AVX-512: none of the AVX-512 ones
    assert {"-maes", "-msha", "-mvaes", "-mvpclmulqdq"} <= set(zen3.flags) and "-mavx512ifma" not in zen3.flags


@needs_x86
@pytest.mark.parametrize("compiler", COMPILERS)
def test_probe_level_the_cpu_lacks_is_refused(compiler: str) -> None:
    with pytest.raises(UsageError, match="lacks") as err:
        flags.probe_flags(compiler, flags.target_for("x86-64-v3", cpu(NO_AVX)), cpu(NO_AVX))
    assert "AVX" in str(err.value)
    with pytest.raises(UsageError, match="AVX512F") as err:
        flags.probe_flags(compiler, flags.target_for("skylake-avx512", cpu(ZEN3)), cpu(ZEN3))
    # One spelling for every instruction set, and the flags the user can see in the plan.
    assert "AVX512CD" in str(err.value) and "avx512cd" not in str(err.value)
    assert str(err.value).startswith("-march=skylake-avx512 enables")


@needs_x86
@pytest.mark.parametrize("compiler", COMPILERS)
def test_probe_unknown_march_is_refused(compiler: str) -> None:
    with pytest.raises(UsageError, match="refuses"):
        flags.probe_flags(compiler, flags.target_for("pentium-of-the-future", cpu(ZEN3)), cpu(ZEN3))


@needs_x86
@pytest.mark.parametrize("compiler", COMPILERS)
def test_probe_march_name_within_the_cpu(compiler: str) -> None:
    result = flags.probe_flags(compiler, flags.target_for("haswell", cpu(ZEN3)), cpu(ZEN3))
    assert {"AVX2", "FMA"} <= set(result.guard_names) and "AVX512F" not in result.guard_names


@needs_x86
@pytest.mark.parametrize("compiler", COMPILERS)
def test_probe_native_on_this_machine(compiler: str) -> None:
    here = cpu_facts_from_cpuinfo(Path("/proc/cpuinfo").read_text(), "x86_64")
    result = flags.probe_flags(compiler, flags.target_for("native", here), here)
    assert "__SSE2__" in result.macros
    assert ("AVX2" in result.guard_names) == ("avx2" in here.flags)


@pytest.mark.skipif(CLANG is None, reason="clang cross-checks aarch64 flags with --target")
def test_probe_graviton_with_clang_target() -> None:
    facts = cpu(GRAVITON)
    result = flags.probe_flags(CLANG, flags.target_for("detected", facts), facts, host_arch="x86_64")
    assert set(result.enabled) == {"asimddp", "asimdhp", "sve", "bf16", "i8mm"}
    assert result.guard_names == []  # TensorFlow's guard message lists x86 instructions only


@pytest.mark.skipif(GCC is None, reason="gcc")
def test_cross_arch_needs_clang_and_native_needs_the_machine() -> None:
    facts = cpu(GRAVITON)
    with pytest.raises(UsageError, match="needs clang"):
        flags.probe_flags(GCC, flags.target_for("detected", facts), facts, host_arch="x86_64")
    with pytest.raises(UsageError, match="target machine"):
        flags.probe_flags(GCC, flags.target_for("native", facts), facts, host_arch="x86_64")


def test_find_compiler_skips_broken_candidates(tmp_path: Path) -> None:
    broken = tmp_path / "clang-broken"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    real = [c for c in (CLANG, GCC) if c]
    found = flags.find_compiler([str(broken), str(tmp_path / "absent"), *real])
    assert found == (real[0] if real else None)
