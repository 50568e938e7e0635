"""TensorFlow facts WITHOUT importing TensorFlow: installed distributions, version, build info, neighbours.

Distributions are found from the *.dist-info / *.egg-info directory names on the interpreter's import path;
only the METADATA of those that matter is read. build_info.py is parsed with `ast`. Paths in the facts are
those of the inspected system (under --root: without the root prefix; read them through ctx.fs).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envdoctor.facts import Facts, PythonEnv, PythonPackage, TensorflowFacts, TfBuildInfo
from envdoctor.knowledge.names import dist_name
from envdoctor.probes import ProbeContext
from envdoctor.resources import load_recipe

BUILD_INFO = "tensorflow/python/platform/build_info.py"
PYTHON_TIMEOUT = 10.0

# Run by the inspected interpreter (--python): self-contained, no envdoctor import, JSON on stdout.
INTERPRETER_SCRIPT = """\
import json, os, sys, sysconfig
paths = sysconfig.get_paths()
print(json.dumps({
    "version": "%d.%d.%d" % tuple(sys.version_info[:3]),
    "executable": sys.executable,
    "path": [p for p in sys.path if p],
    "stdlib": [paths.get("stdlib"), paths.get("platstdlib")],
    "prefix": [sys.prefix, sys.base_prefix],
    "marker": os.path.isfile(os.path.join(paths.get("stdlib") or "", "EXTERNALLY-MANAGED")),
}))
"""

# Where a mounted image keeps its Python packages (--root without --python).
ROOT_SITE_GLOBS = (
    "usr/lib/python3/dist-packages",
    "usr/lib/python3*/site-packages",
    "usr/lib/python3*/dist-packages",
    "usr/lib64/python3*/site-packages",
    "usr/local/lib/python3*/site-packages",
    "usr/local/lib/python3*/dist-packages",
    "opt/conda/lib/python3*/site-packages",
    "opt/*/lib/python3*/site-packages",
    "opt/*/.venv/lib/python3*/site-packages",
    "opt/*/venv/lib/python3*/site-packages",
    "opt/conda/envs/*/lib/python3*/site-packages",
    ".venv/lib/python3*/site-packages",  # a project's venv at the image's root or one level down (/app/.venv)
    "*/.venv/lib/python3*/site-packages",
    # Users' own environments: ~/.local (pip --user), venvs in the home directory, conda installs and their envs.
    "root/.local/lib/python3*/site-packages",
    "home/*/.local/lib/python3*/site-packages",
    "home/*/*/lib/python3*/site-packages",
    "home/*/.venv/lib/python3*/site-packages",
    "home/*/*/envs/*/lib/python3*/site-packages",
)


@dataclass
class Interpreter:
    """The inspected interpreter: its version and the directories it imports packages from."""

    executable: str | None
    version: str | None
    site_packages: list[str]  # in import order; inspected-system paths
    env: PythonEnv | None = None
    externally_managed: bool | None = None  # PEP 668


def probe(ctx: ProbeContext, facts: Facts) -> None:
    tf = facts.tensorflow
    interpreter = _interpreter(ctx, tf)
    if interpreter is None:
        return
    tf.python_executable = interpreter.executable
    tf.python_version = interpreter.version
    tf.site_packages = interpreter.site_packages
    tf.python_env, tf.externally_managed = interpreter.env, interpreter.externally_managed
    fill_from_path(ctx, tf, interpreter.site_packages)
    if not ctx.host and tf.location and not ctx.python:  # a pip fix must use the Python that owns TF's directory
        owner = owning_interpreter(ctx, os.path.dirname(tf.location))
        if owner is not None:
            tf.python_executable, tf.python_env, tf.externally_managed = owner
    if not ctx.host and tf.location:  # the files of several environments: look up in the one TF lives in
        fill_requirements(ctx, tf, env_import_path(ctx, os.path.dirname(tf.location)))
    if tf.python_version is None and tf.location:  # --root over several environments: the one TF is in
        match = re.search(r"/python(3\.\d+)/", tf.location)
        tf.python_version = match.group(1) if match else None


def _interpreter(ctx: ProbeContext, tf: TensorflowFacts) -> Interpreter | None:
    if not ctx.host:
        return root_interpreter(ctx)
    if ctx.python:
        return run_interpreter(ctx, tf)
    paths = sysconfig.get_paths()
    stdlib = {p for k in ("stdlib", "platstdlib") if (p := paths.get(k))}
    found = _from_sys_path(sys.executable, ".".join(map(str, sys.version_info[:3])), sys.path, stdlib)
    marker = os.path.isfile(os.path.join(paths.get("stdlib") or "", "EXTERNALLY-MANAGED"))
    found.env, found.externally_managed = pep668(sys.prefix, sys.base_prefix, marker)
    return found


def pep668(prefix: str, base_prefix: str, marker: bool) -> tuple[PythonEnv, bool]:
    """(venv | conda | system, externally managed): PEP 668 exempts virtual environments from the marker."""
    from envdoctor.probes.system import python_env

    env = python_env(prefix, base_prefix)
    return env, marker and env != "venv"


def _from_sys_path(executable: str | None, version: str | None, path: list[str], stdlib: set[str]) -> Interpreter:
    dirs = [p for p in dict.fromkeys(path) if p and os.path.isabs(p) and not p.endswith(".zip")]
    # The stdlib (and its lib-dynload) holds no third-party packages; everything else on sys.path may.
    site = [p for p in dirs if p not in stdlib and os.path.basename(p) != "lib-dynload"]
    return Interpreter(executable, version, site)


def run_interpreter(ctx: ProbeContext, tf: TensorflowFacts) -> Interpreter | None:
    """Ask another interpreter (--python) for its version and import path; a broken one becomes tf.error."""
    python = str(ctx.python)
    tf.python_executable = python
    result = ctx.run([python, "-c", INTERPRETER_SCRIPT], timeout=PYTHON_TIMEOUT)
    if not result.ok:
        detail = result.failure(f"exit code {result.returncode}")
        tf.error = f"could not run {python}: {detail}"
        return None
    try:
        data = json.loads(result.stdout.strip().splitlines()[-1])
        stdlib = {s for s in data.get("stdlib", []) if isinstance(s, str)}
        found = _from_sys_path(data.get("executable") or python, data.get("version"), list(data["path"]), stdlib)
        prefix, base = data["prefix"]
        found.env, found.externally_managed = pep668(str(prefix), str(base), data.get("marker") is True)
        return found
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        tf.error = f"{python} printed no usable answer ({type(exc).__name__}): {result.stdout[-200:]!r}"
        return None


def root_interpreter(ctx: ProbeContext) -> Interpreter:
    """Under --root nothing runs: search the usual package directories of the image (or of --python's prefix)."""
    if ctx.python:
        prefix = Path(ctx.python).parent.parent  # <prefix>/bin/python
        patterns = [f"{prefix.relative_to(prefix.anchor)}/lib/python3*/site-packages"] if prefix.anchor else []
    else:
        patterns = list(ROOT_SITE_GLOBS)
    found: list[str] = []
    for pattern in patterns:
        found += [path for path in ctx.fs.glob("/" + pattern) if ctx.fs.isdir(path)]
    dirs = list(dict.fromkeys(found))
    versions = {m.group(1) for d in dirs if (m := re.search(r"/python(3\.\d+)/", d))}
    version = versions.pop() if len(versions) == 1 else None
    found_interpreter = Interpreter(str(ctx.python) if ctx.python else None, version, dirs)
    owner = owning_interpreter(ctx, dirs[0]) if ctx.python and dirs else None
    if owner is not None:
        _, found_interpreter.env, found_interpreter.externally_managed = owner
    return found_interpreter


def owning_interpreter(ctx: ProbeContext, site: str) -> tuple[str, PythonEnv | None, bool | None] | None:
    """(python, venv | conda | system, externally managed) owning a site-packages directory, read from files.

    Under --root nothing runs: a venv is told by <prefix>/pyvenv.cfg, conda by <prefix>/conda-meta, the
    distribution's Python by its prefix (/usr, /usr/local); PEP 668's marker sits in the stdlib directory.
    """
    match = re.fullmatch(r"(/.*?)/lib(?:64)?/python(3(?:\.\d+)?)/(site|dist)-packages", site)
    if match is None:
        return None
    prefix, pyver, kind = match.groups()
    if ctx.fs.isfile(f"{prefix}/pyvenv.cfg"):
        return f"{prefix}/bin/python", "venv", False
    if ctx.fs.isdir(f"{prefix}/conda-meta"):
        return f"{prefix}/bin/python", "conda", False
    # Debian's Python keeps pip's installs in /usr/local/lib/pythonX.Y/dist-packages; a Python built into
    # /usr/local (the python:3.x images, make altinstall) has its own site-packages and stdlib there.
    if prefix == "/usr/local" and kind == "site":
        own = ctx.fs.exists(f"/usr/local/bin/python{pyver}")
        marked = ctx.fs.isfile(f"/usr/local/lib/python{pyver}/EXTERNALLY-MANAGED")
        return f"/usr/local/bin/python{pyver}", "system", marked if own else None
    if prefix not in ("/usr", "/usr/local"):
        return f"{prefix}/bin/python", None, None  # a prefix install of any kind keeps its Python there
    stdlibs = ctx.fs.glob(f"/usr/lib/python{pyver}*/")
    markers = [d for d in stdlibs if ctx.fs.isfile(os.path.join(d, "EXTERNALLY-MANAGED"))]
    return f"/usr/bin/python{pyver}", "system", bool(markers) if stdlibs else None


def fill_from_path(ctx: ProbeContext, tf: TensorflowFacts, path: list[str]) -> None:
    """Distributions, TensorFlow location/version/build info and related packages found on `path`."""
    recipe = load_recipe("python_packages.json")
    wanted_tf = {dist_name(n) for n in recipe["tensorflow_distributions"]}
    prefixes = tuple(dist_name(p) for p in recipe["tensorflow_prefixes"])
    related = [dist_name(n) for n in recipe["related"]]
    requires = wanted_tf | {dist_name(n) for n in recipe["requirements_read_for"]}
    found = find_distributions(ctx, path, wanted_tf | set(related), prefixes, requires)
    tf.distributions = [p for key, p in found if key in wanted_tf or key.startswith(prefixes)]
    by_name = {key: p for key, p in reversed(found)}  # first on the path wins, as for import
    tf.related = [by_name[k] for k in related if k in by_name]
    tf.location = _package_dir(ctx, path, "tensorflow")
    if tf.location is None:
        return
    build_text = ctx.read_text(f"{tf.location}/python/platform/build_info.py", limit=1 << 20)
    tf.build_info = parse_build_info(build_text) if build_text is not None else None
    tf.version = _owning_version(ctx, tf, os.path.dirname(tf.location))
    fill_requirements(ctx, tf, path)


def fill_requirements(ctx: ProbeContext, tf: TensorflowFacts, path: list[str]) -> None:
    """The installed version of every distribution the owning TensorFlow distribution (and tf-keras) requires,
    as the first directory on `path` holding its dist-info says: what `pip check` compares, without pip."""
    site = os.path.dirname(tf.location or "")
    owners = [p for p in tf.distributions if p.location == site and p.version == tf.version] or tf.distributions[:1]
    lines = [line for p in owners + tf.related for line in p.requires_dist]
    names = {dist_name(m.group(0)) for line in lines if (m := _REQUIREMENT_NAME.match(line))}
    tf.requirements = installed_versions(ctx, path, names) if names else []
    tf.requirements_path = list(path) if names else []


_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def installed_versions(ctx: ProbeContext, path: list[str], names: set[str]) -> list[PythonPackage]:
    """(name, version, directory) of each wanted distribution, from its dist-info/egg-info directory name
    (name-version.dist-info, name-version-pyX.Y.egg-info): the first directory on the path wins, as for import."""
    found: dict[str, PythonPackage] = {}
    for directory in path:
        here: dict[str, list[str]] = {}
        for entry in ctx.fs.listdir(directory) if directory.startswith("/") else ():
            stem, dot, suffix = entry.rpartition(".")
            if dot and suffix in ("dist-info", "egg-info"):
                key = dist_name(stem.split("-", 1)[0])
                if key in names and key not in found:
                    here.setdefault(key, []).append(stem)
        for key, stems in here.items():
            parts = min(stems).split("-")  # two dist-infos of one name in one directory: a deterministic pick
            found[key] = PythonPackage(parts[0], parts[1] if len(parts) > 1 else None, directory)
    return sorted(found.values(), key=lambda p: dist_name(p.name))


def env_import_path(ctx: ProbeContext, site: str) -> list[str]:
    """The package directories the Python owning `site` imports from, in its order, read from files (--root).

    site.py puts the user's site-packages (~/.local/lib/pythonX.Y/site-packages) before the system's, and
    enables it for every Python but a venv made without --system-site-packages; such a venv also sees its base
    Python's packages. Under --root the user is unknown: every home's user site is taken, in name order."""
    match = re.fullmatch(r"(/.*?)/lib(?:64)?/python(3\.\d+)/(?:site|dist)-packages", site)
    if match is None:
        return [site]
    prefix, pyver = match.groups()
    cfg = ctx.read_text(f"{prefix}/pyvenv.cfg", limit=16384)
    if cfg is not None:
        values = {
            k.strip().lower(): v.strip() for k, sep, v in (line.partition("=") for line in cfg.splitlines()) if sep
        }
        if values.get("include-system-site-packages", "false").lower() != "true":
            return [site]
        home = values.get("home", "")  # the base interpreter's bin directory
        base = os.path.dirname(home.rstrip("/")) if home.startswith("/") else "/usr"
        dirs = _user_sites(ctx, pyver) + [site] + _system_sites(ctx, base, pyver)
    elif prefix in ("/usr", "/usr/local"):
        system = _system_sites(ctx, "/usr", pyver) + _system_sites(ctx, "/usr/local", pyver)
        dirs = _user_sites(ctx, pyver) + (system if site in system else [site] + system)
    else:  # conda and other prefix installs: the user site still comes first
        dirs = _user_sites(ctx, pyver) + [site]
    return list(dict.fromkeys(dirs))


def _user_sites(ctx: ProbeContext, pyver: str) -> list[str]:
    pattern = f".local/lib/python{pyver}/site-packages"
    homes = ctx.fs.glob(f"/root/{pattern}") + ctx.fs.glob(f"/home/*/{pattern}")
    return [d for d in homes if ctx.fs.isdir(d)]


def _system_sites(ctx: ProbeContext, base: str, pyver: str) -> list[str]:
    """A base Python's package directories in its sys.path order (Debian's dist-packages, then site-packages)."""
    candidates = [
        f"{base}/local/lib/python{pyver}/dist-packages",
        f"{base}/lib/python3/dist-packages",
        f"{base}/lib/python{pyver}/dist-packages",
        f"{base}/lib64/python{pyver}/site-packages",
        f"{base}/lib/python{pyver}/site-packages",
    ]
    return [d for d in candidates if ctx.fs.isdir(d)]


def find_distributions(
    ctx: ProbeContext,
    path: list[str],
    names: set[str],
    prefixes: tuple[str, ...] = (),
    requires: frozenset[str] | set[str] = frozenset(),
) -> list[tuple[str, PythonPackage]]:
    """(canonical name, package) for each installed distribution of interest, in import-path order; those in
    `requires` (or matching a prefix) with their Requires-Dist."""
    found: list[tuple[str, PythonPackage]] = []
    for directory in path:
        for entry in sorted(ctx.fs.listdir(directory)) if directory.startswith("/") else ():
            stem, dot, suffix = entry.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            key = dist_name(stem.split("-", 1)[0])
            if key not in names and not key.startswith(prefixes):
                continue
            fields = read_metadata_fields(ctx, f"{directory}/{entry}")
            name, version = _first(fields, "Name"), _first(fields, "Version")
            fallback = stem.split("-")
            package = PythonPackage(
                name or fallback[0], version or (fallback[1] if len(fallback) > 1 else None), directory
            )
            if key in requires or key.startswith(prefixes):
                package.requires_dist = fields.get("Requires-Dist", [])[:MAX_REQUIRES]
            found.append((key, package))
    return found


MAX_REQUIRES = 200  # TensorFlow 2.21 declares 35; a hostile METADATA must not make the facts large


def read_metadata(ctx: ProbeContext, info: str) -> tuple[str | None, str | None]:
    """Name and Version from a dist-info/egg-info METADATA (or PKG-INFO) header."""
    fields = read_metadata_fields(ctx, info)
    return _first(fields, "Name"), _first(fields, "Version")


def _first(fields: dict[str, list[str]], key: str) -> str | None:
    values = fields.get(key)
    return values[0] if values else None


def read_metadata_fields(ctx: ProbeContext, info: str) -> dict[str, list[str]]:
    """Name, Version and Requires-Dist from a dist-info/egg-info METADATA (or PKG-INFO) header.

    The same fields importlib.metadata returns, read directly: importing importlib.metadata (and the email
    package behind it) alone costs about 12 ms, a tenth of `envdoctor check`'s whole budget.
    """
    candidates = [info] if ctx.fs.isfile(info) else [f"{info}/METADATA", f"{info}/PKG-INFO"]
    for candidate in candidates:
        data = ctx.fs.read_bytes(candidate, 65536)  # TensorFlow's header is ~4 kB; its description follows
        if data is None:
            continue
        fields: dict[str, list[str]] = {}
        for line in data.decode("utf-8", "replace").splitlines():
            if not line.strip():
                break  # the header ends at the first blank line; the description follows
            key, sep, value = line.partition(":")
            if sep and key in ("Name", "Version", "Requires-Dist") and value.strip():
                fields.setdefault(key, []).append(value.strip())
        return fields
    return {}


def _package_dir(ctx: ProbeContext, path: list[str], package: str) -> str | None:
    for directory in path:
        if ctx.fs.isfile(f"{directory}/{package}/__init__.py"):
            return f"{directory}/{package}"
    return None


def _owning_version(ctx: ProbeContext, tf: TensorflowFacts, site: str) -> str | None:
    """The version of the distribution whose files are in site/tensorflow.

    With several TensorFlow distributions in one directory the last one installed overwrote the others'
    files: the owner is the one whose RECORD hash of build_info.py matches the file on disk.
    """
    here = [p for p in tf.distributions if p.location == site]
    if len(here) <= 1:
        return here[0].version if here else None
    digest = _record_digest(ctx.fs.read_bytes(f"{site}/{BUILD_INFO}", 64 << 20))
    for package in here:
        for record in _records(ctx, site, package):
            if digest and f"{BUILD_INFO},sha256={digest}," in record:
                return package.version
    return None


def _record_digest(data: bytes | None) -> str | None:
    if data is None:  # build_info.py is a few kB; the reader's cap only bounds a hostile file
        return None
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _records(ctx: ProbeContext, site: str, package: PythonPackage) -> list[str]:
    texts = []
    for name in sorted(ctx.fs.listdir(site)):
        if name.endswith(".dist-info") and dist_name(name.split("-", 1)[0]) == dist_name(package.name):
            data = ctx.fs.read_bytes(f"{site}/{name}/RECORD", 64 << 20)
            if data is not None:
                texts.append(data.decode("utf-8", "replace"))
    return texts


def parse_build_info(text: str) -> TfBuildInfo | None:
    """Parse TensorFlow's generated build_info.py (`build_info = collections.OrderedDict([...])`) with ast.

    Returns None when the text holds no readable build_info. Never raises.
    """
    raw = _literal_build_info(text)
    if raw is None:
        return None
    caps = raw.get("cuda_compute_capabilities")
    if isinstance(caps, str):  # some source builds write "sm_70,compute_80"
        caps = [c for c in re.split(r"[,\s]+", caps) if c]
    return TfBuildInfo(
        is_cuda_build=_bool(raw.get("is_cuda_build")),
        is_rocm_build=_bool(raw.get("is_rocm_build")),
        cuda_version=_text(raw.get("cuda_version")),
        cudnn_version=_text(raw.get("cudnn_version")),
        cuda_compute_capabilities=[str(c) for c in caps] if isinstance(caps, list) else [],
        cpu_compiler=_text(raw.get("cpu_compiler")),
        raw=raw,
    )


def _literal_build_info(text: str) -> dict[str, Any] | None:
    try:
        tree = ast.parse(text)
        for node in tree.body:
            if not isinstance(node, ast.Assign):
                continue
            if not any(isinstance(t, ast.Name) and t.id == "build_info" for t in node.targets):
                continue
            value = node.value
            if isinstance(value, ast.Call):  # OrderedDict([...]) / dict(...)
                value = value.args[0] if value.args else ast.Dict(keys=[], values=[])
            items = ast.literal_eval(value)
            pairs = items.items() if isinstance(items, dict) else items
            return {str(k): _json_safe(v) for k, v in pairs} or None
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError, AttributeError):
        return None
    return None


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return repr(value)


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "", []) else None
