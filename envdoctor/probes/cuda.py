"""CUDA toolkits, cuDNN, pip-installed NVIDIA wheels, and where the loader would find TensorFlow's CUDA libraries.

Only known paths are stat'ed or listed (no filesystem walk), so this stays in the low milliseconds. Under --root
every path is read inside the root, and symlinks are resolved inside it too (an absolute link such as
/usr/local/cuda -> /etc/alternatives/cuda must not escape to the host).
"""

from __future__ import annotations

import json
import os
import re
import time

from envdoctor.facts import (
    CudaToolkit,
    CudnnInstall,
    Facts,
    LibraryResolution,
    LoaderVia,
    NvidiaWheel,
    TensorflowFacts,
    VersionSource,
    WheelLayout,
)
from envdoctor.probes import InspectedFS, ProbeContext

NVCC_TIMEOUT = 3.0
MULTIARCH = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu", "ppc64le": "powerpc64le-linux-gnu"}
CUDNN_HEADERS = ("cudnn_version.h", "cudnn_version_v9.h", "cudnn_version_v8.h", "cudnn.h")
_TOOLKIT_NAME = re.compile(r"cuda(-\d+(\.\d+)*)?")
_VERSION_TXT = re.compile(r"CUDA Version\s+(\d+(?:\.\d+)+)")
_NVCC_RELEASE = re.compile(r"release (\d+\.\d+), V(\d+(?:\.\d+)+)")
_CUDA_H_VERSION = re.compile(r"^#define CUDA_VERSION (\d{4,6})\b", re.M)
_CUDART_FILE = re.compile(r"libcudart\.so\.(\d+\.\d+\.\d+)$")
_CUDNN_FILE = re.compile(r"libcudnn\.so\.(\d+(?:\.\d+)*)$")
_CUDNN_DEFINE = re.compile(r"^\s*#\s*define\s+CUDNN_(MAJOR|MINOR|PATCHLEVEL)\s+(\d+)", re.M)
_RECORD_LIB = re.compile(r"^(nvidia/(?:[^,/]+/)*lib)/lib[^,/]*\.so[^,/]*,", re.M)


def probe(ctx: ProbeContext, facts: Facts) -> None:
    fs = ctx.fs
    cuda = facts.cuda
    cuda.toolkits = find_toolkits(ctx, fs)
    site_dirs = facts.tensorflow.site_packages or _own_site_packages(ctx)
    cuda.nvidia_wheels = find_nvidia_wheels(fs, site_dirs)
    arch = facts.system.arch or facts.cpu.arch or (os.uname().machine if ctx.host else None)
    loader = loader_dirs(fs, arch)
    cuda.cudnn = find_cudnn(ctx, fs, cuda.toolkits, site_dirs, loader, arch)
    cuda.tf_libraries = resolve_tf_libraries(ctx, fs, facts.tensorflow, loader, cuda.toolkits, site_dirs)


# --- toolkits ---------------------------------------------------------------------------------------


def find_toolkits(ctx: ProbeContext, fs: InspectedFS) -> list[CudaToolkit]:
    """Every CUDA toolkit; a symlinked alias (/usr/local/cuda -> cuda-13.0) is the same install."""
    seen: dict[str, CudaToolkit] = {}

    def add(path: str | None, via: str) -> str | None:
        if not path or not path.startswith("/"):
            return None
        real = fs.realpath(path.rstrip("/") or "/")
        if not _looks_like_toolkit(fs, real):
            return None
        toolkit = seen.setdefault(real, CudaToolkit(path=real))
        if via not in toolkit.found_via:
            toolkit.found_via.append(via)
        return real

    for name in sorted(fs.listdir("/usr/local")):
        if _TOOLKIT_NAME.fullmatch(name):
            add(f"/usr/local/{name}", "/usr/local")
    add("/opt/cuda", "/opt/cuda")  # Arch Linux
    home = add(ctx.env.get("CUDA_HOME"), "CUDA_HOME")
    cuda_path = add(ctx.env.get("CUDA_PATH"), "CUDA_PATH")
    nvcc = _nvcc_on_path(ctx, fs)
    on_path = add(os.path.dirname(os.path.dirname(nvcc)), "PATH") if nvcc else None
    conda = ctx.env.get("CONDA_PREFIX")
    if conda and (fs.exists(f"{conda}/bin/nvcc") or fs.exists(f"{conda}/version.json")):
        add(conda, "conda")
    usr_local_cuda = fs.realpath("/usr/local/cuda")
    default = usr_local_cuda if usr_local_cuda in seen else None
    # What a build picks up: the nvcc on PATH, else CUDA_HOME / CUDA_PATH, else the /usr/local/cuda default.
    active = on_path or home or cuda_path or default
    for toolkit in seen.values():
        toolkit.active = toolkit.path == active
        toolkit.nvcc = f"{toolkit.path}/bin/nvcc" if fs.exists(f"{toolkit.path}/bin/nvcc") else None
        toolkit.version, toolkit.version_source = toolkit_version(ctx, fs, toolkit)
    return sorted(seen.values(), key=lambda t: t.path)


