"""Usage errors are one line on stderr with exit 2 and nothing on stdout; every command's --help has examples;
output off a terminal carries no trailing spaces."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "TF_", "ENVDOCTOR_"))}
    e.update(XDG_RUNTIME_DIR=str(tmp_path), NO_COLOR="1", COLUMNS="100")
    return e


def envdoctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["check", "--bogus"],
            "envdoctor: error: No such option '--bogus'. Did you mean '--verbose'? (see envdoctor check --help)",
        ),
        (["env"], "envdoctor: error: Missing option '--gpus' (see envdoctor env --help)"),
        (["run", "--", "true"], "envdoctor: error: Missing option '--gpus' (see envdoctor run --help)"),
        (
            ["run", "--gpus", "none"],
            "envdoctor: error: Missing argument '-- COMMAND [ARGS]...' (see envdoctor run --help)",
        ),
        (
            ["env", "--gpus", "0", "--memory-limit", "abc"],
            "envdoctor: error: Invalid value for '--memory-limit': 'abc' is not a valid integer "
            "(see envdoctor env --help)",
        ),
        (["chek"], "envdoctor: error: No such command 'chek'. Did you mean 'check'? (see envdoctor --help)"),
        (["data", "bogus"], "envdoctor: error: No such command 'bogus' (see envdoctor data --help)"),
    ],
)
def test_click_usage_errors_are_one_line(env, args, line):
    out = envdoctor(*args, env=env)
    assert (out.returncode, out.stdout, out.stderr) == (2, "", line + "\n")


def test_envdoctors_own_usage_errors_and_exit_codes_are_unchanged(env):
    own = envdoctor("env", "--gpus", "none", "--format", "tcsh", env=env)
    assert own.returncode == 2 and own.stdout == "" and own.stderr.count("\n") == 1
    assert (
        envdoctor("run", "--gpus", "none", "--", sys.executable, "-c", "raise SystemExit(5)", env=env).returncode == 5
    )
    version = envdoctor("--version", env=env)
    assert version.returncode == 0 and version.stdout.startswith("envdoctor ")
    assert envdoctor("gpus", "--help", env=env).returncode == 0
    bare = envdoctor(env=env)  # no command: the help, exit 2 as before
    assert bare.returncode == 2 and "check" in bare.stdout + bare.stderr


@pytest.mark.parametrize(
    ("args", "example"),
    [
        (["check"], "envdoctor check --json > report.json"),
        (["gpus"], "envdoctor gpus --json > gpus.json"),
        (["env"], 'eval "$(envdoctor env --gpus 0,2)"'),
        (["run"], "envdoctor run --gpus auto:1 -- python train.py --epochs 10"),
        (["build-tf"], "envdoctor build-tf --dry-run"),
        (["smoke-test"], "envdoctor smoke-test --gpus none --steps 200 --data synthetic"),
        (["data", "cifar10"], "envdoctor data cifar10 --data ~/Downloads/cifar-10-python.tar.gz"),
    ],
)
def test_every_help_has_examples(env, args, example):
    out = envdoctor(*args, "--help", env=env)
    assert out.returncode == 0
    lines = [line.strip(" │") for line in out.stdout.splitlines()]
    assert "Examples:" in lines and example in lines  # each example on a line of its own


@pytest.mark.parametrize("command", ["env", "run"])
def test_env_and_run_help_define_spec(env, command):
    text = " ".join(envdoctor(command, "--help", env=env).stdout.split())
    for word in (
        "0,2 (nvidia-smi indices)",
        "MIG device 0 of GPU 2",
        "unique prefix",
        "MIG device's UUID",
        "auto:2",
        "none (CPU only)",
    ):
        assert word in text
    if command == "run":
        assert "run [OPTIONS] -- COMMAND [ARGS]..." in text and "Put -- before COMMAND" in text


def test_piped_console_output_has_no_trailing_spaces(monkeypatch):
    from rich.table import Table

    from envdoctor.report.console import PIPE_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)
    stream = io.StringIO()
    console = make_console(stream)
    grid = Table.grid(padding=(0, 2))  # the layout of `build-tf --dry-run`: rich pads every cell to the width
    grid.add_row("CPU", "-march=x86-64-v3 " * 8)
    grid.add_row("CUDA", "no (CPU-only)")
    console.print(grid)
    console.print("partial ", end="")
    console.print("line")
    lines = stream.getvalue().splitlines()
    assert console.width == PIPE_WIDTH and len(lines) == 3  # no 80-column folding
    assert lines[1] == "CUDA  no (CPU-only)" and lines[2] == "partial line"
    assert not [line for line in lines if line != line.rstrip()]
