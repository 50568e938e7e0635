"""NVIDIA driver findings: does a driver hold the GPU, do its parts match, is it new enough for TF and CUDA."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from packaging.version import Version

from envdoctor.checks.base import Finding, Severity, check
from envdoctor.checks.common import (
    gpu_usable,
    has_and_cuda_extra,
    has_nvidia_gpu,
    join,
    major_minor,
    nvidia_pci,
    release_rows,
    releases_for_python,
    version,
    with_ok,
    wsl_linux_driver_evidence,
)
from envdoctor.checks.gpu import coverage, driver_column, gpu_driver_limit, older_tf_fix, tf_cuda_version
from envdoctor.distro_pkgs import distro_command, driver_install_command, install_command
from envdoctor.facts import Facts
from envdoctor.knowledge.cuda import (
    DriverColumn,
    branch_max_cuda,
    branch_runs_cuda,
    max_cuda_for_driver,
    minor_compat_minimum,
    oldest_toolkit,
    sass_for,
    toolkit_minimum,
    within_branch,
)
from envdoctor.knowledge.versions import major, version_key


def _column(facts: Facts) -> DriverColumn:
    return driver_column(facts)


def _driver_version(facts: Facts) -> str | None:
    return facts.driver.userspace_version or facts.driver.kernel_module_version


def _install_driver(facts: Facts, then_reboot: bool = False) -> str:
    s = facts.system
    if s.container:  # the driver is the host's (see _upgrade_driver)
        return "# install the NVIDIA driver on the host, then start the container with --gpus all"
    cmd = _driver_package_command(facts)
    if cmd is None:
        return "# install NVIDIA's driver for this distribution (https://www.nvidia.com/drivers), then reboot"
    return f"{cmd} && sudo reboot" if then_reboot else cmd


def _driver_package_command(facts: Facts) -> str | None:
    """The distribution's driver install for these GPUs: below Turing (7.5) several distributions' default package
    holds only the open kernel modules, which cannot drive the GPU, so the proprietary one is chosen."""
    from envdoctor.checks.gpu import pci_gpus_as_models

    s = facts.system
    ccs = [cc for g in facts.gpus or pci_gpus_as_models(facts) if (cc := major_minor(g.compute_capability))]
    return driver_install_command(s.package_manager, s.distro_id, s.distro_like, min(ccs) if ccs else None)


def _upgrade_driver(facts: Facts, minimum: str | None) -> str:
    """Upgrade to ≥ minimum. In a container the driver (module and, via the NVIDIA container toolkit, its
    libraries) is the host's: one installed inside causes a Driver/library version mismatch."""
    at_least = f" to ≥ {minimum}" if minimum else ""
    if facts.system.container:
        return (
            f"# upgrade the NVIDIA driver on the host{at_least}, then restart the container\n"
            f"# this runs in a {facts.system.container} container: do not install a driver inside it"
        )
    return f"# upgrade the NVIDIA driver{at_least}\n{_install_driver(facts)}"


# --------------------------------------------------------------------------------------------- driver


@check
def driver_checks(facts: Facts) -> Iterable[Finding]:
    if not has_nvidia_gpu(facts) and facts.system.wsl != 2:
        return []
    findings: list[Finding] = []
    if facts.system.wsl == 2:
        findings.extend(_wsl_linux_driver(facts))
    else:
        findings.extend(_not_bound(facts))
    findings.extend(_mismatch(facts))
    findings.extend(_nvml_other(facts))
    findings.extend(_too_old(facts))
    if driver := _driver_version(facts):
        findings.extend(_too_old_for_any_tf(facts, driver))
    if facts.system.wsl == 2 and not facts.gpus and not findings:
        return []  # a WSL2 guest without GPU: gpu.none says it
    return with_ok("driver", findings, lambda: _ok(facts))


