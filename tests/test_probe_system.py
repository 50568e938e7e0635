"""System probe on fake roots (tests/fixtures/os-release/README.md) and on this host."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.facts import Facts
from envdoctor.probes import ProbeContext
from envdoctor.probes.system import (
    container_kind,
    glibc_from_root,
    meminfo,
    package_manager,
    probe,
    python_env,
    wsl_version,
)

FIXTURES = Path(__file__).parent / "fixtures"
OS_RELEASE = FIXTURES / "os-release"
H100_ROOT = FIXTURES / "h100-firecracker" / "idle" / "root"
REAL_MEMINFO = FIXTURES / "proc/meminfo-desktop-64g.txt"  # origin: tests/fixtures/proc/README.md


def _probe(root: Path, env: dict[str, str] | None = None) -> Facts:
    facts = Facts()
    probe(ProbeContext(root=root, env=env or {}), facts)
    return facts


@pytest.mark.parametrize(
    ("root", "distro_id", "version", "like", "manager"),
    [
        ("ubuntu-24.04", "ubuntu", "24.04", ["debian"], "apt"),
        ("debian-13", "debian", "13", [], "apt"),
        ("rocky-9.3", "rocky", "9.3", ["rhel", "centos", "fedora"], "dnf"),  # only usr/lib/os-release
        ("fedora-42", "fedora", "42", [], "dnf"),
        ("amazon-linux-2023", "amzn", "2023", ["fedora"], "dnf"),
        ("alpine-3.23", "alpine", "3.23.2", [], None),  # apk is not one envdoctor writes commands for
    ],
)
def test_distro_under_root(root: str, distro_id: str, version: str, like: list[str], manager: str | None) -> None:
    s = _probe(OS_RELEASE / root).system
    assert (s.distro_id, s.distro_version, s.distro_like, s.package_manager) == (distro_id, version, like, manager)
    assert s.distro_name and s.os == "Linux"
    # Under --root nothing about the host leaks in.
    assert s.python_executable is None and s.user is None and s.home is None and s.glibc is None


@pytest.mark.parametrize(
    ("distro_id", "version", "like", "expected"),
    [
        ("centos", "7", ["rhel", "fedora"], "yum"),
        ("rhel", "8.10", ["fedora"], "dnf"),
        ("amzn", "2", ["centos", "rhel", "fedora"], "yum"),
        ("linuxmint", "22", ["ubuntu", "debian"], "apt"),
        ("opensuse-leap", "15.6", ["suse", "opensuse"], "zypper"),
        ("manjaro", None, ["arch"], "pacman"),
        ("somethingnew", "1", ["debian"], "apt"),  # unknown distribution, known family
        (None, None, [], None),
    ],
)
def test_package_manager(distro_id: str | None, version: str | None, like: list[str], expected: str | None) -> None:
    assert package_manager(distro_id, version, like) == expected


def test_h100_capture_root() -> None:
    s = _probe(H100_ROOT).system
    assert s.kernel == "6.18.44-fc-v657-gpu"
    assert s.arch == "x86_64"  # from the capture's cpuinfo, not this host
    assert s.wsl is None and s.container is None  # a Firecracker VM; its cgroup is "0::/process_api/core"
    assert s.memory_total_bytes == 131981020 * 1024


@pytest.mark.parametrize(
    ("osrelease", "proc_version", "expected"),
    [
        # Real strings quoted in public projects' tests (see README): WSL2 5.15 and 4.19 kernels, WSL1's fake kernel.
        (
            "5.15.153.1-microsoft-standard-WSL2",
            "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1)",
            2,
        ),
        ("4.19.128-microsoft-standard", None, 2),
        ("4.4.0-19041-Microsoft", "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com) #1237-Microsoft", 1),
        ("6.18.44-fc-v657-gpu", "Linux version 6.18.44-fc-v657-gpu (builder@sandboxing)", None),
        (None, None, None),
    ],
)
def test_wsl_version(osrelease: str | None, proc_version: str | None, expected: int | None) -> None:
    assert wsl_version(osrelease, proc_version) == expected


def test_wsl2_root(tmp_path: Path) -> None:
    shutil.copytree(OS_RELEASE / "ubuntu-24.04", tmp_path, dirs_exist_ok=True)
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("5.15.153.1-microsoft-standard-WSL2\n")
    assert _probe(tmp_path).system.wsl == 2


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({".dockerenv": ""}, "docker"),
        ({"run/.containerenv": 'engine="podman-4.9.3"\n'}, "podman"),
        ({"proc/1/cgroup": "12:pids:/kubepods/besteffort/pod1f/0a9c\n"}, "kubernetes"),
        ({"proc/1/cgroup": "11:memory:/docker/4f5ac3c0f8d1\n"}, "docker"),
        ({"run/systemd/container": "lxc\n"}, "container"),
        ({"proc/1/cgroup": "0::/\n"}, None),  # cgroup v2 hides the runtime
    ],
)
def test_container_kind(tmp_path: Path, files: dict[str, str], expected: str | None) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert container_kind(ProbeContext(root=tmp_path, env={})) == expected


def test_kubernetes_env_counts_only_on_the_host() -> None:
    assert container_kind(ProbeContext(env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"})) == "kubernetes"


def test_meminfo_real_file() -> None:
    text = REAL_MEMINFO.read_text()
    total, available = meminfo(text)
    assert total and available and 0 < available <= total
    assert meminfo("garbage\nMemTotal: lots") == (None, None)


def test_glibc_from_root_file_name_and_banner(tmp_path: Path) -> None:
    old = tmp_path / "old"
    (old / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (old / "lib/x86_64-linux-gnu/libc-2.31.so").write_bytes(b"\x7fELF")  # Ubuntu 20.04 layout
    assert glibc_from_root(ProbeContext(root=old)) == ("2.31", "x86_64")
    new = tmp_path / "new"
    (new / "lib/aarch64-linux-gnu").mkdir(parents=True)
    banner = b"\x7fELF\x00GNU C Library (Ubuntu GLIBC 2.39-0ubuntu8.4) stable release version 2.39.\n\x00"
    (new / "lib/aarch64-linux-gnu/libc.so.6").write_bytes(banner)
    assert glibc_from_root(ProbeContext(root=new)) == ("2.39", "aarch64")
    assert glibc_from_root(ProbeContext(root=tmp_path / "empty")) == (None, None)


def test_real_libc_banner_on_this_host() -> None:
    # This host's own libc.so.6 read as if it were a mounted image: the banner agrees with confstr.
    libc_dirs = [d for d in ("/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu") if Path(d, "libc.so.6").exists()]
    if not libc_dirs or not hasattr(os, "confstr"):
        pytest.skip("no glibc here")
    version, _ = glibc_from_root(ProbeContext(root=Path("/"), env={}))
    assert version == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]


def test_python_env(tmp_path: Path) -> None:
    assert python_env("/work/venv", "/usr") == "venv"
    (tmp_path / "conda-meta").mkdir()
    assert python_env(str(tmp_path), str(tmp_path)) == "conda"
    assert python_env("/usr", "/usr") == "system"


def test_this_host() -> None:
    s = _probe(Path("/"), env=dict(os.environ)).system
    assert s.python_executable == sys.executable
    assert s.python_version and s.python_version.startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert s.arch and s.hostname
    if sys.platform.startswith("linux"):
        assert s.kernel and s.memory_total_bytes and s.distro_id
    assert s.python_env == ("venv" if sys.prefix != sys.base_prefix else s.python_env)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_os_release_never_raises(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    root = tmp_path_factory.mktemp("root")
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text(text, encoding="utf-8", errors="surrogateescape")
    (root / "proc").mkdir()
    (root / "proc/meminfo").write_text(text, encoding="utf-8", errors="surrogateescape")
    s = _probe(root).system
    assert s.package_manager in (None, "apt", "dnf", "yum", "zypper", "pacman")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(p.name for p in OS_RELEASE.iterdir() if p.is_dir())), st.floats(0, 1))
def test_truncated_os_release_never_raises(
    tmp_path_factory: pytest.TempPathFactory, name: str, fraction: float
) -> None:
    root = tmp_path_factory.mktemp("root")
    shutil.copytree(OS_RELEASE / name, root, dirs_exist_ok=True)
    for path in root.rglob("*release"):
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
    _probe(root)


def test_os_release_the_distro_library_rejects_is_read_leniently(tmp_path: Path) -> None:
    # Hypothesis found it: distro's shlex raises "No closing quotation" on a stray quote.
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('NAME="Ubuntu\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n')
    s = _probe(tmp_path).system
    assert (s.distro_id, s.distro_version, s.distro_like, s.package_manager) == ("ubuntu", "22.04", ["debian"], "apt")
