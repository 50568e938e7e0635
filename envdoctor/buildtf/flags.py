"""CPU target -> compiler flags, and the compile probe that proves the local compiler agrees.

The flags come from the instruction-set table in recipes/tf_build.json ("isa"). The probe compiles a
small file with the flags and reads the predefined macros (`-dM -E`): a flag the compiler does not know,
or a macro the target CPU cannot honour, is refused before anything is written.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from envdoctor.buildtf.safety import one_line, shown
from envdoctor.errors import UsageError
from envdoctor.facts import CpuFacts
from envdoctor.resources import load_recipe
from envdoctor.runner import CommandResult, run_command

DETECTED = "the instruction sets /proc/cpuinfo lists"
PSABI_LEVELS = ("x86-64-v2", "x86-64-v3", "x86-64-v4")
_PROBE_SOURCE = "int envdoctor_probe(int x) { return x * 3 + 1; }\n"
# Whole string, ASCII: the name lands in a bazelrc line and in build.sh's header comment.
_MARCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", re.ASCII)


@dataclass
class CpuTarget:
    mode: str  # native | detected | x86-64-vN | march
    arch: str  # x86_64 | aarch64
    flags: list[str]  # compiler flags for --copt/--host_copt
    expected: list[str] = field(default_factory=list)  # cpuinfo feature keys the flags must switch on
    description: str = ""


@dataclass
class ProbeResult:
    compiler: str
    compiler_version: str
    macros: dict[str, str]
    enabled: list[str]  # cpuinfo feature keys whose macro is defined
    guard_names: list[str]  # names TF's cpu_feature_guard would no longer print
    notes: list[str] = field(default_factory=list)


def isa_table(arch: str) -> dict[str, dict[str, Any]]:
    table = load_recipe("tf_build.json")["isa"]
    return {k: v for k, v in table.get(arch, {}).items() if not k.startswith("_")}


def normalize_arch(arch: str | None) -> str:
    arch = (arch or platform.machine() or "x86_64").lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def cpu_flag_set(cpu: CpuFacts) -> set[str]:
    return {f.lower() for f in cpu.flags}


def target_for(spec: str, cpu: CpuFacts) -> CpuTarget:
    """Turn --cpu SPEC into flags for the target CPU described by `cpu`."""
    arch = normalize_arch(cpu.arch)
    if arch not in ("x86_64", "aarch64"):
        raise UsageError(f"--cpu: architecture {shown(arch)} is not supported (x86_64 and aarch64 are)")
    have = cpu_flag_set(cpu)
    if spec == "native":
        flag = "-march=native" if arch == "x86_64" else "-mcpu=native"
        expected = [k for k in isa_table(arch) if k in have]
        return CpuTarget("native", arch, [flag], expected, "every instruction set of the build machine")
    if spec == "detected":
        return _detected(arch, have)
    if spec in PSABI_LEVELS or spec in ("v2", "v3", "v4"):
        level = spec if spec.startswith("x86-64") else f"x86-64-{spec}"
        if arch != "x86_64":
            raise UsageError(f"--cpu {spec}: psABI levels are x86-64 only; this target is {arch}")
        keys = load_recipe("tf_build.json")["isa"]["psabi_levels"][level]
        return CpuTarget(level, arch, [f"-march={level}", "-mtune=generic"], list(keys), f"the {level} psABI level")
    if not _MARCH_NAME.fullmatch(spec):
        raise UsageError(
            f"--cpu {shown(spec, quote=True)}: expected native, detected, x86-64-v2|v3|v4 or a -march name"
        )
    _refuse_near_keyword(spec)
    if arch == "aarch64" and not spec.startswith("armv"):
        return CpuTarget("march", arch, [f"-mcpu={spec}"], [], f"the {spec} CPU model")
    return CpuTarget("march", arch, [f"-march={spec}"], [], f"the {spec} CPU model")


def _refuse_near_keyword(spec: str) -> None:
    """`--cpu nativ` is a typo, not a CPU model: say so before a compiler's cryptic refusal. The cut-off keeps real
    -march names that share a stem (x86-64 against x86-64-v2) out."""
    import difflib

    near = difflib.get_close_matches(spec, ["native", "detected", *PSABI_LEVELS], n=1, cutoff=0.85)
    if near:
        raise UsageError(f"--cpu {shown(spec, quote=True)}: did you mean {near[0]}?")


def _detected(arch: str, have: set[str]) -> CpuTarget:
    if not have:
        raise UsageError("--cpu detected: the CPU's feature flags are unknown; use --cpu native or x86-64-v2|v3|v4")
    table = isa_table(arch)
    keys = [k for k in table if k in have]
    if arch == "aarch64":
        extensions = "".join(table[k]["flag"] for k in keys)
        base = "armv8.2-a" if extensions else "armv8-a"
        return CpuTarget("detected", arch, [f"-march={base}{extensions}"], keys, DETECTED)
    flags = ["-march=x86-64", "-mtune=generic", *(table[k]["flag"] for k in keys)]
    off = load_recipe("tf_build.json")["isa"]["x86_off"]
    # The stock configs compile with -mavx; on a CPU without it an explicit -mno-avx (last) must win.
    flags += [flag for key, flag in off.items() if not key.startswith("_") and key not in have]
    return CpuTarget("detected", arch, flags, keys, DETECTED)


def macro_names(entry: dict[str, Any]) -> list[str]:
    """The predefined macro(s) of one instruction set; compilers spell some differently (__AMX_TILE__/__AMXTILE__)."""
    macro = entry["macro"]
    return [macro] if isinstance(macro, str) else list(macro)


def parse_macros(text: str) -> dict[str, str]:
    macros: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] == "#define":
            macros[parts[1]] = parts[2] if len(parts) == 3 else ""
    return macros


def find_compiler(candidates: list[str]) -> str | None:
    """The first candidate that exists and compiles the probe without flags."""
    for cand in candidates:
        path = cand if os.sep in cand else shutil.which(cand)
        if path and os.access(path, os.X_OK) and _compile_probe(path, []).ok:
            return path
    return None


def _compile_probe(compiler: str, flags: list[str]) -> CommandResult:
    """Compile the probe source with these flags, in a throwaway folder."""
    with tempfile.TemporaryDirectory(prefix="envdoctor-probe-") as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w", encoding="utf-8") as fh:
            fh.write(_PROBE_SOURCE)
        return run_command([compiler, *flags, "-c", src, "-o", os.path.join(tmp, "probe.o")], timeout=30)


def probe_flags(compiler: str, target: CpuTarget, cpu: CpuFacts, host_arch: str | None = None) -> ProbeResult:
    """Compile with the target's flags and check the predefined macros against what was asked and what the CPU has."""
    host_arch = normalize_arch(host_arch)
    cross = target.arch != host_arch
    if cross and target.mode == "native":
        raise UsageError(f"--cpu native needs a build on the target machine ({target.arch}); this one is {host_arch}")
    prefix = [f"--target={target.arch}-linux-gnu"] if cross else []
    if cross and "clang" not in os.path.basename(compiler):
        raise UsageError(f"checking {target.arch} flags here needs clang (--target); {compiler} cannot cross-compile")
    flags = prefix + target.flags
    compiled = _compile_or_error(compiler, flags)
    pre = run_command([compiler, *flags, "-x", "c", "-dM", "-E", os.devnull], timeout=30)
    if not pre.ok:
        raise UsageError(f"{compiler} {' '.join(target.flags)}: cannot read predefined macros: {_first_line(pre)}")
    macros = parse_macros(pre.stdout)
    table = isa_table(target.arch)
    enabled = [k for k, v in table.items() if any(m in macros for m in macro_names(v))]
    missing = [k for k in target.expected if k not in enabled]
    result = ProbeResult(compiler, compiled, macros, enabled, [])
    if missing:
        names = " ".join(macro_names(table[k])[0] for k in missing)
        if target.mode == "native":
            result.notes.append(f"{compiler} -march=native does not define {names}: the compiler is older than the CPU")
        else:
            raise UsageError(f"{compiler} {' '.join(target.flags)} does not define {names}: flags not honoured")
    have = cpu_flag_set(cpu)
    lacking = [k for k in enabled if k not in have]
    if lacking and have and target.mode != "native":
        names = ", ".join(table[k]["guard"] or k.upper() for k in lacking)
        model = one_line(cpu.model or "unknown")  # from a snapshot, maybe: the error stays one line
        raise UsageError(
            f"{' '.join(target.flags)} enables {names}, which the target CPU ({model}) lacks; "
            "use --cpu detected or a lower level"
        )
    result.guard_names = [table[k]["guard"] for k in enabled if table[k]["guard"]]
    return result


def _compile_or_error(compiler: str, flags: list[str]) -> str:
    res = _compile_probe(compiler, [*flags, "-Werror"])
    if not res.ok:
        raise UsageError(f"{compiler} refuses {' '.join(flags)}: {_first_line(res)}")
    version = run_command([compiler, "--version"], timeout=10)
    return version.stdout.splitlines()[0].strip() if version.ok and version.stdout else "unknown"


def _first_line(res: Any) -> str:
    text = (res.stderr or res.stdout or res.error or "failed").strip()
    for line in text.splitlines():
        if "error" in line.lower():
            return line.strip()
    return text.splitlines()[0] if text else "failed"
