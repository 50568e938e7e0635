"""envdoctor.distro_pkgs over recipes/packages.json: the commands the doctor and build-tf print."""

from __future__ import annotations

import pytest

from envdoctor.distro_pkgs import distro_command, install_command, package_names


@pytest.mark.parametrize(
    "pm, expected",
    [
        ("apt", "sudo apt-get install -y build-essential clang lld git"),
        ("dnf", "sudo dnf install -y gcc gcc-c++ make clang lld git"),
        ("yum", "sudo yum install -y gcc gcc-c++ make clang lld git"),
        ("zypper", "sudo zypper install -y gcc gcc-c++ make clang lld git"),
        ("pacman", "sudo pacman -S --needed base-devel clang lld git"),
    ],
)
def test_build_prerequisites_per_manager(pm, expected):
    assert install_command(pm, ["build-essential", "clang", "lld", "git"]) == expected


def test_unknown_manager_or_package_gives_none():
    assert install_command(None, ["git"]) is None
    assert install_command("apk", ["git"]) is None
    assert install_command("apt", ["no-such-package"]) is None
    assert install_command("apt", ["bazelisk"]) is None  # not packaged there: no half-true command
    assert install_command("pacman", ["bazelisk"]) == "sudo pacman -S --needed bazelisk"


def test_packages_included_in_python_are_skipped():
    assert install_command("dnf", ["python3-venv", "python3-dev"]) == "sudo dnf install -y python3-devel"
    assert install_command("dnf", ["python3-venv"]) is None  # nothing to install
    assert install_command("pacman", ["python3-dev", "python3-pip"]) == "sudo pacman -S --needed python python-pip"


def test_duplicates_are_installed_once():
    assert install_command("pacman", ["python3-dev", "python3-dev"]) == "sudo pacman -S --needed python"


def test_nvidia_driver_distro_overrides():
    assert install_command("apt", ["nvidia-driver"], "ubuntu") == "sudo ubuntu-drivers install"
    # Debian's driver lives in components that a default install does not enable: say so before the command.
    debian = install_command("apt", ["nvidia-driver"], "debian").splitlines()
    assert debian[0].startswith("# first enable the contrib, non-free and non-free-firmware components")
    assert debian[1] == "sudo apt-get update && sudo apt-get install -y nvidia-driver firmware-misc-nonfree"
    assert install_command("apt", ["nvidia-driver"], "raspbian") == (
        "sudo apt-get install -y nvidia-driver firmware-misc-nonfree"
    )
    assert install_command("dnf", ["nvidia-driver"], "fedora").endswith(
        "sudo dnf install -y akmod-nvidia xorg-x11-drv-nvidia-cuda"
    )
    # RHEL and its clones: nvidia-open comes from NVIDIA's CUDA repository, dkms from EPEL.
    for distro in ("rocky", "almalinux", "rhel"):
        cmd = install_command("dnf", ["nvidia-driver"], distro)
        assert "epel-release" in cmd and cmd.endswith("sudo dnf install -y nvidia-open")
        assert "--add-repo https://developer.download.nvidia.com/compute/cuda/repos/rhel$(rpm -E %rhel)/" in cmd
    assert "--set-enabled crb" in install_command("dnf", ["nvidia-driver"], "rocky")
    assert install_command("dnf", ["nvidia-driver"], "centos") == "sudo dnf install -y nvidia-open"
    # an override only replaces a lone package: mixed lists keep generic names
    assert install_command("apt", ["nvidia-driver", "git"], "ubuntu").startswith(
        "sudo apt-get install -y nvidia-driver"
    )


def test_kernel_headers_and_other_commands():
    assert package_names("apt", "kernel-headers") == ["linux-headers-$(uname -r)"]
    assert package_names("yum", "kernel-headers") == ["kernel-devel-$(uname -r)", "kernel-headers"]
    assert distro_command("apt", "rebuild-initramfs") == "sudo update-initramfs -u"
    assert distro_command("pacman", "rebuild-initramfs") == "sudo mkinitcpio -P"
    assert distro_command(None, "rebuild-initramfs") is None
    assert distro_command("apt", "no-such-action") is None


@pytest.mark.parametrize(
    "distro_id, like, expected",
    [
        # os-release ID / ID_LIKE as shipped (python-distro tests/resources/distros/*, each distro's os-release)
        ("linuxmint", ["ubuntu", "debian"], "sudo ubuntu-drivers install"),  # Linux Mint 21
        ("pop", ["ubuntu", "debian"], "sudo ubuntu-drivers install"),  # Pop!_OS 22.04
        ("elementary", ["ubuntu"], "sudo ubuntu-drivers install"),
        ("zorin", ["ubuntu"], "sudo ubuntu-drivers install"),
        ("neon", ["ubuntu", "debian"], "sudo ubuntu-drivers install"),  # KDE neon
        ("linuxmint", ["debian"], "sudo apt-get update && sudo apt-get install -y nvidia-driver firmware-misc-nonfree"),
        ("kali", ["debian"], "sudo apt-get update && sudo apt-get install -y nvidia-driver firmware-misc-nonfree"),
    ],
)
def test_nvidia_driver_override_follows_id_like_for_derivatives(distro_id, like, expected):
    assert install_command("apt", ["nvidia-driver"], distro_id, like).splitlines()[-1] == expected


def test_id_like_fallback_never_reaches_fedora_or_rhel_commands():
    # Oracle Linux and Amazon Linux 2023 say ID_LIKE="fedora": RPM Fusion's $(rpm -E %fedora) is empty there.
    assert install_command("dnf", ["nvidia-driver"], "ol", ["fedora"]) == "sudo dnf install -y nvidia-open"
    # CentOS 7 says ID_LIKE="rhel fedora" and has yum only: no dnf command from RHEL's override.
    assert install_command("yum", ["nvidia-driver"], "centos", ["rhel", "fedora"]) == "sudo yum install -y nvidia-open"
    # The distro's own override wins over its parent's.
    assert install_command("dnf", ["nvidia-driver"], "rocky", ["rhel", "centos", "fedora"]).startswith(
        "sudo dnf config-manager --set-enabled crb"
    )


def test_amazon_linux_2023_uses_nvidias_amzn2023_repository_but_amazon_linux_2_does_not():
    al2023 = install_command("dnf", ["nvidia-driver"], "amzn", ["fedora"])
    assert "--add-repo https://developer.download.nvidia.com/compute/cuda/repos/amzn2023/" in al2023
    assert al2023.endswith("sudo dnf install -y nvidia-open") and "rpmfusion" not in al2023
    assert install_command("yum", ["nvidia-driver"], "amzn", ["centos", "rhel", "fedora"]) == (
        "sudo yum install -y nvidia-open"
    )
