"""`envdoctor check` end to end, as a user runs it: real processes, real fixtures, documented exit codes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
H100_ROOT = REPO / "tests" / "fixtures" / "h100-firecracker" / "idle" / "root"


def envdoctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args], capture_output=True, text=True, env=full_env, cwd=REPO, timeout=120
    )


def test_version() -> None:
    result = envdoctor("--version")
    assert result.returncode == 0 and result.stdout.strip().startswith("envdoctor 0.")


def test_check_on_this_machine_json_is_one_document_on_stdout() -> None:
    result = envdoctor("check", "--json")
    assert result.returncode in (0, 1), result.stderr
    document = json.loads(result.stdout)  # nothing else on stdout
    assert document["summary"]["exit_code"] == result.returncode
    assert document["facts"]["host"] is True
    assert document["facts"]["probe_errors"] == []
    assert not any(f["code"].startswith("envdoctor.") for f in document["findings"])


def test_check_does_not_import_tensorflow_in_process() -> None:
    code = (
        "import sys; from envdoctor.probes import collect; from envdoctor.doctor import diagnose; "
        "diagnose(collect()); print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_root_h100_capture_sees_the_gpu_on_pci_with_the_open_driver() -> None:
    result = envdoctor("check", "--json", "--root", str(H100_ROOT))
    document = json.loads(result.stdout)
    driver = document["facts"]["driver"]
    assert driver["kernel_module_version"] == "580.159.04"
    assert driver["kernel_module_flavour"] == "open"
    assert [g["address"] for g in driver["pci_gpus"]] == ["0000:00:06.0"]
    assert document["facts"]["host"] is False


def test_save_then_from_gives_the_same_diagnosis(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap shot.json"
    first = envdoctor("check", "--json", "--root", str(H100_ROOT), "--save", str(snapshot))
    second = envdoctor("check", "--json", "--from", str(snapshot))
    assert first.returncode == second.returncode
    assert json.loads(first.stdout)["findings"] == json.loads(second.stdout)["findings"]
    assert not list(tmp_path.glob(".*tmp"))  # nothing half-written left behind


def test_redact_and_markdown(tmp_path: Path) -> None:
    result = envdoctor("check", "--markdown", "--redact", "--root", str(H100_ROOT))
    assert result.returncode in (0, 1), result.stderr
    assert "### envdoctor check" in result.stdout
    home = str(Path.home())
    if home not in ("/", "/root"):
        assert home not in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "--json", "--markdown"], "cannot be combined"),
        (["check", "--from", "/nonexistent/snap.json"], "--from /nonexistent/snap.json"),
        (["check", "--root", "/nonexistent-root"], "not a directory"),
        (["check", "--python", "/nonexistent/python3"], "not an executable"),
        (["check", "--from", str(REPO / "README.md")], "not a JSON snapshot"),
        # an interpreter that does not run is no environment to diagnose (not "TensorFlow not installed", exit 0)
        (["check", "--python", "/bin/false", "-v"], "--python /bin/false is not a working Python interpreter"),
    ],
)
def test_usage_errors_are_one_line_exit_2_and_nothing_on_stdout(args: list[str], message: str) -> None:
    result = envdoctor(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "document, message",
    [
        ({"schema_version": "2", "system": {}}, "is not a number"),
        ({"schema_version": 99, "system": {}}, "is newer than this envdoctor"),
        ({"system": None, "gpus": "x"}, "malformed snapshot"),
        ([1, 2], "not an envdoctor facts snapshot"),
    ],
)
def test_bad_snapshots_are_usage_errors(tmp_path: Path, document: object, message: str) -> None:
    snapshot = tmp_path / "bad.json"
    snapshot.write_text(json.dumps(document))
    result = envdoctor("check", "--from", str(snapshot))
    assert result.returncode == 2 and result.stdout == "" and message in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    result = envdoctor("check", "--no-such-option")
    assert result.returncode == 2 and result.stdout == ""


@pytest.mark.parametrize("fmt", ["-v", "--json", "--markdown"])
def test_closed_stdout_keeps_the_diagnosis_exit_code_and_prints_no_traceback(fmt: str) -> None:
    # `envdoctor check -v | head -1`: the reader is gone before envdoctor writes (a pipe with no read end).
    snapshot = REPO / "tests" / "fixtures" / "h100-firecracker" / "envdoctor" / "facts.json"
    expected = envdoctor("check", fmt, "--from", str(snapshot)).returncode
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "envdoctor", "check", fmt, "--from", str(snapshot)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            timeout=120,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        os.close(write_end)
    assert expected == 0 and result.returncode == expected
    assert result.stderr == ""


def test_redact_as_root_keeps_the_snapshot_loadable_with_the_same_diagnosis(tmp_path: Path) -> None:
    # Docker's usual user: the facts key "root" and HOME=/root must survive --redact.
    snapshot = tmp_path / "snap.json"
    first = envdoctor("check", "--json", "--redact", "--save", str(snapshot), env={"USER": "root", "HOME": "/root"})
    assert "<user>" not in first.stdout and "<user>" not in snapshot.read_text()
    saved = json.loads(snapshot.read_text())
    assert saved["root"] == "/" and saved["system"]["home"] == "/root"
    second = envdoctor("check", "--json", "--from", str(snapshot))
    assert second.returncode == first.returncode, second.stderr
    codes = [f["code"] for f in json.loads(first.stdout)["findings"]]
    assert [f["code"] for f in json.loads(second.stdout)["findings"]] == codes


def test_hints_repeat_the_options_and_a_snapshot_report_says_so(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap shot.json"
    live = envdoctor("check", "--root", str(H100_ROOT), "--save", str(snapshot))
    assert f"(run `envdoctor check --root {shlex.quote(str(H100_ROOT))} -v` for every detail)" in live.stdout
    lines = envdoctor("check", "--from", str(snapshot)).stdout.splitlines()
    assert lines[1].startswith(f"from snapshot {snapshot}, taken at ")  # the capture records no hostname
    assert lines[2] == f"(run `envdoctor check --from {shlex.quote(str(snapshot))} -v` for every detail)"
    other = envdoctor("check", "--python", sys.executable)
    assert f"(run `envdoctor check --python {shlex.quote(sys.executable)} -v` for every detail)" in other.stdout