def _looks_like_toolkit(fs: InspectedFS, path: str) -> bool:
    # bin/nvcc alone is not enough (/usr/local/bin may hold a wrapper script); nvcc needs nvvm/ beside bin/.
    # A runtime-only image has targets/ but no nvcc; CUDA <= 11.0 has version.txt.
    return bool(fs.listdir(path) & {"version.json", "version.txt", "targets", "nvvm"})


def _nvcc_on_path(ctx: ProbeContext, fs: InspectedFS) -> str | None:
    """The real nvcc the first PATH entry holding one runs: symlinks followed, small wrapper scripts read."""
    for entry in ctx.env.get("PATH", "").split(os.pathsep):
        if entry.startswith("/") and "nvcc" in fs.listdir(entry):
            nvcc = fs.realpath(f"{entry}/nvcc")
            if _looks_like_toolkit(fs, os.path.dirname(os.path.dirname(nvcc))):
                return nvcc
            script = fs.read_text(nvcc, limit=4096) or ""  # e.g. `exec /usr/local/cuda-13.0/bin/nvcc "$@"`
            match = re.search(r"(/[^\s'\"]+)/bin/nvcc\b", script) if script.startswith("#!") else None
            return fs.realpath(f"{match.group(1)}/bin/nvcc") if match else nvcc
    return None


def toolkit_version(
    ctx: ProbeContext, fs: InspectedFS, toolkit: CudaToolkit
) -> tuple[str | None, VersionSource | None]:
    """version.json, version.txt (CUDA <= 11.0), libcudart's file name, cuda.h, then `nvcc --version` (host)."""
    version = parse_version_json(fs.read_text(f"{toolkit.path}/version.json") or "")
    if version:
        return version, "version.json"
    version = parse_version_txt(fs.read_text(f"{toolkit.path}/version.txt", limit=4096) or "")
    if version:
        return version, "version.txt"
    for lib_dir in _toolkit_lib_dirs(fs, toolkit.path):
        for name in sorted(n for n in fs.listdir(lib_dir) if n.startswith("libcudart.so.")):
            match = _CUDART_FILE.match(name)
            if match:  # apt layout (no version.json): libcudart.so.13.0.96
                return match.group(1), "libcudart"
    # cuda.h's CUDA_VERSION (13000 -> "13.0") sits in its first few KB: cheaper than starting nvcc.
    match = _CUDA_H_VERSION.search(fs.read_text(f"{toolkit.path}/include/cuda.h", limit=1 << 16) or "")
    if match:
        return f"{int(match.group(1)) // 1000}.{int(match.group(1)) % 1000 // 10}", "cuda.h"
    if toolkit.nvcc and ctx.host:
        result = ctx.run([toolkit.nvcc, "--version"], timeout=min(ctx.command_timeout, NVCC_TIMEOUT))
        version = parse_nvcc_version(result.stdout) if result.ok else None
        if version:
            return version, "nvcc"
    return None, None


