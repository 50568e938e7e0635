"""CUDA and cuDNN findings: the libraries TensorFlow loads, their versions, the toolkits installed."""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterable

from packaging.version import Version

from envdoctor.checks.base import Finding, Severity, check
from envdoctor.checks.common import (
    dist_name,
    has_and_cuda_extra,
    has_nvidia_gpu,
    join,
    major_minor,
    on_linux,
    pip_fix,
    python_cmd,
    requirement,
    tf_release,
    version,
    with_ok,
)
from envdoctor.checks.gpu import tf_cuda_version
from envdoctor.facts import CudaToolkit, CudnnInstall, Facts, GpuFacts, LibraryResolution
from envdoctor.knowledge import versions
from envdoctor.knowledge.cuda import min_compute_capability
from envdoctor.knowledge.cuda import table as cuda_table
from envdoctor.knowledge.versions import version_key


@check
def cuda_checks(facts: Facts) -> Iterable[Finding]:
    gpu = has_nvidia_gpu(facts)
    tf_cuda = tf_cuda_version(facts)
    findings: list[Finding] = []
    if gpu and tf_cuda:
        findings += _libraries(facts)
        findings += _cudnn(facts)
        # the library fix reinstalls TensorFlow with its [and-cuda] extra, which brings the nvcc wheel (2.15+)
        reinstall = any(f.code == "cuda.library-missing" and "[and-cuda]" in (f.fix or "") for f in findings)
        if not (reinstall and (version(facts.tensorflow.version) or Version("0")) >= Version("2.15")):
            findings += _xla_tools(facts, tf_cuda)
    if facts.deep is not None and facts.deep.failed_libraries and gpu:
        findings.append(
            Finding(
                code="cuda.load-failed",
                severity=Severity.ERROR,
                title="TensorFlow failed to load CUDA libraries",
                evidence=[f"dlopen failed: {lib}" for lib in facts.deep.failed_libraries]
                + ["from TensorFlow's import log (--deep)"],
                fix=_pip_fix(facts),
            )
        )
    findings += _toolkits(facts)
    cuda = facts.cuda
    if not findings and not (gpu and tf_cuda) and not (cuda.toolkits or cuda.cudnn or cuda.nvidia_wheels):
        return []  # nothing CUDA-related on this machine: no CUDA line at all
    return with_ok("cuda", findings, lambda: _ok(facts, tf_cuda))


def _pip_fix(facts: Facts) -> str:
    """The CUDA libraries this TensorFlow loads: its own [and-cuda] extra (2.14+, Linux), else the conda packages
    TensorFlow's install guide named for that release, else NVIDIA's archives for the exact versions."""
    tf = facts.tensorflow.version
    if has_and_cuda_extra(tf) and on_linux(facts):
        return pip_fix(facts, requirement("tensorflow[and-cuda]", tf))
    release = tf_release(tf) or {}
    cuda, cudnn = built_for(facts)
    if cuda is None:  # neither the release table nor the wheel's build_info.py says: ask the wheel itself
        return (
            f"{python_cmd(facts)} -c 'import tensorflow as tf; print(tf.sysconfig.get_build_info())'\n"
            "# prints the CUDA and cuDNN versions this TensorFlow was built for: install those "
            "(developer.nvidia.com/cuda-toolkit-archive, developer.nvidia.com/rdp/cudnn-archive)"
        )
    prefix = conda_prefix(facts)
    why = (
        f"# TensorFlow {tf} loads CUDA {cuda} and cuDNN {cudnn or 'of its build'} from the system: "
        "it predates the and-cuda pip extra (2.14+)"
    )
    if prefix and release.get("conda_cuda"):
        env = shlex.quote(prefix)
        lines = [f"conda install -y -p {env} -c conda-forge {' '.join(release['conda_cuda'])}"]
        libs = "$CONDA_PREFIX/lib"
        if release.get("cudnn_pip"):
            lines.append(f"{python_cmd(facts)} -m pip install {shlex.quote(release['cudnn_pip'])}")
            site = posixpath.dirname(facts.tensorflow.location or "")
            libs += f":{site}/nvidia/cudnn/lib"
        lines += [
            f"mkdir -p {env}/etc/conda/activate.d",
            f"echo 'export LD_LIBRARY_PATH={libs}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}' "
            f"> {env}/etc/conda/activate.d/tensorflow-cuda.sh",
            why,
            "# as TensorFlow's install guide of that release did it (conda packages, LD_LIBRARY_PATH on activation); "
            "then: conda deactivate, conda activate again",
        ]
        return "\n".join(lines)
    return (
        f"{why}\n# install CUDA {cuda} and cuDNN {cudnn or 'of the same major as the build'} "
        "(developer.nvidia.com/cuda-toolkit-archive, developer.nvidia.com/rdp/cudnn-archive)\n"
        "# and put their lib64 on the loader path (/etc/ld.so.conf.d/, then sudo ldconfig)"
    )


