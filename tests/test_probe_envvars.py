"""Environment-variable probe. The H100 capture's host.txt records the real CUDA-relevant environment."""

from __future__ import annotations

import os
from pathlib import Path

from envdoctor.facts import Facts
from envdoctor.probes import ProbeContext
from envdoctor.probes.envvars import VARIABLES, env_facts, probe

H100 = Path(__file__).parent / "fixtures" / "h100-firecracker"


def test_only_set_variables_are_recorded_and_empty_counts_as_set() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "", "TF_FORCE_GPU_ALLOW_GROWTH": "True", "HOME": "/root", "EDITOR": "vi"}
    facts = Facts()
    probe(ProbeContext(env=env), facts)
    # An empty CUDA_VISIBLE_DEVICES hides every GPU: it must not be dropped as "unset".
    assert facts.env.variables == {"CUDA_VISIBLE_DEVICES": "", "TF_FORCE_GPU_ALLOW_GROWTH": "True"}
    assert facts.env.ld_library_path == [] and facts.env.path_cuda_entries == []


def test_issue_variables_are_all_watched() -> None:
    for name in (
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        "TF_FORCE_GPU_ALLOW_GROWTH",
        "TF_GPU_ALLOCATOR",
        "TF_ENABLE_ONEDNN_OPTS",
        "TF_CPP_MIN_LOG_LEVEL",
        "XLA_FLAGS",
        "CUDA_HOME",
        "CUDA_PATH",
        "NVIDIA_VISIBLE_DEVICES",
        "LD_LIBRARY_PATH",
    ):
        assert name in VARIABLES


def _captured_env(host_txt: Path) -> dict[str, str]:
    """The '## env (CUDA-relevant)' section of a capture's host.txt as a mapping."""
    lines = host_txt.read_text().split("## env (CUDA-relevant)\n", 1)[1].split("\n## ", 1)[0].splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_h100_capture_environment() -> None:
    env = _captured_env(H100 / "idle" / "host.txt")
    e = env_facts(env, ProbeContext(root=H100 / "idle" / "root", env=env))
    assert e.variables == {
        "CUDA_HOME": "/usr/local/cuda",
        "LD_LIBRARY_PATH": "/usr/local/nvidia/lib64:/usr/local/nvidia/lib",
        "NVIDIA_DRIVER_CAPABILITIES": "compute,graphics,utility",
        "NVIDIA_VISIBLE_DEVICES": "0",
    }
    assert e.ld_library_path == ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib"]
    assert e.path_cuda_entries == ["/usr/local/nvidia/bin", "/usr/local/cuda/bin"]


def test_empty_ld_library_path_entries_are_kept() -> None:
    # "a::b" and a trailing ":" each add an empty entry, which the loader reads as the current directory.
    e = env_facts({"LD_LIBRARY_PATH": "/usr/local/cuda-13.0/lib64::/opt/lib:"})
    assert e.ld_library_path == ["/usr/local/cuda-13.0/lib64", "", "/opt/lib", ""]
    assert env_facts({"LD_LIBRARY_PATH": ""}).ld_library_path == [""]


def test_path_entry_holding_nvcc_counts_even_without_cuda_in_its_name(tmp_path: Path) -> None:
    bin_dir = tmp_path / "opt/tools/bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "nvcc").write_text("#!/bin/sh\n")
    (tmp_path / "usr/bin").mkdir(parents=True)
    # The driver's nvidia-smi sits in /usr/bin on every GPU machine (the real H100 session listed /usr/bin and
    # /bin for it): that says nothing about CUDA, so it does not make /usr/bin CUDA-relevant.
    (tmp_path / "usr/bin/nvidia-smi").write_text("")
    env = {"PATH": "/opt/tools/bin:/usr/bin:/usr/lib/wsl/lib:/usr/bin"}
    e = env_facts(env, ProbeContext(root=tmp_path, env=env))
    assert e.path_cuda_entries == ["/opt/tools/bin", "/usr/lib/wsl/lib"]


def test_this_host_environment() -> None:
    facts = Facts()
    probe(ProbeContext(), facts)
    assert set(facts.env.variables) == {name for name in VARIABLES if name in os.environ}
