"""TensorFlow findings: which distribution, built for what, on which Python, and (--deep) what its import said."""

from __future__ import annotations

from collections.abc import Iterable

from packaging.version import InvalidVersion, Version

from envdoctor.checks.base import Finding, Severity, check
from envdoctor.checks.common import (
    dist_name,
    gpu_usable,
    has_and_cuda_extra,
    is_tf_distribution,
    join,
    major_minor,
    on_linux,
    pip_fix,
    python_cmd,
    release_rows,
    releases_for_python,
    requirement,
    supports_python,
    tf_release,
    tf_releases,
    tf_requirement,
    version,
    with_ok,
)
from envdoctor.checks.gpu import tf_cuda_version
from envdoctor.facts import Facts, PythonPackage
from envdoctor.gpus.visible import resolve_visible_devices
from envdoctor.knowledge.versions import version_key
from envdoctor.probes.deep import CPU_GUARD_FATAL


@check
def tensorflow_checks(facts: Facts) -> Iterable[Finding]:
    tf = facts.tensorflow
    findings: list[Finding] = []
    if tf.error:
        findings.append(
            Finding(
                code="tensorflow.inspect-failed",
                severity=Severity.WARNING,
                title="Could not inspect the Python environment's TensorFlow",
                evidence=[tf.error, f"interpreter: {tf.python_executable}"],
                fix=f"{python_cmd(facts)} -c 'import sys; print(sys.version)'\n"
                "# --python must name an interpreter that runs",
            )
        )
    if not tf.version and not tf.distributions and not tf.location:
        if not tf.error:  # when the inspection failed, "not installed" is unknown, not a fact
            findings.extend(_not_installed(facts))
        return with_ok("tensorflow", findings, lambda: None)
    several = _several(facts)
    findings += several
    findings += [] if several else _retired_gpu_package(facts)
    findings += _python_range(facts)
    if not several:  # its fix (uninstall all, install one) already covers it; two would fight
        findings += _cpu_only(facts)
    findings += _deep(facts)
    if tf.version and tf_release(tf.version) is None:
        known = sorted(release_rows(), key=version_key)
        findings.append(
            Finding(
                code="tensorflow.unknown-release",
                severity=Severity.INFO,
                title=f"TensorFlow {tf.version} is not in envdoctor's release table",
                evidence=[
                    f"known releases: {known[0]}–{known[-1]}",
                    "checks that need the release's Python range and cuDNN version were skipped",
                ],
                fix=None,
            )
        )
    return with_ok("tensorflow", findings, lambda: _ok(facts))


def _python(facts: Facts) -> str | None:
    return facts.tensorflow.python_version or facts.system.python_version


def _not_installed(facts: Facts) -> list[Finding]:
    py = major_minor(_python(facts))
    releases = release_rows()
    if py and not releases_for_python(py):
        newest = max(releases, key=version_key)
        lo, hi = releases[newest]["python"]
        return [
            Finding(
                code="tensorflow.python-unsupported",
                severity=Severity.WARNING,
                title=f"No TensorFlow release supports Python {py[0]}.{py[1]}",
                evidence=[f"Python: {_python(facts)}", f"TensorFlow {newest}: Python {lo}–{hi}"],
                fix=f"python{hi} -m venv ~/tf\n~/tf/bin/python -m pip install {tf_requirement(facts, f'{newest}.*')}\n"
                f"# a virtual environment with Python {hi} (install python{hi} first if it is missing)",
            )
        ]
    evidence = _where_looked(facts)
    fix = _newer_release_fix(facts, tf_requirement(facts))
    if py:  # pin the newest release with wheels for this Python: pip alone would say "from versions: none" or
        names = releases_for_python(py)  # pick one whose [and-cuda] extra does not exist
        newest = max(names, key=version_key)
        evidence.append(f"Python {py[0]}.{py[1]}: TensorFlow {join(names)} have wheels (envdoctor's release table)")
        fix = _newer_release_fix(facts, tf_requirement(facts, f"{newest}.*"))
        if gpu_usable(facts) and on_linux(facts) and has_and_cuda_extra(newest) is False:
            row = releases[newest]
            fix += (
                f"\n# TensorFlow {newest} loads CUDA {row['cuda']} and cuDNN {row['cudnn']} from the system "
                "(the and-cuda pip extra came with 2.14): envdoctor check says what is missing"
            )
    return [
        Finding(
            code="tensorflow.not-installed",
            severity=Severity.INFO,
            title="TensorFlow is not installed in this environment",
            evidence=evidence,
            fix=fix,
        )
    ]


def _where_looked(facts: Facts) -> list[str]:
    tf = facts.tensorflow
    if tf.python_executable or facts.host:
        return [f"interpreter: {tf.python_executable or facts.system.python_executable or 'unknown'}"]
    return [f"searched under --root: {join(tf.site_packages, 'no site-packages directory found')}"]


