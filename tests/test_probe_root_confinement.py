"""`--root DIR` reads nothing outside DIR: every path a probe asks for is tried as a link out of the root.

The paths come from recording what the probes ask for on real fixture roots (tests/fixtures/roots/*/README.md and
tests/fixtures/h100-firecracker/README.md say where those came from). Each one in turn becomes an absolute link to a
host file, a relative `../../..` link climbing out of the root, and a link to `/`. Then `collect` must neither show
the host's data nor ask the kernel to follow a link: every path handed to open/stat/readlink has no symlink between
DIR and its last component, and every opened file lies under DIR.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from envdoctor.facts import to_dict
from envdoctor.probes import ProbeContext, collect, files
from envdoctor.probes.files import InspectedFS

TESTS = Path(__file__).parent
REPO = TESTS.parent
FIXTURE_ROOTS = {
    "pip-cuda-tf217": TESTS / "fixtures/roots/pip-cuda-tf217/root",
    "h100-idle": TESTS / "fixtures/h100-firecracker/idle/root",
    "multi-toolkit": TESTS / "fixtures/roots/multi-toolkit/root",
}
SECRET = "ENVDOCTOR-HOST-SECRET"
LINK_KINDS = ("absolute", "relative", "slash")


def _asked_paths(root: Path) -> list[str]:
    """Every path of the inspected system the probes ask InspectedFS about on this root."""
    asked: set[str] = set()
    originals = {}
    for name in ("read_bytes", "listdir", "readlink", "exists", "isdir", "isfile", "realpath", "glob"):
        originals[name] = getattr(InspectedFS, name)

        def spy(self: InspectedFS, path: str, *args: Any, _name: str = name, **kwargs: Any) -> Any:
            if "*" not in path:
                asked.add(os.path.normpath(path))
            return originals[_name](self, path, *args, **kwargs)

        setattr(InspectedFS, name, spy)
    try:
        collect(ProbeContext(root=root, env={}))
    finally:
        for name, original in originals.items():
            setattr(InspectedFS, name, original)
    return sorted(p for p in asked if p != "/")


class _SpyOS:
    """The `os` module as files.py sees it, checking each call that takes a path of the inspected root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.problems: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _check(self, call: str, path: Any) -> None:
        if not isinstance(path, str) or path.startswith("/proc/self/fd/"):
            return
        if path != self.root and not path.startswith(self.root + "/"):
            self.problems.append(f"{call}({path!r}) outside the root")
            return
        parts = path[len(self.root) :].split("/")[1:-1]
        for depth in range(1, len(parts) + 1):
            prefix = self.root + "/" + "/".join(parts[:depth])
            if os.path.islink(prefix):
                self.problems.append(f"{call}({path!r}) goes through the link {prefix}")
                return

    def open(self, path: Any, flags: int, *args: Any) -> int:
        self._check("open", path)
        fd = os.open(path, flags, *args)
        where = os.readlink(f"/proc/self/fd/{fd}")
        if where != self.root and not where.startswith(self.root + "/"):
            self.problems.append(f"open({path!r}) opened {where}")
        return fd

    def lstat(self, path: Any) -> os.stat_result:
        self._check("lstat", path)
        return os.lstat(path)

    def stat(self, path: Any) -> os.stat_result:
        self.problems.append(f"stat({path!r}) follows links under --root")
        return os.stat(path)

    def readlink(self, path: Any) -> str:
        self._check("readlink", path)
        return os.readlink(path)

    def listdir(self, path: Any) -> list[str]:
        self._check("listdir", path)
        return os.listdir(path)