def parse_version_json(text: str) -> str | None:
    """{"cuda": {"version": "12.4.1"}} -> "12.4.1"."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    cuda = data.get("cuda") if isinstance(data, dict) else None
    version = cuda.get("version") if isinstance(cuda, dict) else None
    return version if isinstance(version, str) and re.fullmatch(r"\d+(\.\d+)+", version) else None


def parse_version_txt(text: str) -> str | None:
    """'CUDA Version 11.0.228' -> '11.0.228'."""
    match = _VERSION_TXT.search(text)
    return match.group(1) if match else None


def parse_nvcc_version(text: str) -> str | None:
    """'Cuda compilation tools, release 13.0, V13.0.88' -> '13.0.88'."""
    match = _NVCC_RELEASE.search(text)
    return match.group(2) if match else None


def _toolkit_lib_dirs(fs: InspectedFS, path: str) -> list[str]:
    dirs = [f"{path}/lib64", f"{path}/lib"]
    dirs += [f"{path}/targets/{t}/lib" for t in sorted(fs.listdir(f"{path}/targets"))]
    return [d for d in dirs if fs.listdir(d)]


# --- pip wheels ------------------------------------------------------------------------------------


def _own_site_packages(ctx: ProbeContext) -> list[str]:
    """This interpreter's site-packages, when the tensorflow probe left none (host, no --python)."""
    if not ctx.host or ctx.python:
        return []
    import sysconfig

    return sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def find_nvidia_wheels(fs: InspectedFS, site_dirs: list[str]) -> list[NvidiaWheel]:
    """nvidia-* distributions (CUDA libraries from PyPI) with their versions and library directories."""
    wheels = []
    for site in site_dirs:
        for entry in sorted(e for e in fs.listdir(site) if e.startswith("nvidia_") and e.endswith(".dist-info")):
            name, _, version = entry[: -len(".dist-info")].partition("-")
            dist = name.replace("_", "-").lower()
            if dist in ("nvidia-ml-py", "nvidia-pyindex"):  # Python packages, not CUDA libraries
                continue
            lib_dir = _wheel_lib_dir(fs, site, entry)
            layout: WheelLayout | None = None
            if lib_dir is not None:
                layout = "cu13" if "/nvidia/cu13/" in lib_dir + "/" else "cu12"
            wheels.append(NvidiaWheel(dist, version or None, lib_dir, layout))
    return wheels


def _wheel_lib_dir(fs: InspectedFS, site: str, dist_info: str) -> str | None:
    """The nvidia/…/lib directory a wheel installed, read from its RECORD."""
    record = fs.read_text(f"{site}/{dist_info}/RECORD") or ""
    match = _RECORD_LIB.search(record)
    return f"{site}/{match.group(1)}" if match else None


def wheel_lib_dirs(fs: InspectedFS, site: str) -> list[str]:
    """site-packages/nvidia/*/lib (CUDA 12 layout) and nvidia/cu13/lib (CUDA 13 layout)."""
    dirs = [f"{site}/nvidia/{name}/lib" for name in sorted(fs.listdir(f"{site}/nvidia"))]
    return [d for d in dirs if fs.listdir(d)]


# --- cuDNN ------------------------------------------------------------------------------------------


def find_cudnn(
    ctx: ProbeContext,
    fs: InspectedFS,
    toolkits: list[CudaToolkit],
    site_dirs: list[str],
    loader: list[tuple[str, LoaderVia]],
    arch: str | None,
) -> list[CudnnInstall]:
    """cuDNN headers (system, toolkits, conda), pip wheels, and libcudnn.so.X.Y.Z files on the loader path."""
    found: list[CudnnInstall] = []
    include_dirs = ["/usr/include", "/usr/local/include"]
    if arch in MULTIARCH:
        include_dirs.append(f"/usr/include/{MULTIARCH[arch]}")
    include_dirs += [f"{t.path}/include" for t in toolkits]
    if ctx.env.get("CONDA_PREFIX"):
        include_dirs.append(f"{ctx.env['CONDA_PREFIX']}/include")
    seen: set[tuple[str, str | None]] = set()
    for directory in include_dirs:
        for install in _cudnn_headers(ctx, fs, directory):
            key = (os.path.dirname(fs.realpath(install.path)), install.version)
            if key not in seen:  # cudnn_version.h and its cudnn_version_v9.h alternative are one install
                seen.add(key)
                found.append(install)
    for site in site_dirs:
        if fs.listdir(f"{site}/nvidia/cudnn"):
            headers = _cudnn_headers(ctx, fs, f"{site}/nvidia/cudnn/include")
            version = headers[0].version if headers else _dist_version(fs, site, "nvidia_cudnn")
            found.append(CudnnInstall(f"{site}/nvidia/cudnn", version, "wheel"))
    lib_dirs = [d for d, _ in loader] + [d for t in toolkits for d in _toolkit_lib_dirs(fs, t.path)]
    for directory in dict.fromkeys(fs.realpath(d) for d in lib_dirs):
        for name in sorted(n for n in fs.listdir(directory) if n.startswith("libcudnn.so.")):  # filter, then sort
            match = _CUDNN_FILE.match(name)
            if match and match.group(1).count(".") == 2:  # the real file, libcudnn.so.9.14.0
                found.append(CudnnInstall(f"{directory}/{name}", match.group(1), "soname"))
    return found