def _not_bound(facts: Facts) -> list[Finding]:
    """GPU on the PCI bus, but no nvidia kernel module driving it: nouveau, Secure Boot, or no driver at all."""
    d = facts.driver
    if d.nvidia_module_loaded or facts.gpus:
        return []
    pci = nvidia_pci(facts)
    evidence = [
        f"PCI {g.address} {g.vendor_id}:{g.device_id} class {g.class_code}, kernel driver: {g.driver or 'none'}"
        for g in pci
    ]
    evidence.append("nvidia kernel module: not loaded")
    nouveau = d.nouveau_loaded or any(g.driver in ("nouveau", "nova_core") for g in pci)
    installed = bool(d.userspace_version or (d.nvml_error is not None and d.nvml_error.kind == "driver_not_loaded"))
    out = [_nouveau(facts, evidence)] if nouveau else []
    secure = _secure_boot(facts, evidence, installed) if d.secure_boot else None
    if secure is not None:
        out.append(secure)
    elif installed and not nouveau:
        out.append(_module_not_loaded(facts, evidence))
    if not installed and not nouveau:
        out.append(
            Finding(
                code="driver.not-installed",
                severity=Severity.ERROR,
                title="NVIDIA GPU present but no NVIDIA driver installed",
                evidence=evidence,
                fix=_install_driver(facts, then_reboot=True),
            )
        )
    return out


def _nouveau(facts: Facts, evidence: list[str]) -> Finding:
    pm = facts.system.package_manager
    # Install first (the driver packages usually blacklist nouveau too), then make sure, then reboot.
    install = _driver_package_command(facts)
    blacklist = "printf 'blacklist nouveau\\noptions nouveau modeset=0\\n'"
    steps = [
        install or "# install the NVIDIA driver for your distribution: https://www.nvidia.com/drivers",
        f"{blacklist} | sudo tee /etc/modprobe.d/blacklist-nouveau.conf",
        distro_command(pm, "rebuild-initramfs") or "# rebuild the initramfs (update-initramfs -u / dracut -f)",
        "sudo reboot",
    ]
    return Finding(
        code="driver.nouveau",
        severity=Severity.ERROR,
        title="The open-source nouveau driver holds the GPU: CUDA cannot use it",
        evidence=evidence + ["nouveau kernel module: loaded" if facts.driver.nouveau_loaded else "nouveau: bound"],
        fix="\n".join(steps),
    )


def _secure_boot(facts: Facts, evidence: list[str], installed: bool) -> Finding | None:
    """With the driver installed, Secure Boot is the likely reason its module is not loaded. Without it (the
    nouveau laptop), it is the next hurdle: the module about to be installed must be signed. Not so where the
    kernel loads unsigned modules anyway (Arch): there only an installed-but-unloaded driver is worth a word."""
    no_mok = distro_command(facts.system.package_manager, "secure-boot-no-mok")
    if no_mok is not None and not installed:
        return None
    evidence = evidence + ["Secure Boot: enabled"] + ([] if installed else ["NVIDIA userspace driver: not found"])
    if no_mok is not None:
        title = "Secure Boot is on and the nvidia module is not loaded (this kernel does not require it signed)"
        return Finding(code="driver.secure-boot", severity=Severity.ERROR, title=title, evidence=evidence, fix=no_mok)
    enroll = distro_command(facts.system.package_manager, "mok-import") or (
        "# sudo mokutil --import <the DKMS signing key>"
    )
    steps = ([] if installed else ["# after installing the driver (its DKMS build creates the key):"]) + [
        enroll,
        "sudo reboot",
        "# then choose 'Enroll MOK' at the blue screen (or use the distro's signed driver packages, "
        "or turn Secure Boot off)",
    ]
    return Finding(
        code="driver.secure-boot",
        severity=Severity.ERROR if installed else Severity.WARNING,
        title="Secure Boot is on and the nvidia module is not loaded: an unsigned module is rejected"
        if installed
        else "Secure Boot is on: the nvidia module you install must be signed, or the kernel rejects it",
        evidence=evidence,
        fix="\n".join(steps),
    )


def _module_not_loaded(facts: Facts, evidence: list[str]) -> Finding:
    d, pm = facts.driver, facts.system.package_manager
    return Finding(
        code="driver.module-not-loaded",
        severity=Severity.ERROR,
        title="The NVIDIA userspace driver is installed but its kernel module is not loaded",
        evidence=evidence + ([f"NVML: {d.nvml_error.message}"] if d.nvml_error else []),
        fix="sudo modprobe nvidia\n"
        "# if that fails, `sudo dmesg | grep -i nvidia` says why; a failed DKMS build needs the kernel headers:\n"
        f"{install_command(pm, ['kernel-headers', 'dkms']) or '# install the kernel headers, then:'}\n"
        "sudo dkms autoinstall",
    )