def built_for(facts: Facts) -> tuple[str | None, str | None]:
    """(CUDA, cuDNN) the installed TensorFlow was built with: the release table, else the wheel's build_info.py
    (which has the cuDNN major only); (None, None) when neither says."""
    release = tf_release(facts.tensorflow.version) or {}
    bi = facts.tensorflow.build_info
    # Only a version goes into a fix: build_info.py is the wheel's text, and a snapshot's can be anything.
    built_cuda, built_cudnn = (_version_text(bi.cuda_version), _version_text(bi.cudnn_version)) if bi else (None, None)
    cuda = built_cuda or release.get("cuda")
    cudnn = release.get("cudnn")
    if built_cudnn and (cudnn is None or versions.major(cudnn) != versions.major(built_cudnn)):
        cudnn = built_cudnn  # a rebuilt or vendor wheel: its own build wins over the release table
    return cuda, cudnn


def _version_text(text: str | None) -> str | None:
    parsed = versions.version(text)
    return str(parsed) if parsed else None


def conda_prefix(facts: Facts) -> str | None:
    """The conda environment TensorFlow is installed in (<prefix>/lib/pythonX.Y/site-packages/tensorflow)."""
    tf = facts.tensorflow
    if tf.python_env != "conda" or not tf.location or "/lib/python" not in tf.location:
        return None
    return tf.location.rsplit("/lib/python", 1)[0]


def _libraries(facts: Facts) -> list[Finding]:
    libs = facts.cuda.tf_libraries
    missing = [lib for lib in libs if lib.status == "missing"]
    off = [lib for lib in libs if lib.status == "off_loader_path"]
    out: list[Finding] = []
    driver_lib = [lib for lib in missing if lib.name in ("cuda", "nvidia-ml")]
    runtime = [lib for lib in missing if lib not in driver_lib]
    wrong_cudnn = _cudnn_other_major(facts, runtime)
    if wrong_cudnn is not None:
        out.append(wrong_cudnn)
        runtime = [lib for lib in runtime if lib.name != "cudnn"]
    if driver_lib:
        out.append(
            Finding(
                code="cuda.driver-library-missing",
                severity=Severity.ERROR,
                title="The driver's CUDA library is not found: TensorFlow says 'Could not find cuda drivers'",
                evidence=[f"{lib.soname}: not found" for lib in driver_lib],
                fix="# install the NVIDIA driver (see the driver findings); in a container, start it with --gpus all",
            )
        )
    if runtime:
        out.append(
            Finding(
                code="cuda.library-missing",
                severity=Severity.ERROR,
                title=f"CUDA libraries TensorFlow {facts.tensorflow.version} needs are missing: "
                f"{' '.join(lib.soname for lib in runtime)}",
                evidence=[f"{lib.soname}: not found on the loader path, in pip wheels or on disk" for lib in runtime],
                fix=_pip_fix(facts),
            )
        )
    if off:
        out.append(_off_path(off, conda_prefix(facts)))
    return out