def _several(facts: Facts) -> list[Finding]:
    table = tf_releases()
    dists = [d for d in facts.tensorflow.distributions if is_tf_distribution(d.name)]
    names = {dist_name(d.name) for d in dists}
    for a, b in table["companion_pairs"]:  # a meta package and the one it pulls in, at one version
        pair = [d for d in dists if dist_name(d.name) in (a, b)]
        if len(pair) == 2 and pair[0].version == pair[1].version:
            names.discard(b)
    if len(names) < 2:
        return []
    listed = [f"{d.name} {d.version}" + (f" ({d.location})" if d.location else "") for d in dists]
    return [
        Finding(
            code="tensorflow.several-distributions",
            severity=Severity.ERROR,
            title="Several TensorFlow distributions are installed in one environment: "
            "they overwrite each other's files",
            evidence=listed,
            fix=_keep_vendor_build(facts, dists)
            or _reinstall_one(facts, names, sorted(dist_name(d.name) for d in dists)),
        )
    ]


def _retired_gpu_package(facts: Facts) -> list[Finding]:
    """tensorflow-gpu: the same package as tensorflow since 2.1, retired after 2.11; `pip install -U tensorflow-gpu`
    now fails (its 2.12 'release' only raises an error: tensorflow#60074, #60886)."""
    table = tf_releases()
    name = table["tensorflow_gpu_distribution"]
    gpu_pkg = next((d for d in facts.tensorflow.distributions if dist_name(d.name) == name), None)
    if gpu_pkg is None:
        return []
    last = table["tensorflow_gpu_last"]
    evidence = [
        f"installed: {gpu_pkg.name} {gpu_pkg.version}",
        f"{name} {last} was its last release; newer versions only raise an error on install (pypi.org/project/{name})",
    ]
    if facts.system.os == "Windows":  # native Windows: GPU support ended with 2.10, so this is the one to keep
        fix = (
            f"# keep {name} {gpu_pkg.version}: TensorFlow {table['windows_gpu_last']} was the last with GPU on "
            "native Windows; for newer releases, TensorFlow in WSL2:\nwsl --install"
        )
    else:
        fix = pip_fix(facts, tf_requirement(facts), remove=name)
    return [
        Finding(
            code="tensorflow.gpu-package-retired",
            severity=Severity.INFO,
            title=f"{name} is retired: `pip install -U {name}` fails; its successor is `tensorflow`",
            evidence=evidence,
            fix=fix,
        )
    ]


def _local(text: str | None) -> str | None:
    """The local part of a version (2.16.1+nv24.8 → nv24.8): a vendor's build that PyPI does not have."""
    try:
        return Version(text).local if text else None
    except InvalidVersion:
        return None


def _keep_vendor_build(facts: Facts, dists: list[PythonPackage]) -> str | None:
    """The fix when one distribution is a vendor's build (NGC's 2.16.1+nv24.8, ...), else None.

    _reinstall_one would swap it for PyPI's, losing what the vendor built it for (gpu.ptx-fails recommends NGC's
    images on new GPUs). Uninstalling only the other distribution is safe only where it lives in another
    directory: in the same site-packages both own tensorflow/, the later install overwrote the vendor's files,
    and `pip uninstall` deletes those shared files, leaving the vendor's dist-info over a missing package.
    The vendor's files then come back only from the vendor: a fresh container from its image, or its wheel."""
    vendor = [d for d in dists if _local(d.version)]
    if not vendor and _local(facts.tensorflow.version):
        vendor = [d for d in dists if dist_name(d.name) == "tensorflow"]
    others = [d for d in dists if d not in vendor]
    if not vendor or not others:
        return None
    py, build = python_cmd(facts), f"{vendor[0].name} {vendor[0].version}"
    remove = " ".join(sorted({dist_name(d.name) for d in others}))
    homes = {d.location for d in vendor}
    if None not in homes and all(d.location and d.location not in homes for d in others):
        return (
            f"{py} -m pip uninstall -y {remove}\n"
            f"# {build} is a vendor build (not on PyPI): keep it; {remove} lives in another directory, "
            "so removing it leaves the vendor's files alone"
        )
    lines = [
        f"# {build} is a vendor build (not on PyPI): reinstalling from PyPI would replace it",
        f"# {remove} shares its tensorflow/ files: installing it overwrote the vendor's, and uninstalling it "
        "deletes them, so no pip command here restores the vendor build",
    ]
    if facts.system.container:
        lines.append(
            "# start a fresh container from the vendor's image (its layers still hold the vendor's files) "
            f"and do not pip install {remove} there"
        )
    else:
        lines.append(
            f"# reinstall the vendor's wheel: {py} -m pip uninstall -y {remove} {dist_name(vendor[0].name)}, "
            f"then {py} -m pip install --no-deps <the vendor's {dist_name(vendor[0].name)} wheel>"
        )
    return "\n".join(lines)


