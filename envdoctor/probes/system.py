"""System facts: distribution, package manager, kernel, glibc, architecture, Python, container, WSL, memory."""

from __future__ import annotations

import os
import platform
import re
import sys
import typing
from pathlib import Path

from envdoctor.facts import ContainerKind, Facts, PackageManager, PythonEnv, SystemFacts, WslVersion
from envdoctor.probes import ProbeContext
from envdoctor.resources import load_recipe

# Directories where a distribution keeps its C library, searched under --root.
_LIBC_DIRS = ("/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib")
_LIBC_ARCH = {"x86_64-linux-gnu": "x86_64", "aarch64-linux-gnu": "aarch64"}


def probe(ctx: ProbeContext, facts: Facts) -> None:
    s = facts.system
    s.os = platform.system() if ctx.host else "Linux"
    _distro(ctx, s)
    s.package_manager = package_manager(s.distro_id, s.distro_version, s.distro_like)
    osrelease = _first_line(ctx.read_text("/proc/sys/kernel/osrelease", limit=4096))
    if osrelease is None and ctx.host:
        osrelease = platform.release() or None  # no /proc (macOS, Windows)
    s.kernel = osrelease
    s.wsl = wsl_version(osrelease, ctx.read_text("/proc/version", limit=4096))
    s.container = container_kind(ctx)
    s.container_engines = [n for n in CONTAINER_ENGINES if any(ctx.fs.exists(f"{d}/{n}") for d in _ENGINE_DIRS)]
    s.memory_total_bytes, s.memory_available_bytes = meminfo(ctx.read_text("/proc/meminfo", limit=65536))
    if ctx.host:
        _host_only(ctx, s)
    else:
        _root_only(ctx, s)


def _distro(ctx: ProbeContext, s: SystemFacts) -> None:
    """The distribution from os-release (os-release(5): /etc first, then /usr/lib), else an old *-release file.

    Read through the probes' own confined reader, never a library that opens files itself: under --root such a
    library follows an absolute link out of the root, and blocks on a FIFO."""
    values = parse_os_release(ctx.read_text("/etc/os-release", limit=65536) or "")
    if not values:
        values = parse_os_release(ctx.read_text("/usr/lib/os-release", limit=65536) or "")
    if not values:
        values = _release_file(ctx)
    s.distro_id = values.get("ID", "").lower() or None
    s.distro_version = values.get("VERSION_ID") or None
    s.distro_name = values.get("PRETTY_NAME") or values.get("NAME") or None
    s.distro_like = values.get("ID_LIKE", "").lower().split()


_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of an os-release file, values unquoted as its shell-like syntax says.

    Lenient where a real file is broken (an unclosed quote keeps the rest of the line), since the distribution's
    name is worth more than the strictness."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.fullmatch(line.strip())
        if match:
            values[match.group(1)] = _unquote(match.group(2).strip())
    return values


def _unquote(raw: str) -> str:
    if not raw or raw[0] not in "\"'":
        return raw
    quote, out, escaped = raw[0], [], False
    for char in raw[1:]:
        if escaped:
            out.append(char if char in '$"`\\' else "\\" + char)  # os-release(5) escapes only these
            escaped = False
        elif char == "\\" and quote == '"':
            escaped = True
        elif char == quote:
            break
        else:
            out.append(char)
    return "".join(out).strip()


# Distributions older than os-release (CentOS 6, RHEL 6) name themselves in one line: "CentOS release 6.10 (Final)".
_RELEASE_FILES = ("/etc/redhat-release", "/etc/centos-release", "/etc/system-release")
_RELEASE_LINE = re.compile(r"(?P<name>.+?) (?:Linux )?release (?P<version>\d[\w.]*)")
_RELEASE_IDS = {
    "centos": "centos",
    "red": "rhel",
    "rocky": "rocky",
    "almalinux": "almalinux",
    "fedora": "fedora",
    "oracle": "ol",
    "amazon": "amzn",
    "scientific": "scientific",
}


def _release_file(ctx: ProbeContext) -> dict[str, str]:
    for path in _RELEASE_FILES:
        line = _first_line(ctx.read_text(path, limit=4096))
        match = _RELEASE_LINE.match(line or "")
        if match:
            distro_id = _RELEASE_IDS.get(match.group("name").split()[0].lower(), "")
            return {"ID": distro_id, "VERSION_ID": match.group("version"), "PRETTY_NAME": line or ""}
    debian = _first_line(ctx.read_text("/etc/debian_version", limit=4096))
    return {"ID": "debian", "VERSION_ID": debian, "PRETTY_NAME": f"Debian GNU/Linux {debian}"} if debian else {}


def package_manager(distro_id: str | None, version: str | None, like: list[str]) -> PackageManager | None:
    """apt | dnf | yum | zypper | pacman for the distribution or the family it is like; None if unknown."""
    recipe = load_recipe("package_managers.json")
    ids = [i for i in [distro_id, *like] if i]
    major = _major(version)
    for rule in recipe["older"]:
        if distro_id in rule["ids"] and major is not None and major < rule["version_below"]:
            return typing.cast(PackageManager, rule["manager"])  # the recipe's schema lists the managers
    for candidate in ids:
        for family in recipe["families"]:
            if candidate in family["ids"]:
                return typing.cast(PackageManager, family["manager"])
    return None


