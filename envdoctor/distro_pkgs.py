"""Distro package names and install commands, from recipes/packages.json (knowledge is data)."""

from __future__ import annotations

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


def install_command(package_manager: str | None, logical: list[str], distro_id: str | None = None) -> str | None:
    """One copy-pasteable command that installs the logical packages, e.g. ["clang", "lld", "git"].

    None when there is no such command: unknown package manager, a package the distro does not ship, or
    nothing left to install. With `distro_id`, a distro-specific command replaces the generic one where
    the recipe names one (Ubuntu's `ubuntu-drivers install` for the NVIDIA driver); that is only
    possible for a single logical package.
    """
    recipe = _recipe()
    override = recipe["distro_overrides"].get(distro_id or "", {})
    if len(logical) == 1 and logical[0] in override:
        return str(override[logical[0]])
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


def distro_command(package_manager: str | None, action: str) -> str | None:
    """A non-install command for the package manager's family, e.g. "rebuild-initramfs", "mok-import"."""
    if not package_manager:
        return None
    command = _recipe()["commands"].get(action, {}).get(package_manager)
    return str(command) if command is not None else None