def _reinstall_one(facts: Facts, names: set[str], installed: list[str]) -> str:
    """Uninstall every distribution, then install one: they share tensorflow/, so removing only the extra one
    deletes the files the kept one needs, and pip then calls the kept one 'already satisfied'."""
    table = tf_releases()
    gpu = gpu_usable(facts) and on_linux(facts)
    cpu_only = set(table["cpu_only_distributions"])
    plain = "tensorflow" in names or gpu or not (names & cpu_only)
    v = version(facts.tensorflow.version)
    pin = str(v) if v is not None and not v.is_prerelease else ""  # a nightly's version is no release to pin
    keep = tf_requirement(facts, pin) if plain else requirement(sorted(names & cpu_only)[0], pin or None)
    return pip_fix(facts, keep, remove=" ".join(installed))


def _python_range(facts: Facts) -> list[Finding]:
    release, py = tf_release(facts.tensorflow.version), major_minor(_python(facts))
    if release is None or py is None:
        return []
    if supports_python(release, py):
        return []
    lo, hi = release["python"]
    fitting = releases_for_python(py)
    same = tf_requirement(facts, facts.tensorflow.version or "")
    fix = f"python{hi} -m venv ~/tf\n~/tf/bin/python -m pip install {same}"
    if fitting:
        fix = _newer_release_fix(facts, tf_requirement(facts, f"{max(fitting, key=version_key)}.*"))
        fix += f"\n# or keep this TensorFlow in a Python {hi} environment"
    return [
        Finding(
            code="tensorflow.python-unsupported",
            severity=Severity.ERROR,
            title=f"TensorFlow {facts.tensorflow.version} does not support Python {py[0]}.{py[1]}",
            evidence=[f"Python: {_python(facts)}", f"TensorFlow {facts.tensorflow.version}: Python {lo}–{hi}"],
            fix=fix,
        )
    ]


def _newer_release_fix(facts: Facts, req: str) -> str:
    """pip install req here, or into a new venv where torch / jax rely on their own nvidia-* CUDA wheels,
    which tensorflow[and-cuda] would re-pin (as the cuda.cudnn-other-major fix says): TF's nvidia-cudnn-cu12
    and torch's cu13 cuDNN, for one, write the same nvidia/cudnn/lib files."""
    neighbours = _cuda_neighbours(facts)
    if "[and-cuda]" not in req or not neighbours:
        return pip_fix(facts, req)
    uses = "uses" if len(neighbours) == 1 else "use"
    return (
        f"{python_cmd(facts)} -m venv ~/tf\n~/tf/bin/python -m pip install {req}\n"
        f"# a venv of its own: {join(neighbours)} here {uses} nvidia-* CUDA wheels that tensorflow[and-cuda] re-pins"
    )


def _cuda_neighbours(facts: Facts) -> list[str]:
    """torch / jax installed beside TensorFlow with NVIDIA CUDA wheels in the same environment."""
    if not facts.cuda.nvidia_wheels:
        return []
    cuda_users = ("torch", "jax", "jaxlib")
    return [f"{p.name} {p.version}" for p in facts.tensorflow.related if dist_name(p.name) in cuda_users]


def _cpu_only(facts: Facts) -> list[Finding]:
    if not gpu_usable(facts):
        return []
    tf = facts.tensorflow
    table = tf_releases()
    cpu_dists = [dist_name(d.name) for d in tf.distributions if dist_name(d.name) in table["cpu_only_distributions"]]
    windows = facts.system.os == "Windows"
    if windows and (installed := version(tf.version)) and installed > Version(table["windows_gpu_last"]):
        return [
            Finding(
                code="tensorflow.cpu-only-with-gpu",
                severity=Severity.WARNING,
                title=f"TensorFlow {tf.version} on native Windows has no GPU support: the NVIDIA GPU is unused",
                evidence=[
                    f"TensorFlow {table['windows_gpu_last']} was the last release with GPU on native Windows",
                    f"GPU: {facts.gpus[0].name if facts.gpus else 'NVIDIA'}",
                ],
                fix="wsl --install\n# then, inside WSL2: pip install 'tensorflow[and-cuda]'",
            )
        ]
    not_cuda = tf.build_info is not None and tf.build_info.is_cuda_build is False
    if not cpu_dists and not not_cuda:
        return []
    evidence = [f"installed: {', '.join(cpu_dists) or 'tensorflow'} {tf.version}"]
    if not_cuda:
        evidence.append("build_info.py: is_cuda_build = False")
    evidence.append(f"usable GPU: {facts.gpus[0].name if facts.gpus else 'NVIDIA (driver loaded)'}")
    remove = " ".join(cpu_dists) or "tensorflow"
    return [
        Finding(
            code="tensorflow.cpu-only-with-gpu",
            severity=Severity.WARNING,
            title="A CPU-only TensorFlow is installed on a machine with a usable NVIDIA GPU",
            evidence=evidence,
            fix=pip_fix(facts, requirement("tensorflow[and-cuda]", tf.version), remove=remove),
        )
    ]