def _major(version: str | None) -> int | None:
    match = re.match(r"\d+", version or "")
    return int(match.group()) if match else None


def wsl_version(osrelease: str | None, proc_version: str | None) -> WslVersion | None:
    """1 or 2 under Windows Subsystem for Linux, else None.

    WSL2 kernels are named like 5.15.153.1-microsoft-standard-WSL2 (older: 4.19.128-microsoft-standard);
    WSL1 reports a fake 4.4.0-19041-Microsoft.
    """
    text = " ".join(t for t in (osrelease, proc_version) if t).lower()
    if "microsoft" not in text:
        return None
    return 2 if "wsl2" in text or "microsoft-standard" in text else 1


CONTAINER_ENGINES = ("docker", "podman")
_ENGINE_DIRS = ("/usr/bin", "/usr/local/bin", "/bin")


def container_kind(ctx: ProbeContext) -> ContainerKind | None:
    """docker | podman | kubernetes | container (some other runtime) | None."""
    if ctx.host and "KUBERNETES_SERVICE_HOST" in ctx.env:
        return "kubernetes"
    if ctx.fs.exists("/.dockerenv"):
        return "docker"
    if ctx.fs.exists("/run/.containerenv"):
        return "podman"
    # systemd-detect-virt writes the runtime's name here; cgroup v1 paths name it too (v2 shows only "0::/").
    marker = (ctx.read_text("/run/systemd/container", limit=256) or "").strip().lower()
    cgroup = (ctx.read_text("/proc/1/cgroup", limit=65536) or "").lower()
    runtimes: tuple[tuple[str, ContainerKind], ...] = (
        ("kubepods", "kubernetes"),
        ("docker", "docker"),
        ("libpod", "podman"),
        ("podman", "podman"),
    )
    for needle, kind in runtimes:
        if needle in marker or needle in cgroup:
            return kind
    if marker or any(n in cgroup for n in ("containerd", "/lxc", "crio")):
        return "container"
    return None


def meminfo(text: str | None) -> tuple[int | None, int | None]:
    """(MemTotal, MemAvailable) in bytes from /proc/meminfo (which counts kB)."""
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        match = re.match(r"(MemTotal|MemAvailable):\s*(\d+)\s*kB", line)
        if match:
            values[match.group(1)] = int(match.group(2)) * 1024
    return values.get("MemTotal"), values.get("MemAvailable")


def _host_only(ctx: ProbeContext, s: SystemFacts) -> None:
    s.arch = platform.machine() or None
    s.glibc = _confstr_glibc()
    s.python_version = platform.python_version()
    s.python_executable = sys.executable or None
    s.python_env = python_env(sys.prefix, sys.base_prefix)
    s.hostname = platform.node() or None
    s.user = _user(ctx)
    s.home = ctx.env.get("HOME") or _expand_home()


def _root_only(ctx: ProbeContext, s: SystemFacts) -> None:
    from envdoctor.probes.cpu import arch_from_cpuinfo

    cpuinfo = ctx.read_text("/proc/cpuinfo")
    s.glibc, libc_arch = glibc_from_root(ctx)
    s.arch = (arch_from_cpuinfo(cpuinfo) if cpuinfo else None) or libc_arch
    s.hostname = _first_line(ctx.read_text("/etc/hostname", limit=256))


def python_env(prefix: str, base_prefix: str) -> PythonEnv:
    """venv | conda | system for an interpreter with these sys.prefix / sys.base_prefix."""
    if prefix != base_prefix:
        return "venv"
    if Path(prefix, "conda-meta").is_dir():
        return "conda"
    return "system"


def _confstr_glibc() -> str | None:
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.36"; absent on musl and non-Linux
    except (AttributeError, ValueError, OSError):
        return None
    return value.split()[-1] if value and value.startswith("glibc") else None


def glibc_from_root(ctx: ProbeContext) -> tuple[str | None, str | None]:
    """(glibc version, arch) from the C library's file name under --root: libc-2.31.so (glibc < 2.34).

    From glibc 2.34 on only libc.so.6 exists; its version banner is read from the binary instead.
    """
    for directory in _LIBC_DIRS:
        arch = _LIBC_ARCH.get(os.path.basename(directory))
        names = sorted(ctx.fs.listdir(directory))
        for name in names:
            match = re.fullmatch(r"libc-(\d+\.\d+)\.so", name)
            if match:
                return match.group(1), arch
        if "libc.so.6" in names:
            return _libc_banner(ctx.fs.read_bytes(f"{directory}/libc.so.6", 8 << 20)), arch
    return None, None


def _libc_banner(data: bytes | None) -> str | None:
    # glibc embeds "GNU C Library (...) stable release version 2.39." in libc.so.6.
    if data is None:
        return None
    match = re.search(rb"GNU C Library[^\n\x00]*?release version (\d+\.\d+)", data)
    return match.group(1).decode() if match else None


def _user(ctx: ProbeContext) -> str | None:
    for name in ("USER", "LOGNAME"):
        if ctx.env.get(name):
            return ctx.env[name]
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, OSError):
        return None


def _expand_home() -> str | None:
    home = os.path.expanduser("~")
    return home if home != "~" else None


def _first_line(text: str | None) -> str | None:
    line = (text or "").strip().splitlines()
    return line[0].strip() if line else None