def _xla_tools(facts: Facts, tf_cuda: str) -> list[Finding]:
    """XLA compiles its GPU kernels with libdevice (nvvm/libdevice/libdevice.10.bc) and ptxas, which are in no
    library TensorFlow loads: they come from a CUDA toolkit, the nvidia-cuda-nvcc wheel, or XLA_FLAGS'
    --xla_gpu_cuda_data_dir. Without them jit_compile=True, and Keras 3's default jit_compile="auto" on a GPU,
    fail with "libdevice not found at ./libdevice.10.bc" (tensorflow#58681, #60790)."""
    if "--xla_gpu_cuda_data_dir" in facts.env.variables.get("XLA_FLAGS", ""):
        return []
    if any(dist_name(w.name).startswith("nvidia-cuda-nvcc") for w in facts.cuda.nvidia_wheels):
        return []
    # XLA searches /usr/local/cuda and /usr/local/cuda-X.Y (and the nvcc wheel), not a toolkit elsewhere.
    if any(t.nvcc and "/usr/local" in t.found_via for t in facts.cuda.toolkits):
        return []
    elsewhere = [t for t in facts.cuda.toolkits if t.nvcc]
    evidence = [
        f"TensorFlow {facts.tensorflow.version} (CUDA {tf_cuda}): its XLA GPU compiler needs "
        "nvvm/libdevice and ptxas, which no library it loads contains",
        "no nvidia-cuda-nvcc wheel, no toolkit with nvcc under /usr/local/cuda*, XLA_FLAGS without "
        "--xla_gpu_cuda_data_dir",
    ]
    evidence += [f"a toolkit XLA does not search: {t.path}" for t in elsewhere]
    evidence.append(
        "fails: jit_compile=True, and Keras 3's default jit_compile='auto' on a GPU "
        "('libdevice not found at ./libdevice.10.bc', tensorflow#58681)"
    )
    if elsewhere:
        fix = f"export XLA_FLAGS=--xla_gpu_cuda_data_dir={shlex.quote(elsewhere[0].path)}"
    elif has_and_cuda_extra(facts.tensorflow.version) and on_linux(facts):
        fix = pip_fix(facts, shlex.quote(_nvcc_requirement(facts, tf_cuda)))
    else:
        mm = major_minor(tf_cuda)
        fix = (
            (
                f"# install the CUDA {mm[0]}.{mm[1] if mm else ''} toolkit (it has nvvm/libdevice and ptxas) "
                "from developer.nvidia.com/cuda-toolkit-archive, then:\n"
                "export XLA_FLAGS=--xla_gpu_cuda_data_dir=/usr/local/cuda"
            )
            if mm
            else ("# install a CUDA toolkit of this TensorFlow's CUDA major, then point XLA_FLAGS at it")
        )
    keras3 = (version(facts.tensorflow.version) or Version("0")) >= Version(KERAS_3_DEFAULT)
    return [
        Finding(
            code="cuda.xla-tools-missing",
            severity=Severity.WARNING if keras3 else Severity.INFO,
            title="XLA's libdevice and ptxas are missing: jit_compile"
            + (" and Keras 3 training" if keras3 else "")
            + " on the GPU fail",
            evidence=evidence,
            fix=fix,
        )
    ]


# TensorFlow 2.16 RELEASE.md: tf.keras is Keras 3, whose compile() defaults to jit_compile="auto"
KERAS_3_DEFAULT = "2.16"


def _nvcc_requirement(facts: Facts, tf_cuda: str) -> str:
    """The nvidia-cuda-nvcc pin of this TensorFlow's own [and-cuda] extra (its METADATA), else the CUDA major's."""
    for package in facts.tensorflow.distributions:
        for line in package.requires_dist:
            if line.replace("_", "-").lower().startswith("nvidia-cuda-nvcc") and "and-cuda" in line:
                return line.split(";", 1)[0].replace(" ", "").replace("(", "").replace(")", "")
    major = (major_minor(tf_cuda) or (12, 0))[0]
    return f"nvidia-cuda-nvcc-cu{major}"


