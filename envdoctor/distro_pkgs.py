"""Distro package names and install commands, from recipes/packages.json (knowledge is data)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envdoctor.resources import load_recipe

_RECIPE = "packages.json"


def _recipe() -> dict[str, Any]:
    return load_recipe(_RECIPE)


def _manager_key(package_manager: str) -> str:
    # yum-era systems (RHEL 7, Amazon Linux 2) use the dnf family's package names.
    return "dnf" if package_manager == "yum" else package_manager


def package_names(package_manager: str | None, logical: str) -> list[str] | None:
    """The distro package names for one logical package; None if unknown or not packaged there."""
    if not package_manager:
        return None
    names = _recipe()["packages"].get(logical, {}).get(_manager_key(package_manager))
    return list(names) if names is not None else None


def install_command(
    package_manager: str | None, logical: list[str], distro_id: str | None = None, distro_like: Sequence[str] = ()
) -> str | None:
    """One copy-pasteable command that installs the logical packages, e.g. ["clang", "lld", "git"].

    None when there is no such command: unknown package manager, a package the distro does not ship, or
    nothing left to install. With `distro_id` (and its os-release ID_LIKE, `distro_like`), a distro-specific
    command replaces the generic one where the recipe names one (Ubuntu's `ubuntu-drivers install` for the
    NVIDIA driver, also for Mint or Pop!_OS); that is only possible for a single logical package.
    """
    recipe = _recipe()
    if len(logical) == 1:
        override = _override(recipe, logical[0], package_manager, distro_id, distro_like)
        if override is not None:
            return override
    form = recipe["install"].get(package_manager or "")
    if form is None:
        return None
    packages: list[str] = []
    for name in logical:
        names = package_names(package_manager, name)
        if names is None:
            return None
        packages.extend(n for n in names if n not in packages)
    return form.format(packages=" ".join(packages)) if packages else None


def driver_install_command(
    package_manager: str | None,
    distro_id: str | None,
    distro_like: Sequence[str] = (),
    lowest_cc: tuple[int, int] | None = None,
) -> str | None:
    """The NVIDIA driver install command for GPUs whose lowest compute capability is `lowest_cc`.

    Several distros' default driver package has only the open kernel modules, which need Turing (7.5) or newer:
    below that the proprietary-module package of the R580 branch is chosen (packages.json _sources).
    None (an unknown capability) keeps the default. None back: no known command for that distro and GPU.
    """
    from envdoctor.knowledge.versions import major_minor  # here: packaging's import is not paid by every caller

    low = major_minor(str(_recipe()["open_kernel_modules_min_cc"])) or (0, 0)
    logical = "nvidia-driver-proprietary" if lowest_cc is not None and lowest_cc < low else "nvidia-driver"
    return install_command(package_manager, [logical], distro_id, distro_like)


def _override(
    recipe: dict[str, Any], logical: str, pm: str | None, distro_id: str | None, like: Sequence[str]
) -> str | None:
    """The distro-specific command for one package: the ID's own, else the first ID_LIKE parent's that a
    derivative may inherit (Ubuntu's for Mint; never Fedora's RPM Fusion for Oracle or Amazon Linux)."""
    overrides = recipe["distro_overrides"]
    inheritable = recipe["distro_like_fallback"]
    candidates = ([distro_id] if distro_id else []) + [p for p in like if p in inheritable]
    for candidate in candidates:
        # "<id>@<manager>" pins a command to one release family: Amazon Linux 2023 (dnf), not 2 (yum).
        for key in (f"{candidate}@{pm}", candidate):
            entry = overrides.get(key)
            command = entry.get(logical) if isinstance(entry, dict) else None  # "_doc" is a string
            if command is not None:
                return str(command)
    return None


def distro_command(package_manager: str | None, action: str) -> str | None:
    """A non-install command for the package manager's family, e.g. "rebuild-initramfs", "mok-import"."""
    if not package_manager:
        return None
    command = _recipe()["commands"].get(action, {}).get(package_manager)
    return str(command) if command is not None else None