def _cudnn_headers(ctx: ProbeContext, fs: InspectedFS, directory: str) -> list[CudnnInstall]:
    names = fs.listdir(directory)
    installs = []
    for header in CUDNN_HEADERS:
        if header in names:
            version = parse_cudnn_header(fs.read_text(f"{directory}/{header}") or "")
            if version:
                installs.append(CudnnInstall(f"{directory}/{header}", version, "header"))
    return installs[:1] if installs and installs[0].path.endswith("/cudnn_version.h") else installs


def parse_cudnn_header(text: str) -> str | None:
    """'#define CUDNN_MAJOR 9' / MINOR / PATCHLEVEL -> '9.14.0'."""
    parts = dict(_CUDNN_DEFINE.findall(text))
    if "MAJOR" not in parts:
        return None
    return ".".join(str(int(parts[k])) for k in ("MAJOR", "MINOR", "PATCHLEVEL") if k in parts)


def _dist_version(fs: InspectedFS, site: str, prefix: str) -> str | None:
    for entry in sorted(fs.listdir(site)):
        if entry.startswith(prefix) and entry.endswith(".dist-info"):
            return entry[: -len(".dist-info")].partition("-")[2] or None
    return None


# --- the loader's view ------------------------------------------------------------------------------


def loader_dirs(fs: InspectedFS, arch: str | None) -> list[tuple[str, LoaderVia]]:
    """Directories ld.so searches without LD_LIBRARY_PATH: /etc/ld.so.conf (what ldconfig caches), then defaults.

    Parsing the conf files instead of running `ldconfig -p` works under --root; a directory listed there but
    never cached (ldconfig not re-run) is counted as found, the one case where this is optimistic."""
    dirs = list(dict.fromkeys(ld_so_conf_dirs(fs, "/etc/ld.so.conf")))[:MAX_LOADER_DIRS]
    # An unknown arch (a --root tree without /proc/cpuinfo): every multiarch directory; a real tree has one.
    triplets = [MULTIARCH[arch]] if arch in MULTIARCH else list(MULTIARCH.values())
    defaults = [d for t in triplets for d in (f"/lib/{t}", f"/usr/lib/{t}")]
    defaults += ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    return [(d, "ld.so.cache") for d in dict.fromkeys(dirs + defaults)]


# ld.so.conf includes: ldconfig follows any depth, but a real system nests one level (ld.so.conf.d/*.conf).
# The bounds keep a hostile tree (includes of includes, self-linked directories) from costing more than a moment.
MAX_CONF_DEPTH = 8
MAX_CONF_FILES = 256
MAX_CONF_BYTES = 64 << 10  # per file; Debian's whole ld.so.conf.d is under 1 kB
MAX_LOADER_DIRS = 512
CONF_SECONDS = 1.0