@pytest.fixture(scope="module")
def host_secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host directory whose file and whose listing would show up in the facts if anything escaped."""
    host = tmp_path_factory.mktemp("host")
    (host / "secret").write_text(f"ID={SECRET}\nNAME={SECRET}\n{SECRET}\n")
    (host / f"{SECRET}-name").write_text(SECRET)
    (host / "libcudart.so.12").write_text(SECRET)
    return host


@contextmanager
def _replaced_by_link(root: Path, path: str, target: str) -> Iterator[bool]:
    """Make `path` of the root a symlink to target for the block; False if that cannot be done safely here."""
    local = root / path.lstrip("/")
    parent = os.path.realpath(local.parent)
    if not (parent == str(root) or parent.startswith(f"{root}/")) or not os.path.isdir(parent):
        yield False  # a parent that is an absolute link: creating files there would touch the host
        return
    backup = local.with_name(local.name + ".envdoctor-test-backup")
    had = os.path.lexists(local)
    if had:
        os.rename(local, backup)
    os.symlink(target, local)
    try:
        yield True
    finally:
        os.unlink(local)
        if had:
            os.rename(backup, local)


def _link_target(kind: str, path: str, host_secret: Path, is_dir: bool) -> str:
    host_target = str(host_secret if is_dir else host_secret / "secret")
    if kind == "absolute":
        return host_target
    if kind == "relative":
        return "../" * (path.count("/") + 8) + host_target.lstrip("/")
    return "/"


@pytest.mark.parametrize("fixture", sorted(FIXTURE_ROOTS))
def test_no_probed_path_reads_outside_the_root(
    fixture: str, tmp_path: Path, host_secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    shutil.copytree(FIXTURE_ROOTS[fixture], root, symlinks=True)
    root = Path(os.path.realpath(root))
    asked = _asked_paths(root)
    assert len(asked) > 40  # the recording saw the probes at work
    spy = _SpyOS(str(root))
    monkeypatch.setattr(files, "os", spy)
    tried = 0
    for path in asked:
        is_dir = (root / path.lstrip("/")).is_dir()
        for kind in LINK_KINDS:
            with _replaced_by_link(root, path, _link_target(kind, path, host_secret, is_dir)) as made:
                if not made:
                    continue
                tried += 1
                facts = collect(ProbeContext(root=root, env={}))
                text = json.dumps(to_dict(facts))
                assert SECRET.lower() not in text.lower(), (path, kind)
                assert facts.probe_errors == [], (path, kind, facts.probe_errors)
    assert spy.problems == []
    assert tried > 100


def test_the_reported_escape_hostname_linked_to_a_host_file(tmp_path: Path, host_secret: Path) -> None:
    # The report: `ln -s /etc/shadow r/etc/hostname; envdoctor check --root r --json` printed the shadow line.
    (tmp_path / "r/etc").mkdir(parents=True)
    (tmp_path / "r/etc/hostname").symlink_to(host_secret / "secret")
    (tmp_path / "r/etc/os-release").symlink_to(host_secret / "secret")
    result = subprocess.run(
        [sys.executable, "-m", "envdoctor", "check", "--json", "--root", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode in (0, 1), result.stderr
    facts = json.loads(result.stdout)["facts"]
    assert facts["system"]["hostname"] is None and facts["system"]["distro_id"] is None
    assert SECRET.lower() not in result.stdout.lower()


def test_an_absolute_link_is_re_rooted_as_in_a_chroot(tmp_path: Path) -> None:
    (tmp_path / "etc/alternatives").mkdir(parents=True)
    (tmp_path / "etc/alternatives/hostname-file").write_text("inside\n")
    (tmp_path / "etc/hostname").symlink_to("/etc/alternatives/hostname-file")
    (tmp_path / "up").symlink_to("../../../../../../etc")  # climbs to the root and stops there, like chroot
    fs = InspectedFS(tmp_path)
    assert fs.read_text("/etc/hostname") == "inside\n"
    assert fs.read_text("/up/hostname") == "inside\n"
    assert fs.realpath("/up/alternatives/../hostname") == "/etc/alternatives/hostname-file"
    assert fs.glob("/up/host*") == ["/up/hostname"]


def test_link_loops_and_self_links_end(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("/b")
    (tmp_path / "b").symlink_to("/a")
    (tmp_path / "d").mkdir()
    (tmp_path / "d/self").symlink_to(".")
    fs = InspectedFS(tmp_path)
    assert fs.read_text("/a") is None and fs.listdir("/a") == frozenset() and not fs.exists("/a")
    assert len(fs.glob("/d/*/*/*/*/*/*/*/*")) == 1  # d/self/self/...: one path, walked inside the root


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this OS")
def test_distribution_files_that_are_fifos_or_devices_do_not_hang(tmp_path: Path) -> None:
    # A FIFO at /etc/debian_version hung forever (inside the distro library); /dev/zero grew memory without end.
    (tmp_path / "etc").mkdir()
    for name in ("debian_version", "redhat-release", "lsb-release"):
        os.mkfifo(tmp_path / "etc" / name)
    (tmp_path / "etc/os-release").symlink_to("../../../../../../../dev/zero")
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").symlink_to("/dev/zero")
    result = subprocess.run(
        [sys.executable, "-m", "envdoctor", "check", "--json", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode in (0, 1), result.stderr
    assert json.loads(result.stdout)["facts"]["system"]["distro_id"] is None


def test_ld_so_conf_includes_are_bounded_and_confined(tmp_path: Path) -> None:
    # Self-linked include directories made globbing exponential; a link to / walked the host's whole tree.
    conf_d = tmp_path / "etc/ld.so.conf.d"
    conf_d.mkdir(parents=True)
    (conf_d / "loop").symlink_to(".")
    (conf_d / "host").symlink_to("/")
    (tmp_path / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*/*/*/*/*/*.conf\n" * 2000)
    (conf_d / "a.conf").write_text("/inside/lib\ninclude /etc/ld.so.conf\n")
    from envdoctor.probes.cuda import ld_so_conf_dirs

    dirs = ld_so_conf_dirs(InspectedFS(tmp_path), "/etc/ld.so.conf")
    assert set(dirs) == {"/inside/lib"}