def _cudnn_other_major(facts: Facts, missing: list[LibraryResolution]) -> Finding | None:
    """TensorFlow's libcudnn.so.N is missing while a cuDNN of another major is installed (TF 2.17 wants 8,
    a torch install brought 9): say both majors, and pin the wheel TF's own and-cuda extra names."""
    lib = next((x for x in missing if x.name == "cudnn" and ".so." in x.soname), None)
    want = versions.major(lib.soname.rsplit(".so.", 1)[-1]) if lib else None
    others = [c for c in facts.cuda.cudnn if c.version and versions.major(c.version) != want]
    if lib is None or not others:
        return None
    tf, release = facts.tensorflow.version, tf_release(facts.tensorflow.version) or {}
    site = posixpath.dirname(facts.tensorflow.location or "")
    here = [c for c in others if site and c.path.startswith(site + "/")]
    present = (here or others)[0]
    built = f"cuDNN {release['cudnn']}" if release.get("cudnn") else f"cuDNN {want}"
    evidence = [
        f"TensorFlow {tf} was built with {built}: it loads {lib.soname}, which is not found",
        *[f"installed: cuDNN {c.version} ({c.source}: {c.path})" for c in here or others],
    ]
    return Finding(
        code="cuda.cudnn-other-major",
        severity=Severity.ERROR,
        title=f"cuDNN {present.version} is installed, but TensorFlow {tf} needs cuDNN {want} ({lib.soname})",
        evidence=evidence,
        fix=_cudnn_wheel_fix(facts, release.get("cudnn_wheel"), present if present in here else None),
    )


def _cudnn_wheel_fix(facts: Facts, pin: str | None, replaced: CudnnInstall | None) -> str:
    if not pin or facts.tensorflow.externally_managed:  # a new venv needs all of TensorFlow, not one wheel
        return _pip_fix(facts)
    install = f"{python_cmd(facts)} -m pip install {shlex.quote(pin)}"
    if replaced is None or replaced.source != "wheel":
        return install
    return (
        f"# this replaces the cuDNN {replaced.version} wheel here: "
        f"a package that needs it (torch, jax) wants its own venv\n{install}"
    )


def _off_path(off: list[LibraryResolution], conda: str | None = None) -> Finding:
    dirs: list[str] = []
    for lib in off:
        for cand in lib.candidates[:1]:
            d = posixpath.dirname(cand)
            if d not in dirs:
                dirs.append(d)
    evidence = [f"{lib.soname}: on disk at {join(lib.candidates)} but not on the loader path" for lib in off]
    if conda and dirs and all(d.startswith(conda + "/") for d in dirs):
        # in the conda env: set it on every activation, as TensorFlow's install guide did (pip.md, 2.5-2.13)
        env = shlex.quote(conda)
        fix = (
            f"mkdir -p {env}/etc/conda/activate.d\n"
            f"echo 'export LD_LIBRARY_PATH={':'.join(dirs)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}' "
            f"> {env}/etc/conda/activate.d/tensorflow-cuda.sh\n"
            f"# the libraries are in the conda environment {conda}, which the loader never searches; "
            "then: conda deactivate, conda activate again"
        )
    elif dirs and all("site-packages/nvidia" in d for d in dirs):
        fix = f"export LD_LIBRARY_PATH={':'.join(dirs)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
    elif dirs:
        fix = f"printf '%s\\n' {' '.join(dirs)} | sudo tee /etc/ld.so.conf.d/tensorflow-cuda.conf && sudo ldconfig"
    else:
        fix = "# add the libraries' directory to a file in /etc/ld.so.conf.d/, then: sudo ldconfig"
    return Finding(
        code="cuda.library-off-path",
        severity=Severity.ERROR,
        title=f"CUDA libraries are installed but the loader cannot find them: {' '.join(lib.soname for lib in off)}",
        evidence=evidence,
        fix=fix,
    )