def _mismatch(facts: Facts) -> list[Finding]:
    d = facts.driver
    kernel, user = d.kernel_module_version, d.userspace_version
    reported = d.nvml_error is not None and d.nvml_error.kind == "lib_rm_version_mismatch"
    if not reported and not (kernel and user and version(kernel) != version(user)):
        return []
    evidence = [f"kernel module: {kernel or '?'} (/proc/driver/nvidia/version)", f"userspace library: {user or '?'}"]
    if d.nvml_error:
        evidence.append(f"NVML: {d.nvml_error.message}")
    return [
        Finding(
            code="driver.version-mismatch",
            severity=Severity.ERROR,
            title="Driver/library version mismatch: the loaded kernel module is not the installed driver's",
            evidence=evidence,
            fix="sudo reboot\n"
            "# the driver was upgraded but the old kernel module is still loaded; without a reboot:\n"
            "# sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && sudo modprobe nvidia",
        )
    ]


def _nvml_other(facts: Facts) -> list[Finding]:
    err = facts.driver.nvml_error
    if (
        err is None
        or not facts.driver.nvidia_module_loaded
        or err.kind in ("lib_rm_version_mismatch", "driver_not_loaded")
    ):
        return []
    if err.kind == "gpu_lost":
        return [
            Finding(
                code="driver.gpu-lost",
                severity=Severity.ERROR,
                title="A GPU has fallen off the bus",
                evidence=[f"NVML: {err.message}"],
                fix="sudo reboot\n# if it recurs, check `sudo dmesg | grep -i xid` for power or thermal faults",
            )
        ]
    if err.kind == "library_not_found":
        fix = (
            "# start the container with --gpus all (nvidia-container-toolkit on the host): it mounts the driver's "
            "libraries in"
            if facts.system.container
            else f"# install the driver's userspace libraries, version "
            f"{facts.driver.kernel_module_version or 'of the kernel module'}:\n{_install_driver(facts)}"
        )
        return [
            Finding(
                code="driver.userspace-missing",
                severity=Severity.ERROR,
                title="The nvidia kernel module is loaded but its userspace library (libnvidia-ml.so.1) is missing",
                evidence=[f"kernel module: {facts.driver.kernel_module_version}", f"NVML: {err.message}"],
                fix=fix,
            )
        ]
    fix = (
        "ls -l /dev/nvidia*\n# add your user to the group that owns them; in a container, pass the devices (--gpus all)"
        if err.kind == "no_permission"
        else "sudo dmesg | grep -iE 'NVRM|Xid' | tail\n# a hung GPU or driver: a reboot clears it"
        if err.kind == "timeout"
        else "nvidia-smi\n# its message usually names the cause"
    )
    return [
        Finding(
            code="driver.nvml-failed",
            severity=Severity.WARNING,
            title=f"NVML could not be used ({err.kind})",
            evidence=[f"NVML: {err.message}"]
            + ([f"nvidia-smi: {facts.driver.nvidia_smi_error}"] if facts.driver.nvidia_smi_error else []),
            fix=fix,
        )
    ]


def _wsl_linux_driver(facts: Facts) -> list[Finding]:
    evidence = wsl_linux_driver_evidence(facts)
    if not evidence:
        return []
    # The cuda and cuda-drivers metapackages pull the Linux driver in: the usual way it gets there.
    remove = (
        "sudo apt-get remove --purge '^nvidia-driver-.*' '^libnvidia-.*' '^nvidia-kernel-.*'\n"
        "# if NVIDIA's repository installed them (apt stops at a package it does not know, hence a line apart):\n"
        "sudo apt-get remove --purge cuda cuda-drivers"
        if facts.system.package_manager == "apt"
        else "# remove the Linux NVIDIA driver packages inside WSL (and the cuda / cuda-drivers metapackages)"
    )
    return [
        Finding(
            code="driver.wsl-linux-driver",
            severity=Severity.ERROR,
            title="A Linux NVIDIA driver is installed inside WSL2: it shadows the Windows driver's /usr/lib/wsl/lib",
            evidence=["WSL2: the GPU driver comes from Windows"] + evidence,
            fix=f"{remove}\n{_stray_files(facts)}"
            "# then, in Windows: wsl --shutdown; update the NVIDIA driver on Windows only\n"
            "# a CUDA toolkit inside WSL: only cuda-toolkit-12-x from NVIDIA's WSL-Ubuntu repository "
            "(developer.nvidia.com/cuda-downloads, Linux > x86_64 > WSL-Ubuntu), never cuda or cuda-drivers",
        )
    ]


