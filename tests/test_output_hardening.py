"""Hostile input never breaks an output: file names that are not UTF-8, terminal escapes and Markdown in a
snapshot, and `--from` files with huge numbers, deep nesting or lone surrogates (one line, exit 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "tests/fixtures/h100-firecracker/envdoctor/busy-facts.json"


def envdoctor(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "envdoctor", *args], capture_output=True, cwd=REPO, timeout=60)


@pytest.fixture
def non_utf8_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    site = os.path.join(os.fsencode(root), b"usr/lib/python3/dist-packages")
    os.makedirs(site)
    os.makedirs(os.path.join(site, b"tensorflow"))
    open(os.path.join(site, b"tensorflow/__init__.py"), "wb").close()
    os.makedirs(os.path.join(site, b"tensorflow-2.21.0\xff.dist-info"))
    os.makedirs(os.path.join(os.fsencode(root), b"opt/toolkit\xfe/bin"))
    os.makedirs(root / "usr/local")
    os.symlink(b"/opt/toolkit\xfe", os.path.join(os.fsencode(root), b"usr/local/cuda"))
    with open(os.path.join(os.fsencode(root), b"opt/toolkit\xfe/version.json"), "wb") as handle:
        handle.write(b'{"cuda": {"name": "CUDA SDK \xff", "version": "12.4.1"}}')
    os.makedirs(root / "etc")
    (root / "etc/hostname").write_bytes(b"host\xff\xfe\n")
    return root


@pytest.mark.parametrize("output", [["--json"], ["-v"], ["--markdown"]])
def test_names_that_are_not_utf8_render_with_replacement(non_utf8_root: Path, output: list[str]) -> None:
    result = envdoctor("check", "--root", str(non_utf8_root), *output)
    assert result.returncode in (0, 1), result.stderr
    text = result.stdout.decode("utf-8")  # strict: the output is UTF-8
    assert "\ufffd" in text
    if output == ["--json"]:
        facts = json.loads(text)["facts"]
        assert facts["tensorflow"]["distributions"] and facts["cuda"]["toolkits"]


def test_save_of_non_utf8_names_is_a_loadable_utf8_snapshot(non_utf8_root: Path, tmp_path: Path) -> None:
    snapshot = tmp_path / "s.json"
    assert envdoctor("check", "--root", str(non_utf8_root), "--save", str(snapshot)).returncode in (0, 1)
    json.loads(snapshot.read_bytes().decode("utf-8"))
    assert envdoctor("check", "--from", str(snapshot), "--json").returncode in (0, 1)


def _hostile_snapshot(tmp_path: Path, hostname: str) -> Path:
    data = json.loads(SNAPSHOT.read_text())
    data["system"]["hostname"] = hostname
    data["system"]["distro_name"] = hostname
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data))
    return path


def test_terminal_escapes_from_a_snapshot_are_shown_not_obeyed(tmp_path: Path) -> None:
    snapshot = _hostile_snapshot(tmp_path, "evil\x1b]0;owned\x07\x1b[2J\r\x9bname")
    for output in (["-v"], ["--markdown"]):
        result = envdoctor("check", "--from", str(snapshot), *output)
        assert result.returncode in (0, 1), result.stderr
        text = result.stdout.decode("utf-8")
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\x9b" not in text
        assert "evil\\x1b]0;owned\\x07" in text


def test_markdown_from_a_snapshot_stays_in_its_item(tmp_path: Path) -> None:
    snapshot = _hostile_snapshot(tmp_path, "x\n\n# Injected heading\n```\n")
    text = envdoctor("check", "--from", str(snapshot), "--markdown").stdout.decode("utf-8")
    assert "\n# Injected heading" not in text


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper"),
        ('{"system": {"memory_total_bytes": ' + "9" * 4300 + "}}", "4300 digits"),
        ('{"system": {"memory_total_bytes": 10000000000000000000000000000000000000000}}', "41 digits"),
        ('{"system": {"hostname": "\\ud800"}}', "unpaired surrogate"),
        ('{"system": {"hostname": "x"}, "cpu": {"max_mhz": 1e400}}', "out of range"),
        ('{"system": {"hostname": "x"}, "cpu": {"max_mhz": NaN}}', "NaN is not a JSON number"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_hostile_snapshots_are_one_line_exit_2(tmp_path: Path, document: str | bytes, why: str) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(document if isinstance(document, bytes) else document.encode())
    for command in (["check", "--from", str(path)], ["build-tf", "--dry-run", "--from", str(path)]):
        result = envdoctor(*command)
        stderr = result.stderr.decode()
        assert result.returncode == 2 and len(stderr.strip().splitlines()) == 1, (command, stderr)
        assert why in stderr and result.stdout == b""


@pytest.mark.parametrize("columns", ["200", "40"])  # the table, and the narrow-terminal cards
def test_gpus_table_prints_snapshot_text_as_text(tmp_path: Path, columns: str) -> None:
    # A GPU name with rich markup crashed `gpus --from` (MarkupError, exit 3); an escape reached the terminal.
    data = json.loads(SNAPSHOT.read_text())
    data["gpus"][0]["name"] = "[/bold] \x1b]0;owned\x07 [red]x"
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    result = subprocess.run(
        [sys.executable, "-m", "envdoctor", "gpus", "--from", str(path)],
        capture_output=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, "COLUMNS": columns},
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "[/bold] \\x1b]0;owned\\x07 [red]x" in text and "\x1b" not in text
