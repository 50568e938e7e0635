"""GPU findings whose fix depends on envdoctor's own GPU selection (gpu.memory-in-use) and WSL2 (gpu.unknown),
on real captures: the H100 server, tests/fixtures/gpus/*.json and tests/fixtures/roots/wsl2."""

from __future__ import annotations

import shlex

import pytest
from checks_support import TESTS, codes, fix_convention_violations, gpus_fixture, h100, no_gpu_facts, one

from envdoctor.checks import Severity, run_checks
from envdoctor.errors import UsageError
from envdoctor.facts import LibraryResolution, NvmlError
from envdoctor.gpus.spec import environment_for
from envdoctor.probes import ProbeContext, collect


def _env_commands(fix: str) -> list[list[str]]:
    """The `envdoctor env ...` arguments of each eval line of a fix."""
    out = []
    for line in fix.splitlines():
        if line.startswith("eval "):
            inner = shlex.split(line, comments=True)[1].removeprefix("$(").removesuffix(")")
            out.append(shlex.split(inner)[2:])
    return out


def _run_env(args: list[str], gpus) -> dict[str, str]:
    """What `envdoctor env ARGS` would print, through the same function, on the same GPUs."""
    opts = dict(zip(args[::2], args[1::2]))
    limit = opts.get("--memory-limit")
    return environment_for(opts["--gpus"], gpus, memory_limit_mb=int(limit) if limit else None, read_gpus=lambda: gpus)


def test_every_gpu_busy_leads_with_memory_growth_not_auto(tmp_path, monkeypatch):
    # The real busy H100: its only GPU runs a PyTorch process, so `env --gpus auto:1` would exit 2.
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    facts = h100("busy")
    f = one(facts, "gpu.memory-in-use")
    assert "auto:1" not in f.fix.splitlines()[0]
    commands = _env_commands(f.fix)
    assert commands[0] == ["--gpus", "0"] and commands[1][:3] == ["--gpus", "0", "--memory-limit"]
    for args in commands:  # each suggested command succeeds on this machine
        assert _run_env(args, facts.gpus)["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    with pytest.raises(UsageError, match="only 0 GPU"):
        _run_env(["--gpus", "auto:1"], facts.gpus)
    assert fix_convention_violations([f]) == []


def test_a_free_gpu_left_offers_auto(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    facts = h100("busy")
    facts.gpus += gpus_fixture("theano-8400gs-titan.json")  # two idle GPUs beside the busy H100
    f = one(facts, "gpu.memory-in-use")
    assert _env_commands(f.fix) == [["--gpus", "auto:1"]]
    assert "CUDA_VISIBLE_DEVICES" in _run_env(["--gpus", "auto:1"], facts.gpus)
    assert "TF_FORCE_GPU_ALLOW_GROWTH=true" in f.fix


def test_every_v100_busy_shares_the_one_with_most_free_memory():
    facts = h100("busy")
    facts.gpus = gpus_fixture("v100-busy.json")  # real: every V100 of the DGX-1 runs jobs
    f = one(facts, "gpu.memory-in-use")
    best = max(facts.gpus, key=lambda g: g.memory_free_bytes or 0)
    assert _env_commands(f.fix)[0] == ["--gpus", str(best.index)]
    for args in _env_commands(f.fix):
        _run_env(args, facts.gpus)


def test_wsl2_root_with_windows_libcuda_is_unknown_not_absent():
    facts = collect(ProbeContext(root=TESTS / "fixtures" / "roots" / "wsl2" / "root", env={}))
    found = {f.code: f for f in run_checks(facts)}
    assert "gpu.none" not in found
    unknown = found["gpu.unknown"]
    assert unknown.severity is Severity.INFO and "No NVIDIA GPU" not in unknown.title
    assert any("NVML not queried (--root)" in e for e in unknown.evidence)
    assert fix_convention_violations([unknown]) == []


def test_wsl2_host_with_windows_libcuda_but_nvml_failing_is_unknown():
    facts = no_gpu_facts()
    facts.system.wsl = 2
    facts.driver.nvml_error = NvmlError("library_not_found", "NVML Shared Library Not Found")
    facts.cuda.tf_libraries = [LibraryResolution("cuda", "libcuda.so.1", "found", "/usr/lib/wsl/lib/libcuda.so.1")]
    f = one(facts, "gpu.unknown")
    assert "the Windows driver's libcuda is there: /usr/lib/wsl/lib/libcuda.so.1" in f.evidence
    assert "NVML: NVML Shared Library Not Found" in f.evidence
    assert f.fix.startswith("nvidia-smi\n") and fix_convention_violations([f]) == []
    facts.cuda.tf_libraries = []  # NVML asked, nothing points at a passed-through GPU: no GPU
    assert "gpu.unknown" not in codes(facts)
    assert "NVML: NVML Shared Library Not Found" in one(facts, "gpu.none").evidence


def test_check_and_gpus_say_no_gpu_the_same_way(monkeypatch, capsys):
    # `check` and `gpus` on a machine without the NVIDIA driver (this one: pynvml finds no libnvidia-ml).
    import envdoctor.probes.nvidia as nvidia
    from envdoctor.facts import DriverFacts
    from envdoctor.gpus import table
    from envdoctor.gpus.nogpu import NO_GPU
    from envdoctor.gpus.snapshot import live_gpus

    facts = no_gpu_facts()
    facts.driver.nvml_error = NvmlError("library_not_found", "NVMLError_LibraryNotFound: NVML Shared Library Not Found")
    assert one(facts, "gpu.none").title == NO_GPU
    monkeypatch.setattr(nvidia, "collect_gpus", lambda ctx: (DriverFacts(nvml_error=facts.driver.nvml_error), []))
    gpus, why = live_gpus()
    assert gpus == [] and why == "libnvidia-ml not found: no NVIDIA driver is installed"
    table.print_table(gpus, {}, why)
    out = capsys.readouterr().out
    assert out == f"{NO_GPU}; libnvidia-ml not found: no NVIDIA driver is installed\n" and "NVMLError" not in out


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("driver_not_loaded", "kernel driver is not loaded"),
        ("lib_rm_version_mismatch", "reboot"),
        ("unknown", "NVMLError_Unknown: Unknown Error"),
    ],
)
def test_nvml_reason_in_plain_words(kind, words):
    from envdoctor.gpus.nogpu import nvml_reason

    assert words in nvml_reason(NvmlError(kind, "NVMLError_Unknown: Unknown Error"))
    assert nvml_reason(None) is None