def _stray_files(facts: Facts) -> str:
    """The Linux driver's files by path: a .run installer's are in no package, so only removing them helps."""
    paths = [lib.path for lib in facts.driver.wsl_linux_libraries or []]
    if not paths:
        return ""
    return (
        f"# any of these left afterwards (a .run installer's files, in no package): "
        f"sudo rm -f {' '.join(paths)} && sudo ldconfig\n"
    )


def driver_max_cuda(facts: Facts) -> tuple[Version | None, str]:
    """The highest CUDA the driver supports: NVML's answer, else derived from the driver version and the table."""
    if facts.driver.cuda_driver_version:
        return version(facts.driver.cuda_driver_version), "NVML"
    top = max_cuda_for_driver(_driver_version(facts), _column(facts))
    return (top, "CUDA release-notes table") if top else (None, "")


def _at_least(driver: str | None, minimum: str) -> bool:
    have, need = version(driver), version(minimum)
    return have is not None and need is not None and have >= need


def _too_old(facts: Facts) -> list[Finding]:
    supported, source = driver_max_cuda(facts)
    driver = _driver_version(facts)
    if supported is None or driver is None:
        return []
    out = []
    tf_cuda = tf_cuda_version(facts)
    if tf_cuda:
        out += _needs(
            facts,
            tf_cuda,
            f"TensorFlow {facts.tensorflow.version}",
            "tf",
            supported,
            source,
            ptx=any(coverage(facts, g)[0] == "ptx" for g in facts.gpus),
        )
    for tk in facts.cuda.toolkits:
        if tk.version:
            out += _needs(
                facts,
                tk.version,
                f"CUDA toolkit {tk.version} at {tk.path}",
                "toolkit",
                supported,
                source,
                ptx=False,
            )
    return out


def _too_old_for_any_tf(facts: Facts, driver: str) -> list[Finding]:
    """No CUDA build of TensorFlow here yet (none, or a CPU one): is there any release with wheels for this Python
    whose CUDA this driver runs? If not, say the newest TensorFlow that would run with it, and the driver to get."""
    bi = facts.tensorflow.build_info
    if bi is not None and bi.is_cuda_build or facts.system.os not in (None, "Linux") or not gpu_usable(facts):
        return []
    branch, column = major(driver), _column(facts)
    python = major_minor(facts.tensorflow.python_version or facts.system.python_version)
    names = releases_for_python(python)
    supported, _ = driver_max_cuda(facts)
    have = (supported.major, supported.minor) if supported else (0, 0)
    if branch is None or not names or any(_runs_here(facts, branch, n, have) for n in names):
        return []
    newest = max(names, key=version_key)
    need = toolkit_minimum(release_rows()[newest]["cuda"], column)
    runs = [n for n in release_rows() if _runs_here(facts, branch, n, have)]
    older = max(runs, key=version_key) if runs else None
    built = f"TensorFlow {newest}: CUDA {release_rows()[newest]['cuda']}"
    if python:
        built = f"Python {python[0]}.{python[1]}: TensorFlow {join(names)} have wheels, the newest {built}"
    evidence = [f"driver {driver}: {_branch_cuda(branch, column)}", built]
    fix = _upgrade_driver(facts, need)
    if older is not None:
        lo, hi = release_rows()[older]["python"]
        evidence.append(
            f"TensorFlow {older} (CUDA {release_rows()[older]['cuda']}) is the newest that runs on this "
            f"driver; it supports Python {lo}–{hi}"
        )
        extra = "[and-cuda]" if has_and_cuda_extra(older) else ""
        fix += (
            f"\n# or keep this driver and use TensorFlow {older}, the newest that runs on it (Python {lo}–{hi}):"
            f"\npython{hi} -m venv ~/tf\n~/tf/bin/python -m pip install 'tensorflow{extra}=={older}.*'"
        )
        if not extra:
            fix += (
                f"\n# TensorFlow {older} loads CUDA {release_rows()[older]['cuda']} and cuDNN "
                f"{release_rows()[older]['cudnn']} from the system"
            )
    return [
        Finding(
            code="driver.too-old-for-any-tf",
            severity=Severity.ERROR,
            title=f"The NVIDIA driver {driver} is too old for every TensorFlow with wheels for this Python",
            evidence=evidence,
            fix=fix,
        )
    ]