def _loaded_cudnn(facts: Facts) -> tuple[str, str] | None:
    """(version, where) of the cuDNN TensorFlow will load, as far as the facts tell."""
    lib = next((x for x in facts.cuda.tf_libraries if x.name == "cudnn" and x.status == "found"), None)
    if lib is None or not lib.path:
        return None
    if lib.via == "wheel" or "site-packages/nvidia" in lib.path:
        wheel = next(
            (w for w in facts.cuda.nvidia_wheels if dist_name(w.name).startswith("nvidia-cudnn") and w.version), None
        )
        if wheel:
            return wheel.version or "", f"{wheel.name} {wheel.version} ({lib.path})"
    lib_dir = posixpath.dirname(lib.path)
    matches = [
        c for c in facts.cuda.cudnn if c.version and (c.path == lib.path or posixpath.dirname(c.path) == lib_dir)
    ]
    if not matches:
        matches = _same_major(facts.cuda.cudnn, lib.soname)
    versions = {c.version for c in matches}
    if len(versions) == 1:
        c = matches[0]
        return c.version or "", f"cuDNN {c.version} ({c.path}, from its {c.source}; loaded as {lib.path})"
    return None


def _same_major(installs: list[CudnnInstall], soname: str) -> list[CudnnInstall]:
    major = versions.major(soname.rsplit(".so.", 1)[-1])
    return [c for c in installs if c.version and versions.major(c.version) == major and c.source != "wheel"]


def _cudnn(facts: Facts) -> list[Finding]:
    release = tf_release(facts.tensorflow.version)
    loaded = _loaded_cudnn(facts)
    if release is None or loaded is None:
        return []
    need, have = major_minor(release["cudnn"]), major_minor(loaded[0])
    if need is None or have is None or have[0] != need[0] or have >= need:
        return []
    return [
        Finding(
            code="cuda.cudnn-too-old",
            severity=Severity.ERROR,
            title=f"cuDNN {loaded[0]} is older than the {release['cudnn']} TensorFlow {facts.tensorflow.version} "
            "was built with",
            evidence=[
                f"loaded: {loaded[1]}",
                f"TensorFlow {facts.tensorflow.version}: cuDNN {release['cudnn']}",
                "cuDNN must have the same major and an equal or newer minor version",
            ],
            fix=_pip_fix(facts) + f"\n# or upgrade the system cuDNN to ≥ {release['cudnn']}",
        )
    ]


def _toolkits(facts: Facts) -> list[Finding]:
    tks = facts.cuda.toolkits
    out: list[Finding] = []
    if len(tks) > 1:
        out.append(
            Finding(
                code="cuda.several-toolkits",
                severity=Severity.INFO,
                title=f"{len(tks)} CUDA toolkits are installed",
                evidence=[
                    f"{t.version or '?'} at {t.path}"
                    + (" (active)" if t.active else "")
                    + (f", found via {join(t.found_via)}" if t.found_via else "")
                    for t in tks
                ]
                + ["builds use the active one (nvcc on PATH, else CUDA_HOME); TensorFlow's pip wheels bring their own"],
                fix=None,
            )
        )
    mins = cuda_table()["min_compute_capability"]
    for tk in (t for t in tks if t.active and t.version):
        mm = major_minor(tk.version)
        floor = min_compute_capability(mm[0]) if mm else None
        old = [g for g in facts.gpus if floor and (cc := major_minor(g.compute_capability)) and cc < floor]
        if old and floor:
            out.append(
                Finding(
                    code="cuda.toolkit-drops-gpu",
                    severity=Severity.WARNING,
                    title=f"CUDA {tk.version} cannot compile for GPU(s) below compute capability {floor[0]}.{floor[1]}",
                    evidence=[f"GPU {g.index} ({g.name}): compute capability {g.compute_capability}" for g in old]
                    + [f"active toolkit: {tk.path}"],
                    fix=_dropped_gpus_fix(tks, old, mins),
                )
            )
    return out


