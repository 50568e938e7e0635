"""Issue 11: the gaps an audit of build-tf against primary sources found, one test per point, each with its source.

Release commits (tensorflow/serving tags' WORKSPACE pins) could
not be read themselves; where a fork pinned to a release was read instead, the test says which. The run-level
halves of points 2, 3, 4, 6 and 9 (build.sh really refusing, really re-checking) are in test_build_tf_run.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envdoctor.buildtf import plan as planmod
from envdoctor.buildtf.plan import BuildOptions, make_plan
from envdoctor.buildtf.render import render_files
from envdoctor.buildtf.runner import FailureMatch, RunResult, match_failures
from envdoctor.commands.build_tf import failure_report, plan_summary
from envdoctor.errors import UsageError
from envdoctor.facts import Facts, GpuFacts
from envdoctor.probes.cpu import cpu_facts_from_cpuinfo

FIXTURES = Path(__file__).parent / "fixtures"


def zen3(gpu: bool = False, pm: str = "apt") -> Facts:
    facts = Facts()
    text = (FIXTURES / "cpuinfo" / "x86-ryzen9-5950x-zen3.txt").read_text()
    facts.cpu = cpu_facts_from_cpuinfo(text, "x86_64")
    facts.system.memory_total_bytes = 64 << 30
    facts.system.package_manager = pm
    if gpu:
        facts.gpus = [GpuFacts(0, "NVIDIA H100 80GB HBM3", "GPU-1", "00000000:00:06.0", compute_capability="9.0")]
    return facts


def plan_for(tmp: Path, release: str, facts: Facts | None = None, **kw: object) -> planmod.BuildPlan:
    python = planmod.table()["releases"][release]["python"][1]
    base: dict[str, object] = {
        "tf_version": release,
        "out": tmp / "r",
        "python": python,
        "skip_flag_check": True,
        "jobs": 8,
        "ram_gb": 32,
    }
    base.update(kw)
    return make_plan(facts or zen3(), BuildOptions(**base))  # type: ignore[arg-type]


# --- 1. TensorRT, 2.15-2.17 CUDA builds ---------------------------------------------------------------------


@pytest.mark.parametrize("release", ["2.15", "2.16", "2.17"])
def test_tensorrt_is_turned_off_after_the_configs(tmp_path: Path, release: str) -> None:
    # tensorflow#74370: the v2.17.0 .bazelrc (L229-L243) `build:cuda_clang ... --config=tensorrt` sets
    # TF_NEED_TENSORRT unconditionally, "the variables can be set manually in the build command"; tensorflow/hub#907
    # (2.15/2.16 log: build:tensorrt --repo_env TF_NEED_TENSORRT=1), tensorflow#62689 (2.16.1, 2.17.0 too).
    plan = plan_for(tmp_path, release, cuda_cc="9.0")
    target = planmod.table()["releases"][release]["wheel_target"]
    ram = "--local_ram_resources=24576"  # Bazel 6 (2.15: 6.1.0, 2.16/2.17: 6.5.0)
    wheel = ["--repo_env=WHEEL_NAME=tensorflow"] if release == "2.17" else []
    assert plan.bazel_args == [
        "--config=opt",
        "--config=cuda_clang",
        "--repo_env=TF_CUDA_COMPUTE_CAPABILITIES=sm_90,compute_90",
        "--repo_env=TF_NEED_TENSORRT=0",
        "--jobs=8",
        ram,
        *wheel,
        "--verbose_failures",
        target,
    ]
    # Not in .tf_configure.bazelrc: a `build` line there loses to the config's expansion (#74370).
    assert "TENSORRT" not in render_files(plan)["tf_configure.bazelrc"]
    # A CPU build has no CUDA config to override.
    assert not any("TENSORRT" in a for a in plan_for(tmp_path, release).bazel_args)


def test_tensorrt_off_only_where_tensorrt_exists(tmp_path: Path) -> None:
    # Local-CUDA eras (2.12-2.17) have tensorrt_configure; 2.18's .bazelrc (tensorflow/tensorflow @ 0071ad1d)
    # has no tensorrt in cuda_clang and the official 2.18+ wheels are built without it (their build_info.py on PyPI).
    for release in ("2.12", "2.13", "2.14"):
        assert "--repo_env=TF_NEED_TENSORRT=0" in plan_for(tmp_path, release, cuda_cc="8.0").bazel_args
    for release in ("2.18", "2.19", "2.20", "2.21"):
        assert not any("TENSORRT" in a for a in plan_for(tmp_path, release, cuda_cc="8.0").bazel_args)


def test_run_explains_a_tensorrt_failure() -> None:
    # The messages of tensorrt_configure.bzl without TensorRT: JasonAtNvidia/JetsonTFBuild#1, tensorflow/serving#1965,
    # tensorflow#33207 (recipes/build_failures.json _sources "tensorrt").
    for line in [
        "Cuda Configuration Error: TensorRT library (libnvinfer) version is not set.",
        "ERROR: An error occurred during the fetch of repository 'local_config_tensorrt':",
        "Could not find any NvInferVersion.h matching version '8' in any subdirectory:",
    ]:
        found = match_failures([line], stage="build")
        assert [m.id for m in found] == ["tensorrt-missing"], line
        assert "--repo_env=TF_NEED_TENSORRT=0 after every --config" in found[0].fix


# --- 2, 3. compiler ranges -----------------------------------------------------------------------------------


def test_2_12_gcc_range_with_and_without_cuda(tmp_path: Path) -> None:
    # CUDA 11.8's crt/host_config.h: "#error -- unsupported GNU version! gcc versions later than 11 are not
    # supported!"; Spack py_tensorflow `conflicts("%gcc@13:", when="@:2.14")` (spack/spack-packages @ 06604c5e,
    # repos/spack_repo/builtin/packages/py_tensorflow/package.py).
    cpu = plan_for(tmp_path, "2.12")
    assert (cpu.compiler, cpu.compiler_max, cpu.compiler_max_fails) == ("gcc", 12, True)
    cuda = plan_for(tmp_path, "2.12", cuda_cc="8.0")
    assert (cuda.compiler_max, cuda.compiler_max_fails) == (11, True)
    script = render_files(cuda)["build.sh"]
    assert "COMPILER_MAX='11'" in script and "COMPILER_MAX_FAILS=1" in script
    assert cuda.install_hints["compiler_in_range"].startswith(
        "sudo apt-get install -y gcc-11 g++-11, then regenerate with --clang /usr/bin/gcc-11 --force"
    )
    assert any("GCC 9 to 11 (with CUDA" in n and "GCC 12 and newer are known to fail" in n for n in cuda.notes)
    readme = render_files(cpu)["README.md"]
    assert "GCC 9 to 12 at `/usr/bin/gcc`" in readme and "known **not** to build this release" in readme


@pytest.mark.parametrize(
    "release, top, fails",
    [
        # Spack `conflicts("%clang@17:", when="@:2.14")` citing tensorflow#62416 (same file as above).
        ("2.13", 16, True),
        ("2.14", 16, True),
        # Spack patches 2.15 for Clang 18 ("fix-clang-18.diff", #62416): unpatched it does not build.
        ("2.15", 17, True),
        # The official wheels' compilers (their build_info.py on PyPI: llvm-17 for 2.16/2.17, llvm-18 for 2.18-2.20);
        # nothing newer was verified, so newer majors are untested: refused unless ENVDOCTOR_UNTESTED_COMPILER=1.
        ("2.16", 17, False),
        ("2.17", 17, False),
        ("2.18", 18, False),
        ("2.19", 18, False),
        ("2.20", 18, False),
    ],
)
def test_clang_is_capped_per_era(tmp_path: Path, release: str, top: int, fails: bool) -> None:
    plan = plan_for(tmp_path, release)
    assert (plan.compiler_max, plan.compiler_max_fails) == (top, fails)
    script = render_files(plan)["build.sh"]
    assert f"COMPILER_MAX='{top}'" in script and f"COMPILER_MAX_FAILS={int(fails)}" in script
    # Distros with only a newer Clang (Fedora, Arch, openSUSE): the way out is --docker.
    dnf = plan_for(tmp_path, release, facts=zen3(pm="dnf"))
    assert "--docker" in dnf.install_hints["compiler_in_range"]


# --- 4. 2.21's hermetic C++ toolchain --------------------------------------------------------------------------


def test_2_21_builds_with_its_hermetic_clang(tmp_path: Path) -> None:
    # .bazelrc of a v2.21.0 fork (llm-pt-ibm/tensorflow @ 1da01a6c, branch power9-v2.21.0): `common
    # --incompatible_enable_cc_toolchain_resolution`, `common --repo_env USE_HERMETIC_CC_TOOLCHAIN=1`; its
    # release_linux_base keeps -fuse-ld=lld and the -Wno flags with that toolchain. The official 2.21 wheel's
    # build_info says cpu_compiler "clang", not a local path (the wheels' build_info.py on PyPI).
    plan = plan_for(tmp_path, "2.21", cuda_cc="9.0")
    files = render_files(plan)
    rc, script, readme = files["tf_configure.bazelrc"], files["build.sh"], files["README.md"]
    assert plan.compiler == "hermetic" and plan.compiler_path == "" and plan.clang_major is None
    assert "clang" not in plan.install_hints and "lld" not in plan.install_hints  # no tool it will not use
    assert "CC=" not in rc and "CLANG_COMPILER_PATH" not in rc and "CLANG_CUDA_COMPILER_PATH" not in rc
    assert "GCC_HOST_COMPILER_PATH" not in rc
    assert "build --linkopt=-fuse-ld=lld" in rc and "build --copt=-Wno-gnu-offsetof-extensions" in rc
    assert "apt-get install" not in script.split("check_compiler() {")[1].split("\n}")[0]
    assert "hermetic Clang" in readme and "no local compiler or lld is needed" in readme
    assert "hermetic Clang" in dict(plan_summary(plan))["Compiler"]
    with pytest.raises(UsageError, match="--clang does not apply"):
        plan_for(tmp_path, "2.21", clang="/usr/bin/clang", docker=True)
    # The configs C2 of the audit found missing from the 2.21 list (RC21).
    assert {"cuda_clang_official", "tf_public_cache", "release_cpu_linux_clang_local", "clang_local"} <= set(
        plan.era["configs"]
    )


# --- 5. the stock 2.21 wheel needs F16C -------------------------------------------------------------------------


def test_stock_wheel_flags_are_per_release(tmp_path: Path) -> None:
    # RC21 .bazelrc: `common:avx_linux --copt=-mavx --host_copt=-mavx --copt="-mf16c"`; the 2.18-era
    # (tensorflow/tensorflow @ 0071ad1d) and 2.19/2.20-era (ROCm/tensorflow-upstream @ 009759fa) have -mavx only.
    assert planmod.stock_wheel_flags(planmod.table()["releases"]["2.21"]) == ["-mavx", "-mf16c"]
    assert planmod.stock_wheel_flags(planmod.table()["releases"]["2.20"]) == ["-mavx"]
    assert "compiled with `-mavx -mf16c` only" in render_files(plan_for(tmp_path, "2.21"))["README.md"]
    assert "compiled with `-mavx` only" in render_files(plan_for(tmp_path, "2.20"))["README.md"]
    # A CPU with AVX but no F16C (Sandy Bridge): the stock 2.21 wheel dies there, the stock 2.20 wheel does not.
    sandy = zen3()
    sandy.cpu.flags = [f for f in sandy.cpu.flags if f != "f16c"]
    note = "This CPU has no F16C: the stock 2.21 wheels (built with -mavx -mf16c) die with 'Illegal instruction'"
    assert any(note in n for n in plan_for(tmp_path, "2.21", facts=sandy, cpu="x86-64-v2").notes)
    assert not any(
        "Illegal instruction' here" in n for n in plan_for(tmp_path, "2.20", facts=sandy, cpu="x86-64-v2").notes
    )


# --- 6, 7. Bazel for 2.21, repo_env for 2.19 ------------------------------------------------------------------


def test_2_21_bazel_is_marked_unverified_and_only_the_checkout_counts(tmp_path: Path) -> None:
    # Not read at v2.21.0: 7.7.0 is Spack's v2.21.0 pin ("See .bazelversion"), an Arch RISC-V 2.21.0 build and a
    # 2.21-era fork's .bazelversion (SumyakLimbu/tensorflow @ 4969d13); the docs' 7.4.1 row copies 2.20's.
    plan = plan_for(tmp_path, "2.21")
    assert (plan.bazel_version, plan.bazel_verified) == ("7.7.0", False)
    files = render_files(plan)
    assert "BAZEL_VERIFIED=0" in files["build.sh"] and "(not read at the tag: see below)" in files["README.md"]
    assert "Unverified" in dict(plan_summary(plan))  # --dry-run says so too
    older = plan_for(tmp_path, "2.20")  # 7.4.1: docs, Spack, tensorflow/serving 2.20.0 agree
    assert older.bazel_verified and "BAZEL_VERIFIED=1" in render_files(older)["build.sh"]
    assert "Unverified" not in dict(plan_summary(older))


def test_2_19_builds_without_pywrap_rules(tmp_path: Path) -> None:
    # The docs added --repo_env=USE_PYWRAP_RULES=1 on 2025-04-17 (tensorflow/docs @ a8576cef), after 2.19; the
    # 2.19/2.20-era .bazelrc (ROCm/tensorflow-upstream @ 009759fa) has no USE_PYWRAP_RULES default but does define
    # ML_WHEEL_TYPE (default "snapshot"), so release keeps the plain version string; conda-forge builds 2.19.1
    # without the flag (tensorflow-feedstock @ 2cc3b129). RC21 makes USE_PYWRAP_RULES=True a 2.21 default.
    args = plan_for(tmp_path, "2.19").bazel_args
    assert "--repo_env=ML_WHEEL_TYPE=release" in args and not any("PYWRAP" in a for a in args)
    assert "--repo_env=USE_PYWRAP_RULES=1" in plan_for(tmp_path, "2.20").bazel_args
    assert "--repo_env=USE_PYWRAP_RULES=1" in plan_for(tmp_path, "2.21").bazel_args


# --- 9. the compute-capability variable of the era -------------------------------------------------------------


def test_verify_names_the_eras_capability_variable(tmp_path: Path) -> None:
    # Hermetic CUDA reads HERMETIC_CUDA_COMPUTE_CAPABILITIES (third_party/gpus/cuda/hermetic/cuda_configure.bzl
    # @ 0575a9d3); local CUDA reads TF_CUDA_COMPUTE_CAPABILITIES.
    for release, var in (("2.20", "HERMETIC_CUDA_COMPUTE_CAPABILITIES"), ("2.17", "TF_CUDA_COMPUTE_CAPABILITIES")):
        script = render_files(plan_for(tmp_path, release, cuda_cc="9.0"))["build.sh"]
        assert f"CUDA_CC_VAR='{var}'" in script and "(was $CUDA_CC_VAR overridden" in script
        assert "was TF_CUDA_COMPUTE_CAPABILITIES overridden" not in script


# --- 10. --from plans for the target's Python -------------------------------------------------------------------


def test_from_snapshot_plans_for_the_targets_python(tmp_path: Path) -> None:
    target = zen3()
    target.tensorflow.python_version = "3.12.3"  # what `check` inspected there (3.11 runs here)
    plan = plan_for(tmp_path, "2.20", facts=target, python=None, other_machine=True)
    assert plan.python_version == "3.12"
    assert any("Python 3.12, the target's (from the --from snapshot)" in n for n in plan.notes)
    target.tensorflow.python_version, target.system.python_version = None, "3.10.14"
    assert plan_for(tmp_path, "2.20", facts=target, python=None, other_machine=True).python_version == "3.10"
    # An explicit --python wins.
    assert plan_for(tmp_path, "2.20", facts=target, python="3.11", other_machine=True).python_version == "3.11"
    # Unknown: refused with the reason and the flag, not planned for this machine's Python.
    target.system.python_version = None
    with pytest.raises(UsageError, match="does not say which Python the target runs.*pass --python X.Y"):
        plan_for(tmp_path, "2.20", facts=target, python=None, other_machine=True)
    target.system.python_version = "3.12\nbuild --config=evil"
    with pytest.raises(UsageError, match="is not like 3.12"):
        plan_for(tmp_path, "2.20", facts=target, python=None, other_machine=True)
    # Outside the release's range: the usual refusal, which names --python.
    target.system.python_version = "3.13.1"
    with pytest.raises(UsageError, match=r"supports Python 3\.9-3\.12; the target interpreter is 3\.13"):
        plan_for(tmp_path, "2.19", facts=target, python=None, other_machine=True)


# --- 12. --run prints each log line once ------------------------------------------------------------------------


def test_failure_report_prints_each_missing_prerequisite_once() -> None:
    missing = [
        "envdoctor: missing git",
        "    install: sudo apt-get install -y git",
        "envdoctor: missing patchelf >= 0.14",
        "    install: sudo apt-get install -y patchelf",
    ]
    die = "envdoctor: 2 prerequisite(s) missing; install them and re-run ./build.sh"
    result = RunResult(
        1,
        "/r/build.log",
        failed_stage="prereqs",
        matches=[
            FailureMatch(
                "tool-missing",
                "A prerequisite is missing",
                "Run the install command",
                "prereqs",
                [line.strip() for line in missing],
            )
        ],
        errors=["envdoctor: missing git", "envdoctor: missing patchelf >= 0.14", die],
        tail=["==> stage prereqs", *missing, die],
    )
    report = failure_report(result)
    text = "\n".join(report)
    for line in missing:
        assert text.count(line.strip()) == 1, line
    assert text.count(die) == 1 and "the last lines of the log (not shown above):" in text


# --- 8. driver packages for pre-Turing GPUs -------------------------------------------------------------------


def test_pre_turing_gpus_get_the_proprietary_kernel_modules() -> None:
    # NVIDIA/open-gpu-kernel-modules README @ 015742d3: the open modules "can be used on any Turing or later GPU";
    # NVIDIA Driver Installation Guide (kernel-modules.html): the proprietary flavor "is required for older GPUs
    # from the Maxwell, Pascal, or Volta architectures"; Arch's 590 move to nvidia-open (archlinux.org news).
    from envdoctor.distro_pkgs import driver_install_command

    for distro, pm in (("rocky", "dnf"), ("almalinux", "dnf"), ("rhel", "dnf"), ("amzn", "dnf")):
        turing = driver_install_command(pm, distro, (), (7, 5))
        pascal = driver_install_command(pm, distro, (), (6, 1))
        assert turing and turing.endswith("sudo dnf install -y nvidia-open"), distro
        assert pascal and "nvidia-open" not in pascal and "nvidia-driver:580-dkms" in pascal, distro
        assert pascal.rstrip().endswith("sudo dnf install -y cuda-drivers"), distro
    for distro in ("opensuse-leap", "opensuse-tumbleweed"):
        turing = driver_install_command("zypper", distro, (), (8, 6))
        pascal = driver_install_command("zypper", distro, (), (6, 1))
        # nvidia-compute-utils-G06 is only in NVIDIA's repository: added first (once), for every GPU.
        assert turing and "zypper addrepo --refresh " in turing and "https://download.nvidia.com/opensuse/" in turing
        assert "nvidia-open-driver-G06-signed-kmp-default" in turing
        assert pascal and "nvidia-driver-G06-kmp-default" in pascal and "nvidia-open" not in pascal
    assert "nvidia-580xx-dkms" in (driver_install_command("pacman", "arch", (), (5, 2)) or "")
    assert driver_install_command("pacman", "arch", (), (8, 9)) == "sudo pacman -S --needed nvidia-open nvidia-utils"
    # Ubuntu (also for derivatives) and Debian pick a fitting module themselves.
    assert driver_install_command("apt", "linuxmint", ("ubuntu",), (6, 1)) == "sudo ubuntu-drivers install"
    assert "apt-get install -y nvidia-driver" in (driver_install_command("apt", "debian", (), (6, 1)) or "")
    # An unknown capability keeps the default; a distro without a known pre-Turing command gets none (not a wrong one).
    assert driver_install_command("dnf", "rocky", ()) == driver_install_command("dnf", "rocky", (), (9, 0))
    assert driver_install_command("dnf", "fedora", (), (6, 1)) is None