# What a too-old driver cannot run: the installed TensorFlow's CUDA (an error), or a CUDA toolkit on disk (a warning).
Target = Literal["tf", "toolkit"]


def _needs(
    facts: Facts, cuda: str, what: str, target: Target, supported: Version, source: str, ptx: bool
) -> list[Finding]:
    need = major_minor(cuda)
    have = (supported.major, supported.minor)
    if need is None or have >= need:
        return []
    col, driver = _column(facts), _driver_version(facts)
    compat = minor_compat_minimum(need[0], col)
    full = toolkit_minimum(cuda, col)
    # major.minor: a toolkit's version.json says "12.6.20241114" (a release date), the driver table rows are 12.6.
    evidence = [
        f"driver {driver} supports CUDA ≤ {have[0]}.{have[1]} ({source})",
        f"{what} needs CUDA {need[0]}.{need[1]}",
    ]
    fix = _upgrade_driver(facts, full or compat)
    # No upgrade past the last driver branch NVIDIA ships for the oldest GPU here (cuda_drivers.json).
    limited = gpu_driver_limit(facts)
    gpu, limit = limited if limited else (None, None)
    branch = int(limit["branch"]) if limit else None
    last = ""
    if gpu is not None and limit is not None and branch is not None and not within_branch(full, branch):
        last = (
            f"R{branch} is the last NVIDIA driver branch for GPU {gpu.index} ({gpu.name}, {limit['architecture']}, "
            f"compute capability {gpu.compute_capability}): {_branch_cuda(branch, col)}"
        )
        fix = f"# nothing to upgrade: R{branch} is the last driver branch for GPU {gpu.index} ({gpu.name})"
    if have[0] == need[0] and compat and _at_least(driver, compat):
        evidence.append(f"CUDA {need[0]}.x minor-version compatibility: driver ≥ {compat} runs it")
        if not ptx:
            return [
                Finding(
                    code="driver.minor-compat-for-tf" if target == "tf" else "driver.minor-compat-for-toolkit",
                    severity=Severity.INFO,
                    title=f"{what} runs on this older driver through CUDA minor-version compatibility",
                    evidence=evidence
                    + ["PTX JIT and the newest CUDA APIs still need the newer driver"]
                    + ([last] if last else []),
                    fix=fix,
                )
            ]
        evidence.append(
            "a GPU here runs TensorFlow through PTX JIT, and PTX from a newer CUDA cannot be JIT-compiled "
            "by an older driver (CUDA_ERROR_UNSUPPORTED_PTX_VERSION)"
        )
    if not last or gpu is None or branch is None:
        if target == "tf":
            fix += _older_tf_for_driver(facts, have)
        return [
            Finding(
                code="driver.too-old-for-tf" if target == "tf" else "driver.too-old-for-toolkit",
                severity=Severity.ERROR if target == "tf" else Severity.WARNING,
                title=f"The NVIDIA driver is too old for {what}",
                evidence=evidence,
                fix=fix,
            )
        ]
    if compat and not branch_runs_cuda(branch, cuda, col):
        evidence.append(f"CUDA {need[0]}.x minor-version compatibility needs driver ≥ {compat}")
    evidence.append(last)
    return [
        Finding(
            code="driver.too-old-for-tf" if target == "tf" else "driver.too-old-for-toolkit",
            severity=Severity.ERROR if target == "tf" else Severity.WARNING,
            title=f"GPU {gpu.index} ({gpu.name}) cannot run {what}: it needs CUDA {need[0]}.{need[1]}, and no driver "
            f"for this GPU goes past R{branch}",
            evidence=evidence,
            fix=_capped_fix(facts, gpu, branch, target, last),
        )
    ]


def _older_tf_for_driver(facts: Facts, have: tuple[int, int]) -> str:
    """The alternative to a driver upgrade: the newest TensorFlow for this Python whose CUDA this driver runs
    (tensorflow 2.14, CUDA 11.8, on a cluster without CUDA 12 drivers: KosinskiLab/AlphaPulldown#296)."""
    column = _column(facts)
    python = major_minor(facts.tensorflow.python_version or facts.system.python_version)
    branch = major(_driver_version(facts))
    fits = [n for n in releases_for_python(python) if branch and _runs_here(facts, branch, n, have)]
    if not fits:
        return ""
    older = max(fits, key=version_key)
    extra = "[and-cuda]" if has_and_cuda_extra(older) and column == "linux" else ""
    from envdoctor.checks.common import pip_fix

    cuda = release_rows()[older]["cuda"]
    return (
        f"\n# or keep this driver: TensorFlow {older} (CUDA {cuda}) is the newest for this Python that runs on it\n"
        + pip_fix(facts, f"'tensorflow{extra}=={older}.*'")
    )


