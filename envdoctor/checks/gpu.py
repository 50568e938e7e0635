"""GPU findings: is there an NVIDIA GPU, does TensorFlow's build have code for it, is its memory free."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from envdoctor.checks.base import Finding, Severity, check
from envdoctor.checks.common import (
    WSL_LIB,
    gib,
    has_and_cuda_extra,
    has_nvidia_gpu,
    join,
    major_minor,
    nvidia_pci,
    pip_fix,
    release_rows,
    releases_for_python,
    tf_release,
    tf_releases,
    version,
    with_ok,
    wsl_linux_driver_evidence,
)
from envdoctor.facts import Facts, GpuFacts
from envdoctor.gpus.nogpu import NO_GPU
from envdoctor.knowledge.cuda import (
    DriverColumn,
    DriverLimit,
    branch_runs_cuda,
    cuda_compiles_for,
    driver_limit,
    first_cuda_for,
    min_compute_capability,
    parse_cc,
    ptx_cross_generation_fails_from,
    sass_for,
)
from envdoctor.knowledge.versions import version_key
from envdoctor.resources import load_recipe


def tf_cuda_version(facts: Facts) -> str | None:
    """The CUDA the installed TensorFlow was built with, when it is a CUDA build."""
    bi = facts.tensorflow.build_info
    if bi is not None:
        return bi.cuda_version if bi.is_cuda_build else None
    return None


def pci_model(device_id: str) -> tuple[str, str | None] | None:
    """(name, compute capability) of an NVIDIA PCI device id ("0x2b85") from recipes/nvidia_pci.json (pci.ids and
    NVIDIA's compute-capability lists); None when the table does not know the device."""
    table = load_recipe("nvidia_pci.json")
    name = table["devices"].get(device_id.lower().removeprefix("0x"))
    if name is None:
        return None
    chip = name.split(" ", 1)[0]
    cc = next((c for prefix, c in table["chip_compute_capability"] if chip.startswith(prefix)), None)
    return name, cc


def pci_gpus_as_models(facts: Facts) -> list[GpuFacts]:
    """When NVML could not answer (no driver, a broken one, --root, a snapshot), each NVIDIA GPU on PCI with the
    name and compute capability its device id gives; index is the PCI order, which is nvidia-smi's."""
    if facts.gpus:
        return []
    models = []
    for index, pci in enumerate(sorted(nvidia_pci(facts), key=lambda g: g.address)):
        known = pci_model(pci.device_id)
        if known is not None:
            name, cc = known
            models.append(GpuFacts(index=index, name=name, uuid="", pci_bus_id=pci.address, compute_capability=cc))
    return models


def tf_compute_capabilities(facts: Facts) -> list[str]:
    bi = facts.tensorflow.build_info
    if bi is not None and bi.cuda_compute_capabilities:
        return list(bi.cuda_compute_capabilities)
    release = tf_release(facts.tensorflow.version)
    return list(release["compute_capabilities"]) if release and tf_cuda_version(facts) else []


def coverage(facts: Facts, gpu: GpuFacts) -> tuple[str, str]:
    """("sass"|"ptx"|"none"|"unknown", the entry that covers it)."""
    caps = tf_compute_capabilities(facts)
    cc = major_minor(gpu.compute_capability)
    if not caps or cc is None:
        return "unknown", ""
    sass = sass_for(caps, cc)
    if sass:
        return "sass", sass
    ptx = [(arch, e) for e in caps if e.startswith("compute_") and (arch := parse_cc(e)) and arch <= cc]
    return ("ptx", max(ptx)[1]) if ptx else ("none", "")


def _release_covering(
    cc: tuple[int, int], python: tuple[int, int] | None, branch: int | None = None, column: DriverColumn = "linux"
) -> str | None:
    """The newest TF release whose wheel has SASS for this compute capability, supports this Python (None: any)
    and, where the GPU's last driver branch is `branch`, whose CUDA that branch runs."""
    releases = release_rows()
    names = releases_for_python(python) if python is not None else list(releases)
    fitting = [
        name for name in names
        if sass_for(releases[name]["compute_capabilities"], cc)
        and (branch is None or branch_runs_cuda(branch, releases[name]["cuda"], column))
    ]  # fmt: skip
    return max(fitting, key=version_key) if fitting else None


def driver_column(facts: Facts) -> DriverColumn:
    """The column of cuda_drivers.json that applies: under WSL2 the driver is the Windows one."""
    return "windows" if facts.system.os == "Windows" or facts.system.wsl == 2 else "linux"


def gpu_driver_limit(facts: Facts) -> tuple[GpuFacts, DriverLimit] | None:
    """The GPU here with the lowest last driver branch, and that limit (None: no GPU is past its support)."""
    limited = [(g, lim) for g in facts.gpus if (lim := driver_limit(major_minor(g.compute_capability)))]
    return min(limited, key=lambda x: int(x[1]["branch"])) if limited else None


def older_tf_fix(facts: Facts, cc: tuple[int, int], branch: int | None, why: str) -> str | None:
    """Install the newest TensorFlow that runs on this GPU (SASS for it; CUDA within its last driver branch):
    here where the release supports this Python, else in a new venv of the newest Python it supports."""
    python = major_minor(facts.tensorflow.python_version or facts.system.python_version)
    column = driver_column(facts)
    older = _release_covering(cc, python, branch, column)
    here = older is not None
    older = older or _release_covering(cc, None, branch, column)
    if older is None:
        return None
    row = release_rows()[older]
    extra = "[and-cuda]" if has_and_cuda_extra(older) else ""
    req = shlex.quote(f"tensorflow{extra}=={older}.*")
    note = f"# TensorFlow {older}: the newest whose wheel has SASS for compute capability {cc[0]}.{cc[1]}{why}"
    if here:
        return f"{pip_fix(facts, req)}\n{note}"
    lo, hi = row["python"]
    lines = [f"python{hi} -m venv ~/tf", f"~/tf/bin/python -m pip install {req}", note]
    if python is not None:
        lines.append(f"# it supports Python {lo}–{hi}, not this Python {python[0]}.{python[1]}")
    return "\n".join(lines)


def _buildable(cc: tuple[int, int]) -> bool:
    """Some CUDA a TensorFlow release in the table builds with can still compile for this compute capability."""
    majors = {mm[0] for row in release_rows().values() if (mm := major_minor(row["cuda"]))}
    lows = [min_compute_capability(m) for m in majors]
    return any(low is not None and cc >= low for low in lows)


def _wsl_gpu_unknown(facts: Facts) -> Finding | None:
    """WSL2 shows no GPU on PCI; without NVML's answer (or with the Windows driver's libcuda there) the GPU
    state is unknown, not absent."""
    if facts.system.wsl != 2:
        return None
    libcuda = [lib.path or "" for lib in facts.cuda.tf_libraries if lib.name == "cuda"]
    libcuda = [p for p in libcuda if p.startswith(WSL_LIB)]
    if linux_driver := wsl_linux_driver_evidence(facts):  # it hides the GPUs: absent is not known
        return Finding(
            code="gpu.unknown",
            severity=Severity.INFO,
            title="GPU state unknown: a Linux NVIDIA driver inside WSL2 hides the GPUs Windows passes through",
            evidence=linux_driver,
            fix="# remove the Linux driver first (see driver.wsl-linux-driver), then: envdoctor check",
        )
    if facts.host and not libcuda:
        return None  # NVML was asked and nothing points at a passed-through GPU: gpu.none
    evidence = ["WSL2: GPUs come from the Windows driver through /usr/lib/wsl/lib and never show on PCI"]
    evidence += [f"the Windows driver's libcuda is there: {p}" for p in libcuda]
    if not facts.host:
        evidence.append("NVML not queried (--root): whether a GPU is passed through is unknown")
        fix = "envdoctor check\n# inside that WSL2 distribution, not with --root: NVML then lists its GPUs"
    else:
        nvml = facts.driver.nvml_error
        evidence.append(f"NVML: {nvml.message if nvml else 'listed no GPU'}")
        fix = (
            "nvidia-smi\n# lists the GPUs WSL2 passes through (it is /usr/lib/wsl/lib/nvidia-smi when not on PATH)\n"
            "# none: update the NVIDIA driver on Windows, then in Windows: wsl --shutdown"
        )
    return Finding(
        code="gpu.unknown",
        severity=Severity.INFO,
        title="GPU state unknown: WSL2 passes GPUs through from Windows and envdoctor could not list them",
        evidence=evidence,
        fix=fix,
    )


@check
def gpu_checks(facts: Facts) -> Iterable[Finding]:
    if not has_nvidia_gpu(facts) and (unknown := _wsl_gpu_unknown(facts)):
        return [unknown]
    if not has_nvidia_gpu(facts):
        evidence = [
            "no NVIDIA device (vendor 0x10de) on the PCI bus",
            "NVML: no GPU" if facts.host else "NVML not queried (--root)",
        ]
        if facts.system.wsl == 2:  # with NVML's answer (_wsl_gpu_unknown handles the rest)
            evidence = [
                "WSL2: GPUs come from the Windows driver through /usr/lib/wsl/lib and never show on PCI",
                f"NVML: {facts.driver.nvml_error.message if facts.driver.nvml_error else 'no GPU'}",
            ]
        return [
            Finding(
                code="gpu.none",
                severity=Severity.INFO,
                title=NO_GPU,  # `envdoctor gpus` says the same (envdoctor/gpus/nogpu.py)
                evidence=evidence,
                fix=None,
            )
        ]
    findings: list[Finding] = []
    for gpu in facts.gpus or pci_gpus_as_models(facts):
        findings.extend(_gpu_coverage(facts, gpu))
    findings.extend(_mig_without_devices(facts))
    findings.extend(_memory_in_use(facts))
    return with_ok("gpu", findings, lambda: _gpu_ok(facts))


def _gpu_coverage(facts: Facts, gpu: GpuFacts) -> list[Finding]:
    kind, entry = coverage(facts, gpu)
    caps = " ".join(tf_compute_capabilities(facts))
    label = f"GPU {gpu.index} ({gpu.name}, compute capability {gpu.compute_capability})"
    evidence = [f"{label}", f"TensorFlow {facts.tensorflow.version} was built for: {caps}"]
    if not gpu.uuid and not facts.gpus:  # a model from its PCI id: say where the name and capability came from
        evidence.append(
            f"name and compute capability from PCI {gpu.pci_bus_id}'s device id (pci.ids, NVIDIA's "
            "compute-capability list): NVML did not list the GPU"
        )
    cc = major_minor(gpu.compute_capability)
    if kind == "none" and cc:
        return [
            Finding(
                code="gpu.cc-unsupported",
                severity=Severity.ERROR,
                title=f"TensorFlow's GPU build has no code for {label}",
                evidence=evidence,
                fix=_cc_unsupported_fix(facts, cc),
            )
        ]
    if kind == "ptx" and cc:
        return [_ptx_finding(facts, cc, entry, label, evidence)]
    return []


def _ptx_finding(facts: Facts, cc: tuple[int, int], entry: str, label: str, evidence: list[str]) -> Finding:
    ptx = parse_cc(entry)
    cross = ptx is not None and ptx[0] < cc[0]
    since = version(tf_releases()["compute_entry_has_sass_since"])
    tf = version(facts.tensorflow.version)
    if not cross and ptx is not None and tf is not None and since is not None and tf >= since:
        # compute_XY builds sm_XY SASS and compute_XY PTX (cuda_configure.bzl): the SASS runs most kernels
        evidence = evidence + [
            f"{entry} means sm_{ptx[0]}{ptx[1]} SASS and {entry} PTX in this build (TensorFlow's cuda_configure.bzl), "
            f"but part of the kernels come only as {entry} PTX: the driver JIT-compiles those on first use "
            "(cached afterwards)"
        ]
        title = f"{label} runs part of TensorFlow's GPU kernels through PTX JIT: the first run compiles for minutes"
    else:
        evidence = evidence + [
            f"no sm_{cc[0]}x binary: the driver JIT-compiles the {entry} PTX on first use (cached afterwards)"
        ]
        title = f"{label} runs TensorFlow only through PTX JIT: the first run compiles for minutes"
    if cross and cc >= ptx_cross_generation_fails_from():
        evidence.append(
            f"PTX from an older generation ({entry}) on compute capability {cc[0]}.{cc[1]} fails: "
            "CUDA_ERROR_INVALID_PTX, then CUDA_ERROR_INVALID_HANDLE (tensorflow#99592, #101746, #89272)"
        )
        return Finding(
            code="gpu.ptx-fails",
            severity=Severity.ERROR,
            title=f"TensorFlow's GPU build cannot run on {label}: its only code for it is older-generation PTX",
            evidence=evidence,
            fix=_ptx_fails_fix(facts, cc),
        )
    if cross:
        evidence.append(
            f"PTX from an older generation ({entry}) on compute capability {cc[0]}.x: slow first run "
            "(tensorflow#60739: an H100 on compute_80 PTX, 'CUDA kernels will be jit-compiled from PTX, which "
            "could take 30 minutes or longer')"
            if cc[0] == 9 and ptx is not None and ptx[0] == 8
            else f"PTX from an older generation ({entry}) on compute capability {cc[0]}.x: slow first run"
        )
    build = (
        f"envdoctor build-tf --cuda-cc {cc[0]}.{cc[1]}\n# removes the JIT; otherwise "
        if cuda_compiles_for(tf_cuda_version(facts), cc)
        else "# "
    )
    return Finding(
        code="gpu.ptx-jit",
        severity=Severity.WARNING if cross else Severity.INFO,
        title=title,
        evidence=evidence,
        fix=f"{build}let the first run finish so the compute cache (~/.nv/ComputeCache) fills",
    )


def _ptx_fails_fix(facts: Facts, cc: tuple[int, int]) -> str:
    """No stock wheel runs here; build-tf only where the release's CUDA knows this GPU (cuda_drivers.json)."""
    cuda = tf_cuda_version(facts)
    lines = [
        "# what works today: NVIDIA's NGC TensorFlow container (nvcr.io/nvidia/tensorflow), run with --gpus all",
        "# (tensorflow#99592); tf-nightly was reported failing the same way (tensorflow#97387, #89272)",
    ]
    if cuda_compiles_for(cuda, cc):
        return "\n".join([f"envdoctor build-tf --cuda-cc {cc[0]}.{cc[1]}", *lines])
    first = first_cuda_for(cc)
    lines.append(
        f"# envdoctor build-tf cannot help: TensorFlow {facts.tensorflow.version} builds with CUDA {cuda or '?'}, "
        f"compute capability {cc[0]}.{cc[1]} needs CUDA ≥ {first or 'a newer one'}"
    )
    lines.append('# meanwhile TensorFlow runs on the CPU with the GPU hidden: eval "$(envdoctor env --gpus none)"')
    return "\n".join(lines)


def _cc_unsupported_fix(facts: Facts, cc: tuple[int, int]) -> str:
    limit = driver_limit(cc)
    branch = int(limit["branch"]) if limit else None
    why = f" and whose CUDA runs on R{branch}, the last driver for {limit['architecture']} GPUs" if limit else ""
    older = older_tf_fix(facts, cc, branch, why)
    # build-tf builds the installed release with its CUDA, and refuses a compute capability that CUDA dropped
    build = f"envdoctor build-tf --cuda-cc {cc[0]}.{cc[1]}" if cuda_compiles_for(tf_cuda_version(facts), cc) else None
    if older and build:
        return f"{older}\n# or build TensorFlow {facts.tensorflow.version} for this GPU:\n{build}"
    if older or build:
        return older or build or ""
    if not _buildable(cc):
        return (
            f"# no CUDA that TensorFlow builds with compiles for compute capability {cc[0]}.{cc[1]}:\n"
            "# TensorFlow can only run on the CPU on this GPU"
        )
    return (
        f"# no TensorFlow wheel in envdoctor's table runs on compute capability {cc[0]}.{cc[1]}, and CUDA "
        f"{tf_cuda_version(facts) or '?'} (TensorFlow {facts.tensorflow.version}) cannot compile for it\n"
        '# TensorFlow runs on the CPU with the GPU hidden: eval "$(envdoctor env --gpus none)"'
    )


def _mig_without_devices(facts: Facts) -> list[Finding]:
    """A MIG-enabled GPU runs CUDA only inside its MIG devices: with none created, CUDA (and TF) sees no GPU."""
    mig_off = [g for g in facts.gpus if g.mig_enabled and not g.mig_devices]
    # NVML could not list them (no permission, not supported): unknown is no evidence of "none", so no ERROR
    unknown = [g for g in mig_off if g.mig_devices_error]
    empty = [g for g in mig_off if g not in unknown]
    found = _mig_devices_unknown(unknown)
    if not empty:
        return found
    others = [g for g in facts.gpus if g not in empty]  # an unknown one may still run TF: WARNING, not ERROR
    usable = [g for g in others if g not in unknown]
    where = "# on the host (a container cannot change MIG):\n" if facts.system.container else ""
    lines = [
        f"{where}sudo nvidia-smi mig -i {g.index} -lgip\n"
        f"# create instances with a profile from that list: sudo nvidia-smi mig -i {g.index} -cgi <profile> -C\n"
        f"# or turn MIG off (applies after a GPU reset or a reboot): sudo nvidia-smi -i {g.index} -mig 0"
        for g in empty
    ]
    return [
        Finding(
            code="gpu.mig-no-devices",
            severity=Severity.WARNING if others else Severity.ERROR,
            title=f"MIG is enabled on GPU {join(str(g.index) for g in empty)} but no MIG devices exist: "
            "TensorFlow registers no GPU there",
            evidence=[f"GPU {g.index} ({g.name}): MIG enabled, NVML lists no MIG device" for g in empty]
            + ([f"usable GPUs: {join(str(g.index) for g in usable)}"] if usable else [])
            + ([f"MIG devices unknown on GPU {join(str(g.index) for g in unknown)}"] if unknown else []),
            fix="\n".join(lines),
        )
    ] + found


def _mig_devices_unknown(gpus: list[GpuFacts]) -> list[Finding]:
    if not gpus:
        return []
    why = "; ".join(f"GPU {g.index}: {g.mig_devices_error}" for g in gpus)
    return [
        Finding(
            code="gpu.mig-devices-unknown",
            severity=Severity.INFO,
            title=f"MIG devices unknown ({why})",
            evidence=[f"GPU {g.index} ({g.name}): MIG enabled, NVML could not list its MIG devices" for g in gpus]
            + ["TensorFlow sees a GPU here only if MIG devices exist; envdoctor cannot tell whether they do"],
            fix="nvidia-smi -L\n# lists each GPU's MIG devices (MIG-… lines); none under a MIG-enabled GPU: "
            "TensorFlow registers no GPU there",
        )
    ]


def _memory_in_use(facts: Facts) -> list[Finding]:
    busy: list[GpuFacts] = []
    evidence: list[str] = []
    for g in facts.gpus:
        held = sum(p.used_memory_bytes or 0 for p in g.processes)
        if g.processes:
            pids = ", ".join(str(p.pid) for p in g.processes)
            evidence.append(
                f"GPU {g.index} ({g.name}): {gib(held or g.memory_used_bytes)} of {gib(g.memory_total_bytes)} "
                f"held by {len(g.processes)} process(es) (pid {pids})"
            )
            busy.append(g)
        elif g.memory_used_bytes and g.memory_total_bytes and g.memory_used_bytes > 0.1 * g.memory_total_bytes:
            evidence.append(
                f"GPU {g.index} ({g.name}): {gib(g.memory_used_bytes)} of {gib(g.memory_total_bytes)} in use"
            )
            busy.append(g)
    if not busy:
        return []
    free = [g for g in facts.gpus if g not in busy]
    growth = facts.env.variables.get("TF_FORCE_GPU_ALLOW_GROWTH") == "true"
    if free:
        evidence.append(f"free GPUs: {join(str(g.index) for g in free)}")
    if growth:
        evidence.append("TF_FORCE_GPU_ALLOW_GROWTH=true: TensorFlow allocates only what it needs")
    return [
        Finding(
            code="gpu.memory-in-use",
            severity=Severity.INFO if growth else Severity.WARNING,
            title="GPU memory is already held by other processes: TensorFlow's default start-up grab takes nearly "
            "all the rest, and one of the two runs out of memory",
            evidence=evidence,
            fix=_memory_fix(facts),
        )
    ]


def _memory_fix(facts: Facts) -> str:
    """auto:1 where it has a GPU to pick (its own rule decides); else share a GPU with memory growth."""
    from envdoctor.gpus.spec import auto_candidates, free_memory, usable_devices

    if auto_candidates(facts.gpus):
        return (
            'eval "$(envdoctor env --gpus auto:1)"  # selects a free GPU and turns on memory growth\n'
            "# or keep the GPU and only turn on memory growth:\n"
            "export TF_FORCE_GPU_ALLOW_GROWTH=true"
        )
    devices = usable_devices(facts.gpus)
    if not devices:
        return "export TF_FORCE_GPU_ALLOW_GROWTH=true"
    best = max(devices, key=lambda d: (0 if d.mig else free_memory(d.gpu), -d.gpu.index))
    fix = (
        f'eval "$(envdoctor env --gpus {best.label})"  # GPU {best.label} with TF_FORCE_GPU_ALLOW_GROWTH=true: '
        "TensorFlow takes only what it needs\n"
        "# auto:1 has no GPU to pick: it takes only whole GPUs without a compute process"
    )
    free_mb = free_memory(best.gpu) // 2**20 if best.mig is None else 0
    if free_mb >= 2048:  # a cap below what is free leaves room for the other process to grow
        cap = free_mb * 3 // 4 // 1024 * 1024
        fix += (
            f"\n# or cap TensorFlow at {cap} MB (applied by envdoctor.configure_tensorflow() in the program):"
            f'\neval "$(envdoctor env --gpus {best.label} --memory-limit {cap})"'
        )
    return fix


def _gpu_ok(facts: Facts) -> Finding | None:
    if not facts.gpus:
        bound = [g for g in nvidia_pci(facts) if g.driver == "nvidia"]
        if not bound:
            return None
        models = {m.pci_bus_id: m for m in pci_gpus_as_models(facts)}
        return Finding(
            code="gpu.ok",
            severity=Severity.OK,
            title=f"{len(bound)} NVIDIA GPU(s) on PCI, driven by the nvidia module",
            evidence=[
                f"PCI {g.address} {g.vendor_id}:{g.device_id}"
                + (f": {m.name}, compute capability {m.compute_capability}" if (m := models.get(g.address)) else "")
                for g in bound
            ]
            + ([] if facts.host else ["NVML not queried (--root): names, memory and processes unknown"]),
        )
    names = [_gpu_label(g) for g in facts.gpus]
    evidence = [
        ", ".join(
            [f"GPU {g.index}: {g.pci_bus_id}"]
            + ([f"{gib(g.memory_free_bytes)} free"] if g.memory_free_bytes is not None else [])
            + (["MIG enabled"] if g.mig_enabled else [])
        )
        for g in facts.gpus
    ]
    return Finding(
        code="gpu.ok", severity=Severity.OK, title=f"{len(facts.gpus)} GPU(s): {join(names)}", evidence=evidence
    )


def _gpu_label(g: GpuFacts) -> str:
    details = [f"compute capability {g.compute_capability}"] if g.compute_capability else []
    details += [gib(g.memory_total_bytes)] if g.memory_total_bytes else []
    return f"{g.name} ({', '.join(details)})" if details else g.name