def ld_so_conf_dirs(
    fs: InspectedFS, conf: str, seen: set[str] | None = None, depth: int = 0, deadline: float | None = None
) -> list[str]:
    """Library directories named by an ld.so.conf file, following `include` globs (relative to the file).

    Each file is read once (a conf.d file that includes its own directory would otherwise recurse without end),
    at most MAX_CONF_FILES files in all, MAX_CONF_DEPTH includes deep, for CONF_SECONDS at most."""
    seen = set() if seen is None else seen
    deadline = time.monotonic() + CONF_SECONDS if deadline is None else deadline
    dirs: list[str] = []
    real = fs.realpath(conf)
    if real in seen or len(seen) >= MAX_CONF_FILES or depth > MAX_CONF_DEPTH or time.monotonic() > deadline:
        return dirs
    seen.add(real)
    for raw in (fs.read_text(conf, limit=MAX_CONF_BYTES) or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("hwcap "):
            continue
        if line.startswith("include ") or line.startswith("include\t"):
            for pattern in line.split()[1:]:
                pattern = pattern if pattern.startswith("/") else os.path.join(os.path.dirname(conf), pattern)
                for path in fs.glob(pattern):
                    dirs += ld_so_conf_dirs(fs, path, seen, depth + 1, deadline)
            continue
        dirs += [d.split("=", 1)[0] for d in re.split(r"[\s:,]+", line) if d.startswith("/")]
    return dirs


def tf_sonames(tf: TensorflowFacts) -> list[tuple[str, str]]:
    """(name, soname) for each CUDA library the installed TensorFlow build loads; [] for a CPU build."""
    info = tf.build_info
    if info is None or not info.is_cuda_build:
        return []
    from envdoctor.resources import load_recipe

    table = load_recipe("cuda_libraries.json")
    cuda_major = _major(info.cuda_version)
    cudnn_major = _major(info.cudnn_version)
    libs = list(table["cuda"].get(cuda_major or "", {}).items())
    if cudnn_major in table["cudnn"]:
        libs.append(("cudnn", table["cudnn"][cudnn_major]))
    return libs + list(table["driver"].items())


def _major(version: str | None) -> str | None:
    match = re.match(r"\s*(\d+)", version or "")
    return match.group(1) if match else None


def resolve_tf_libraries(
    ctx: ProbeContext,
    fs: InspectedFS,
    tf: TensorflowFacts,
    loader: list[tuple[str, LoaderVia]],
    toolkits: list[CudaToolkit],
    site_dirs: list[str],
) -> list[LibraryResolution]:
    """Find each library as ld.so would for TensorFlow: LD_LIBRARY_PATH, TF's rpath, ld.so.cache, defaults."""
    sonames = tf_sonames(tf)
    if not sonames:
        return []
    search: list[tuple[str, LoaderVia]] = [
        (d, "LD_LIBRARY_PATH") for d in ctx.env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d.startswith("/")
    ]
    if tf.location:  # TF >= 2.14 wheels carry rpath $ORIGIN/../nvidia/<lib>/lib for the pip CUDA wheels
        search += [(d, "rpath") for d in wheel_lib_dirs(fs, os.path.dirname(tf.location.rstrip("/")))]
    prefix = conda_prefix_of(fs, tf.location)
    if prefix and any(n.startswith(("tensorflow-base-", "tensorflow-2")) for n in fs.listdir(f"{prefix}/conda-meta")):
        search.append((f"{prefix}/lib", "rpath"))  # conda's own TensorFlow build links against the env's lib/
    search += loader
    searched = {fs.realpath(d) for d, _ in search}
    elsewhere = [d for t in toolkits for d in _toolkit_lib_dirs(fs, t.path)]
    elsewhere += [d for site in site_dirs for d in wheel_lib_dirs(fs, site)]
    elsewhere += ["/usr/lib/wsl/lib"]
    if ctx.env.get("CONDA_PREFIX"):
        elsewhere.append(f"{ctx.env['CONDA_PREFIX']}/lib")
    prefix = conda_prefix_of(fs, tf.location)
    if prefix:  # conda's cudatoolkit/cudnn packages put the libraries in the env's lib/, which ld.so never searches
        elsewhere.append(f"{prefix}/lib")
    off_path = [d for d in dict.fromkeys(fs.realpath(d) for d in elsewhere) if d not in searched]
    return [_resolve(fs, name, soname, search, off_path) for name, soname in sonames]


def conda_prefix_of(fs: InspectedFS, location: str | None) -> str | None:
    """The conda environment a package directory belongs to (<prefix>/lib/pythonX.Y/site-packages/...)."""
    if not location or "/lib/python" not in location:
        return None
    prefix = location.rsplit("/lib/python", 1)[0]
    return prefix if fs.isdir(f"{prefix}/conda-meta") else None


def _resolve(
    fs: InspectedFS, name: str, soname: str, search: list[tuple[str, LoaderVia]], off_path: list[str]
) -> LibraryResolution:
    """The first search directory holding the soname wins; copies elsewhere on disk are the candidates."""
    candidates = [f"{d}/{soname}" for d in off_path if soname in fs.listdir(d)]
    for directory, via in search:
        if soname in fs.listdir(directory):
            return LibraryResolution(name, soname, "found", f"{directory}/{soname}", via, candidates)
    return LibraryResolution(name, soname, "off_loader_path" if candidates else "missing", None, None, candidates)