def _runs_here(facts: Facts, branch: int, release: str, have: tuple[int, int]) -> bool:
    """The driver runs this release's wheels: its CUDA within the branch (minor-version compatibility included),
    and within what the driver supports outright where a GPU here would run the release through PTX JIT, which
    minor-version compatibility does not cover."""
    from envdoctor.checks.gpu import pci_gpus_as_models

    row = release_rows()[release]
    mm = major_minor(row["cuda"])
    if mm is None or not branch_runs_cuda(branch, row["cuda"], _column(facts)):
        return False
    ccs = [major_minor(g.compute_capability) for g in facts.gpus or pci_gpus_as_models(facts)]
    jit = any(cc and not sass_for(row["compute_capabilities"], cc) for cc in ccs)
    return not jit or mm <= have


def _branch_cuda(branch: int, col: DriverColumn) -> str:
    """What CUDA a driver branch runs: its toolkit-table maximum, plus the rest of that major where the major's
    minor-version-compatibility minimum is within the branch (R470: CUDA ≤ 11.4, and 11.5-11.8 through it)."""
    top = branch_max_cuda(branch, col)
    if top is None:
        return f"no CUDA toolkit envdoctor knows ({oldest_toolkit()} or later) runs on R{branch}"
    return f"CUDA ≤ {top}{_compat_note(branch, top, col)}"


def _compat_note(branch: int, top: str, col: DriverColumn) -> str:
    """The rest of top's CUDA major, where that major's minor-version-compatibility minimum is within the branch."""
    cuda_major = major(top)
    compat = major(minor_compat_minimum(cuda_major, col)) if cuda_major is not None else None
    runs = compat is not None and compat <= branch
    return f" ({cuda_major}.x through minor-version compatibility)" if runs else ""


def _capped_fix(facts: Facts, gpu, branch: int, target: Target, last: str) -> str:
    """The GPU cannot get a newer driver: the newest TensorFlow (or toolkit) that runs on its last branch."""
    top = branch_max_cuda(branch, _column(facts))
    others = [g for g in facts.gpus if g is not gpu and g.compute_capability != gpu.compute_capability]
    tail = (
        f"\n# or leave GPU {gpu.index} unused and upgrade the driver for the other GPUs "
        f"(then hide it: CUDA_VISIBLE_DEVICES)"
        if others
        else ""
    )
    if target != "tf":
        if top is None:  # `last` already says no toolkit envdoctor knows runs on the branch
            return f"# {last}\n# programs built with this toolkit cannot run on GPU {gpu.index}{tail}"
        note = _compat_note(branch, top, _column(facts))
        return f"# {last}\n# use a CUDA toolkit ≤ {top} for this GPU{note}{tail}"
    cc = major_minor(gpu.compute_capability)
    older = older_tf_fix(facts, cc, branch, f" and whose CUDA runs on R{branch}") if cc else None
    if older:
        return older + tail
    return (
        f"# {last}, and no TensorFlow wheel in envdoctor's table runs on it\n"
        '# TensorFlow runs on the CPU with the GPU hidden: eval "$(envdoctor env --gpus none)"' + tail
    )


def _ok(facts: Facts) -> Finding | None:
    d = facts.driver
    ver = _driver_version(facts)
    if ver is None:
        return None
    flavour = f" ({d.kernel_module_flavour} kernel module)" if d.kernel_module_flavour else ""
    supported, _ = driver_max_cuda(facts)
    cuda = f", supports CUDA ≤ {supported.major}.{supported.minor}" if supported else ""
    evidence = [f"kernel module: {d.kernel_module_version}"] if d.kernel_module_version else []
    source = d.gpu_source or ("NVML" if facts.host else "libnvidia-ml.so.1 file name")
    evidence += [f"userspace: {d.userspace_version} ({source})"] if d.userspace_version else []
    if d.secure_boot is not None:
        evidence.append(f"Secure Boot: {'enabled' if d.secure_boot else 'disabled'}")
    return Finding(
        code="driver.ok", severity=Severity.OK, title=f"NVIDIA driver {ver}{flavour}{cuda}", evidence=evidence
    )