def _deep(facts: Facts) -> list[Finding]:
    deep = facts.deep
    if deep is None:
        return []
    notable = deep.messages[-3:] or [line for line in deep.output_tail.splitlines() if line.strip()][-3:]
    if deep.returncode is None and not deep.timed_out:
        return [
            Finding(
                code="tensorflow.deep-not-run",
                severity=Severity.INFO,
                title="The --deep import test did not run",
                evidence=[deep.error or "no reason recorded"],
                fix=None,
            )
        ]
    if deep.signal == "SIGILL":
        return [
            Finding(
                code="tensorflow.import-sigill",
                severity=Severity.ERROR,
                title="Importing TensorFlow dies with SIGILL: the CPU lacks an instruction the wheel was compiled for",
                evidence=[f"import tensorflow: killed by {deep.signal}"] + notable,
                fix="envdoctor build-tf\n# builds TensorFlow for exactly this CPU",
            )
        ]
    if deep.signal and any(CPU_GUARD_FATAL in m for m in deep.messages):
        return [
            Finding(
                code="tensorflow.import-cpu-unsupported",
                severity=Severity.ERROR,
                title="Importing TensorFlow aborts: the wheel was compiled for instructions this CPU lacks",
                evidence=[f"import tensorflow: killed by {deep.signal}"] + notable,
                fix="envdoctor build-tf\n# builds TensorFlow for exactly this CPU",
            )
        ]
    if deep.timed_out:
        return [
            Finding(
                code="tensorflow.import-timeout",
                severity=Severity.WARNING,
                title=f"Importing TensorFlow did not finish within {deep.seconds or '?'} s",
                evidence=notable,
                fix=f"{python_cmd(facts)} -c 'import tensorflow'\n"
                "# by hand, to see where it hangs; a hung driver or a network file system is typical",
            )
        ]
    if deep.signal or deep.returncode != 0 or (deep.error or "").startswith("import tensorflow failed"):
        return [
            Finding(
                code="tensorflow.import-failed",
                severity=Severity.ERROR,
                title="Importing TensorFlow fails",
                evidence=[deep.error or f"exit: {deep.signal or deep.returncode}"] + notable,
                fix=f"{python_cmd(facts)} -c 'import tensorflow'\n# its traceback names the cause",
            )
        ]
    if gpu_usable(facts) and tf_cuda_version(facts) and not deep.gpus and _visible_to_cuda(facts):
        return [
            Finding(
                code="tensorflow.no-gpu-registered",
                severity=Severity.ERROR,
                title="TensorFlow imports but registers no GPU",
                evidence=["TensorFlow's GPU list: empty (--deep)"] + ([deep.error] if deep.error else []) + notable,
                fix="TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=dso_loader=1 "
                f"{python_cmd(facts)} -c 'import tensorflow as tf; print(tf.config.list_physical_devices())'\n"
                "# its log names the library it could not load; see also the CUDA findings",
            )
        ]
    return []


def _visible_to_cuda(facts: Facts) -> int:
    """How many devices CUDA enumerates under this environment's CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER: none
    when the user hid them (`-1`, empty, an invalid order), which the environment findings already explain."""
    env = facts.env.variables
    resolution = resolve_visible_devices(env.get("CUDA_VISIBLE_DEVICES"), facts.gpus, env.get("CUDA_DEVICE_ORDER"))
    return len(resolution.devices)


def _ok(facts: Facts) -> Finding:
    tf = facts.tensorflow
    dist = dist_name(tf.distributions[0].name) if tf.distributions else "tensorflow"
    bi = tf.build_info
    if bi is None:
        build = "no build_info.py"
    else:
        build = f"CUDA {bi.cuda_version} / cuDNN {bi.cudnn_version} build" if bi.is_cuda_build else "CPU build"
    evidence = [f"location: {tf.location}"] if tf.location else []
    if not tf.distributions:
        evidence.append("no tensorflow*.dist-info beside it: a source tree or a partial install")
    evidence += [f"{p.name} {p.version}" for p in tf.related]
    if facts.deep is not None and facts.deep.gpus:
        evidence.append(f"registered GPUs: {', '.join(facts.deep.gpus)}")
    return Finding(
        code="tensorflow.ok",
        severity=Severity.OK,
        title=f"TensorFlow {tf.version or '(version unknown)'} ({dist}, {build}) on Python {_python(facts) or '?'}",
        evidence=evidence,
    )