def test_mig_enabled_without_mig_devices_is_an_error():
    # A MIG-enabled GPU runs CUDA only in its MIG devices: with none created TensorFlow registers no GPU.
    facts = h100("idle")
    capture = gpus_fixture("a100-mig.json")  # GPUs 0, 1 whole; 2, 3 in MIG mode with devices
    facts.gpus = capture
    assert "gpu.mig-no-devices" not in codes(facts)
    facts.gpus = [g for g in capture if g.mig_enabled]
    for g in facts.gpus:
        g.mig_devices = []
    f = one(facts, "gpu.mig-no-devices")
    assert f.severity is Severity.ERROR
    index = facts.gpus[0].index
    assert f.fix.splitlines()[0] == f"sudo nvidia-smi mig -i {index} -lgip"
    assert "-cgi <profile> -C" in f.fix and f"sudo nvidia-smi -i {index} -mig 0" in f.fix
    assert fix_convention_violations([f]) == []
    facts.gpus = capture  # GPUs 0 and 1 still run TensorFlow
    assert one(facts, "gpu.mig-no-devices").severity is Severity.WARNING


def test_mig_devices_nvml_could_not_list_are_info_not_an_error():
    facts = h100("idle")
    facts.gpus = [g for g in gpus_fixture("a100-mig.json") if g.mig_enabled]
    for g in facts.gpus:
        g.mig_devices = []
        g.mig_devices_error = "MIG device handle 0: NVMLError_NoPermission: Insufficient Permissions"
    found = codes(facts)
    assert "gpu.mig-no-devices" not in found
    f = one(facts, "gpu.mig-devices-unknown")
    assert f.severity is Severity.INFO
    index = facts.gpus[0].index
    assert f.title.startswith(f"MIG devices unknown (GPU {index}: MIG device handle 0: NVMLError_NoPermission")
    assert fix_convention_violations([f]) == []
    # nor does the CUDA_VISIBLE_DEVICES resolution claim they have no MIG devices
    from envdoctor.gpus.visible import resolve_visible_devices

    assert not any("no MIG devices" in p for p in resolve_visible_devices(None, facts.gpus, None).problems)
    # one GPU known empty, the other unknown: the empty one is reported, but no longer as "nothing runs TF"
    facts.gpus[0].mig_devices_error = None
    empty = one(facts, "gpu.mig-no-devices")
    assert empty.severity is Severity.WARNING
    assert f"MIG devices unknown on GPU {facts.gpus[1].index}" in empty.evidence
    assert not any(e.startswith("usable GPUs") for e in empty.evidence)