def _newest_major_for(cc: str | None, mins: dict[str, str]) -> int | None:
    """The newest CUDA major whose minimum compute capability is at or below cc; None if none in the table."""
    have = major_minor(cc)
    fits = [int(m) for m, floor in mins.items() if have and (f := major_minor(floor)) and f <= have]
    return max(fits, default=None)


def _dropped_gpus_fix(toolkits: list[CudaToolkit], gpus: list[GpuFacts], mins: dict[str, str]) -> str:
    """The toolkit for the oldest GPU the active one dropped; GPUs no toolkit in the table supports are named."""
    lost = [g for g in gpus if _newest_major_for(g.compute_capability, mins) is None]
    kept = [g for g in gpus if g not in lost]
    lines = [
        f"# no CUDA {min(mins, key=int)} or newer toolkit compiles for GPU {g.index} ({g.name}, compute capability "
        f"{g.compute_capability}): it cannot run CUDA builds of TensorFlow"
        for g in lost
    ]
    if kept:
        oldest = min(kept, key=lambda g: major_minor(g.compute_capability) or (0, 0))
        target = _newest_major_for(oldest.compute_capability, mins) or 0
        if lost:
            ids = ", ".join(str(g.index) for g in kept)
            lines.append(f"# GPU(s) {ids}: CUDA {target} is the newest that supports them")
        lines.append(_older_toolkit_fix(toolkits, target))
    return "\n".join(lines)


def _older_toolkit_fix(toolkits: list[CudaToolkit], cuda_major: int) -> str:
    """Point builds at an installed toolkit of that CUDA major, or say to install one."""
    older = [t for t in toolkits if (mm := major_minor(t.version)) and mm[0] == cuda_major]
    if not older:
        return f"# install a CUDA {cuda_major}.x toolkit for these GPUs and point CUDA_HOME at it"
    path = max(older, key=lambda t: version_key(t.version or "")).path
    return f"export CUDA_HOME={path}\nexport PATH={path}/bin:$PATH"


def _ok(facts: Facts, tf_cuda: str | None) -> Finding | None:
    libs = facts.cuda.tf_libraries
    evidence = [f"{lib.soname}: {lib.path} (via {lib.via})" for lib in libs if lib.status == "found"]
    evidence += [f"toolkit {t.version} at {t.path}" + (" (active)" if t.active else "") for t in facts.cuda.toolkits]
    evidence += [f"cuDNN {c.version} ({c.source}: {c.path})" for c in facts.cuda.cudnn]
    if tf_cuda and libs:
        found = sum(lib.status == "found" for lib in libs)
        # Reached with libraries missing only when nothing judged them (no GPU): count, never claim "All".
        count = f"All {found}" if found == len(libs) else f"{found} of {len(libs)}"
        evidence += [f"{lib.soname}: {lib.status.replace('_', ' ')}" for lib in libs if lib.status != "found"]
        return Finding(
            code="cuda.ok",
            severity=Severity.OK,
            title=f"{count} CUDA libraries TensorFlow {facts.tensorflow.version} (CUDA {tf_cuda}) needs are found",
            evidence=evidence,
        )
    evidence += [
        f"pip wheel {w.name} {w.version or '?'} ({w.lib_dir or 'no lib directory'})" for w in facts.cuda.nvidia_wheels
    ]
    active = next((t for t in facts.cuda.toolkits if t.active), None) or next(iter(facts.cuda.toolkits), None)
    cudnn = [f"cuDNN {v}" for v in dict.fromkeys(c.version for c in facts.cuda.cudnn if c.version)]
    if active is not None:
        title = f"CUDA toolkit {active.version or '?'} at {active.path}" + "".join(f", {c}" for c in cudnn[:1])
    elif cudnn or facts.cuda.nvidia_wheels:
        wheels = [f"{len(facts.cuda.nvidia_wheels)} NVIDIA CUDA pip wheel(s)"] if facts.cuda.nvidia_wheels else []
        title = f"No CUDA toolkit; {join(cudnn + wheels)}"
    else:
        return None
    return Finding(code="cuda.ok", severity=Severity.OK, title=title, evidence=evidence)
