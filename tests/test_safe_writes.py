"""Atomic writes replace only a regular file, keep its mode, and leave nothing half-written (issue 9, point 2).

A device used here is made with mknod inside tmp_path when running as root, so a regression can only replace that
copy; without root, /dev/null itself is used, which a non-root process cannot replace anyway.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from envdoctor import atomic
from envdoctor.smoke import data as cifar

REPO = Path(__file__).resolve().parent.parent
H100_ROOT = REPO / "tests" / "fixtures" / "h100-firecracker" / "idle" / "root"


def envdoctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=120,
    )


def char_device(tmp_path: Path) -> Path:
    """A null device that a regression may destroy: a copy in tmp_path as root, the real one otherwise."""
    if os.geteuid() != 0:
        return Path("/dev/null")
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:  # a container without CAP_MKNOD
        pytest.skip("root without mknod: no device to test on that a regression could not damage")
    return device


def fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")
    return tmp_path / "fifo"


def unix_socket(tmp_path: Path) -> Path:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
    return tmp_path / "sock"


def directory(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    return tmp_path / "folder"


def _snapshot(path: Path) -> tuple[int, int, int]:
    info = os.lstat(path)
    return info.st_mode, info.st_ino, info.st_rdev


def _parts(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("make", [char_device, fifo, unix_socket, directory], ids=["device", "fifo", "socket", "dir"])
def test_a_target_that_is_not_a_regular_file_is_refused_and_left_as_it_is(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    target = make(tmp_path)
    before = _snapshot(target)
    with pytest.raises(atomic.NotRegularFile) as refused:
        atomic.write_text(target, "{}\n")
    assert isinstance(refused.value, OSError)  # every caller already turns an OSError's strerror into one line
    assert "not a regular file: refusing to replace it" in refused.value.strerror
    assert _snapshot(target) == before
    assert _parts(target.parent) == []  # refused before anything was written


def test_a_symbolic_link_is_neither_written_through_nor_replaced(tmp_path: Path) -> None:
    # Writing through a link lets whoever planted it pick the file; replacing it turns the user's link into a file.
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link, dangling = tmp_path / "link", tmp_path / "dangling"
    link.symlink_to(victim)
    dangling.symlink_to(tmp_path / "created-through-the-link")
    for path in (link, dangling):
        with pytest.raises(atomic.NotRegularFile, match="symbolic link"):
            atomic.write_text(path, "{}\n")
        assert path.is_symlink()
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "created-through-the-link").exists()
    assert _parts(tmp_path) == []


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755, 0o444], ids=oct)
def test_an_existing_file_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "snap.json"
    target.write_text("old\n")
    target.chmod(mode)
    atomic.write_text(target, "new\n", 0o644)
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == mode


def test_a_new_file_gets_the_mode_asked_and_set_id_bits_are_not_carried_over(tmp_path: Path) -> None:
    atomic.write_text(tmp_path / "new", "x", 0o640)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640
    setuid = tmp_path / "setuid"
    setuid.write_text("old")
    setuid.chmod(0o4755)
    atomic.write_text(setuid, "new")
    assert stat.S_IMODE(setuid.stat().st_mode) == 0o755


def test_a_failed_write_leaves_the_old_file_and_no_part(tmp_path: Path) -> None:
    target = tmp_path / "snap.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.atomic_file(target) as handle:
        handle.write(b"half")
        raise RuntimeError("disk gone")
    assert target.read_text() == "old\n" and _parts(tmp_path) == []


# ---------------------------------------------------------------- every caller: one line, nothing replaced


def test_check_save_to_a_device_is_one_line_exit_2_and_the_device_stays(tmp_path: Path) -> None:
    device = char_device(tmp_path)
    before = _snapshot(device)
    result = envdoctor("check", "--root", str(H100_ROOT), "--save", str(device))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"envdoctor: error: --save {device}: is a character device, not a regular file: refusing to replace it"
    ]
    assert _snapshot(device) == before


def test_check_save_to_a_link_or_fifo_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "link").symlink_to(victim)
    for target in (tmp_path / "link", fifo(tmp_path)):
        result = envdoctor("check", "--root", str(H100_ROOT), "--save", str(target))
        assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert "not a regular file" in result.stderr or "symbolic link: refusing" in result.stderr
        assert "Traceback" not in result.stderr
    assert (tmp_path / "link").is_symlink() and victim.read_text() == "precious\n"
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)


def test_check_save_keeps_an_existing_private_snapshot_private(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap.json"
    snapshot.write_text("{}")
    snapshot.chmod(0o600)
    result = envdoctor("check", "--root", str(H100_ROOT), "--save", str(snapshot))
    assert result.returncode in (0, 1), result.stderr
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600 and '"system"' in snapshot.read_text()


def test_the_cifar_cache_write_refuses_a_fifo_with_a_data_error(tmp_path: Path) -> None:
    target = fifo(tmp_path)
    with pytest.raises(cifar.DataError, match=r"^cannot write .*fifo: is a FIFO, not a regular file: refusing"):
        cifar.write_cache(cifar.synthetic(10, 10), target)
    assert stat.S_ISFIFO(os.lstat(target).st_mode) and _parts(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can replace another's file")
def test_root_replacing_a_users_file_keeps_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    os.chown(target, 4242, 4343)
    atomic.write_text(target, "new")
    info = target.stat()
    assert (info.st_uid, info.st_gid, target.read_text()) == (4242, 4343, "new")
