"""`check --deep`: parsing what `import tensorflow` printed (recorded real texts), and real child runs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.facts import Facts, PythonPackage
from envdoctor.probes import ProbeContext
from envdoctor.probes import deep as deep_probe
from envdoctor.probes import tensorflow as tf_probe
from envdoctor.probes.deep import MARKER, missing_cpu_instructions, parse_import_output

# Recorded on this project's dev machine (AMD EPYC Zen 5 VM, 2 vCPUs) with tensorflow-cpu 2.21.0 on
# 2026-11-26: the stderr of `TF_CPP_MIN_LOG_LEVEL=0 python -c SCRIPT`, verbatim.
TF_2_21_CPU_ZEN5 = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795710820.561324    9187 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1795710820.648305    9187 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX_VNNI FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
"""

# TF 1.x-2.3 wording, as quoted in tensorflow/tensorflow#24814.
TF_1_X = (
    "2019-01-10 10:31:19.493618: I tensorflow/core/platform/cpu_feature_guard.cc:141] Your CPU supports "
    "instructions that this TensorFlow binary was not compiled to use: AVX2 FMA\n"
)

# TF ~2.4-2.8 wording (tensorflow/core/platform/cpu_feature_guard.cc of those releases); also an NGC build that
# listed SSE4.1/SSE4.2 there.
TF_2_6_ONEDNN = (
    "I tensorflow/core/platform/cpu_feature_guard.cc:142] This TensorFlow binary is optimized with oneAPI Deep "
    "Neural Network Library (oneDNN) to use the following CPU instructions in performance-critical operations:  "
    "SSE3 SSE4.1 SSE4.2 AVX\nTo enable them in other operations, rebuild TensorFlow with the appropriate compiler flags.\n"
)

# Missing CUDA 11 runtime, TF 2.4 era (tensorflow/tensorflow#45930) and a transitive
# failure (P2, NVIDIA/tensorflow#110), then the skip message of gpu_device.cc.
TF_GPU_LIBS_MISSING = """\
2021-01-04 10:10:49.370580: W tensorflow/stream_executor/platform/default/dso_loader.cc:64] Could not load dynamic library 'libcudart.so.11.0'; dlerror: libcudart.so.11.0: cannot open shared object file: No such file or directory; LD_LIBRARY_PATH: /usr/local/nvidia/lib:/usr/local/nvidia/lib64
2021-01-04 10:10:49.370611: I tensorflow/stream_executor/cuda/cudart_stub.cc:29] Ignore above cudart dlerror if you do not have a GPU set up on your machine.
2023-05-02 08:01:12.100000: W tensorflow/compiler/xla/stream_executor/platform/default/dso_loader.cc:66] Could not load dynamic library 'libcusolver.so.11'; dlerror: libnvJitLink.so.12: cannot open shared object file: No such file or directory
2023-05-02 08:01:12.300000: W tensorflow/core/common_runtime/gpu/gpu_device.cc:1850] Cannot dlopen some GPU libraries. Please make sure the missing libraries mentioned above are installed properly if you would like to use GPU. Follow the guide at https://www.tensorflow.org/install/gpu for how to download and setup the required libraries for your platform.
Skipping registering GPU devices...
"""

# Recent absl log format, from github.com/hungdche/CS588-SP26 mp3/README.md (a CPU-only machine, TF 2.x GPU wheel).
TF_RECENT_NO_CUDA = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1777215668.929391  450463 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1777215668.929972  450463 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
E0000 00:00:1777215672.471936  450463 cuda_executor.cc:1737] INTERNAL: CUDA Runtime error: Failed call to cudaGetRuntimeVersion: Error loading CUDA libraries. GPU will not be used.: Error loading CUDA libraries. GPU will not be used.
W0000 00:00:1777215672.487975  450463 gpu_device.cc:2365] Cannot dlopen some GPU libraries. Please make sure the missing libraries mentioned above are installed properly if you would like to use GPU. Follow the guide at https://www.tensorflow.org/install/gpu for how to download and setup the required libraries for your platform.
Skipping registering GPU devices...
"""

# LOG(FATAL) of cpu_feature_guard.cc (its source text) before SIGABRT.
TF_FATAL_NO_AVX = (
    "F tensorflow/core/platform/cpu_feature_guard.cc:37] The TensorFlow library was compiled to use "
    "AVX instructions, but these aren't available on your machine.\n"
)


def _answer(**data: object) -> str:
    return MARKER + json.dumps({"version": "2.21.0", "gpus": [], **data}) + "\n"


def test_current_wording_real_run() -> None:
    deep = parse_import_output(_answer(), TF_2_21_CPU_ZEN5, 0)
    assert deep.missing_cpu_instructions == ["AVX2", "AVX512F", "AVX512_VNNI", "AVX512_BF16", "AVX_VNNI", "FMA"]
    assert deep.onednn_enabled is True
    assert (deep.tf_version, deep.signal, deep.error, deep.timed_out) == ("2.21.0", None, None, False)
    assert deep.gpus == [] and deep.failed_libraries == []
    assert any("cpu_feature_guard" in m for m in deep.messages)
    assert MARKER not in deep.output_tail and "To enable the following instructions" in deep.output_tail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TF_1_X, ["AVX2", "FMA"]),
        (TF_2_6_ONEDNN, ["SSE3", "SSE4_1", "SSE4_2", "AVX"]),  # TF's SSE4.1 spelled as CpuFacts.features does
        (TF_2_21_CPU_ZEN5, ["AVX2", "AVX512F", "AVX512_VNNI", "AVX512_BF16", "AVX_VNNI", "FMA"]),
        ("nothing to see", []),
    ],
)
def test_cpu_feature_guard_wordings(text: str, expected: list[str]) -> None:
    assert missing_cpu_instructions(text) == expected


def test_onednn_off_only_when_the_import_succeeded_without_the_message() -> None:
    assert parse_import_output(_answer(), TF_1_X, 0).onednn_enabled is False
    assert parse_import_output("", TF_1_X, -4).onednn_enabled is None


def test_failed_libraries_and_skipped_gpu() -> None:
    deep = parse_import_output(_answer(), TF_GPU_LIBS_MISSING, 0)
    # The library TF asked for, and the dependency the loader actually missed.
    assert deep.failed_libraries == ["libcudart.so.11.0", "libcusolver.so.11", "libnvJitLink.so.12"]
    assert any("Cannot dlopen some GPU libraries" in m for m in deep.messages)
    assert any("Skipping registering GPU devices" in m for m in deep.messages)


def test_recent_log_format_without_cuda() -> None:
    deep = parse_import_output(_answer(), TF_RECENT_NO_CUDA, 0)
    assert deep.onednn_enabled is True and deep.failed_libraries == []
    assert any("Could not find cuda drivers" in m for m in deep.messages)
    assert any("Error loading CUDA libraries" in m for m in deep.messages)


def test_gpus_registered() -> None:
    gpus = [
        {"name": "/physical_device:GPU:0", "device_name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]},
        {"name": "/physical_device:GPU:1", "device_name": None, "compute_capability": None},
    ]
    deep = parse_import_output(_answer(gpus=gpus), "", 0)
    assert deep.gpus == [
        "/physical_device:GPU:0 (NVIDIA H100 80GB HBM3, compute capability 9.0)",
        "/physical_device:GPU:1",
    ]


@pytest.mark.parametrize(
    ("stdout", "stderr", "returncode", "error", "signal", "timed_out"),
    [
        ("", "", -4, None, "SIGILL", False),  # killed by the kernel: no word printed
        ("", "Illegal instruction (core dumped)\n", 132, None, "SIGILL", False),  # through a shell wrapper
        ("", TF_FATAL_NO_AVX, -6, None, "SIGABRT", False),
        ("", TF_FATAL_NO_AVX, 134, None, "SIGABRT", False),  # the same abort through a shell wrapper
        ("", "", None, "timeout after 60s", None, True),
        ("", "", -99, None, "signal 99", False),
    ],
)
def test_how_the_child_ended(
    stdout: str, stderr: str, returncode: int | None, error: str | None, signal: str | None, timed_out: bool
) -> None:
    deep = parse_import_output(stdout, stderr, returncode, error)
    assert (deep.signal, deep.timed_out, deep.returncode) == (signal, timed_out, returncode)
    assert deep.tf_version is None


def test_import_error_is_recorded() -> None:
    stdout = 'ENVDOCTOR_IMPORT_ERROR "ImportError: numpy.core.multiarray failed to import"\n'
    deep = parse_import_output(stdout, "", 3)
    assert deep.error == "import tensorflow failed: ImportError: numpy.core.multiarray failed to import"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.text(max_size=400), st.one_of(st.none(), st.integers(-300, 300)))
def test_random_output_never_raises(stdout: str, stderr: str, returncode: int | None) -> None:
    parse_import_output(stdout, stderr, returncode)
    parse_import_output(MARKER + stdout, stderr, returncode)
    parse_import_output("ENVDOCTOR_IMPORT_ERROR " + stdout, stderr, returncode)


# --- the probe itself ---------------------------------------------------------------------------------------


def _facts_with_tf() -> Facts:
    facts = Facts()
    facts.tensorflow.distributions = [PythonPackage("tensorflow", "2.21.0")]
    return facts


def _fake_python(tmp_path: Path, body: str) -> str:
    python = tmp_path / "python3"
    python.write_text("#!/bin/sh\n" + body)
    python.chmod(0o755)
    return str(python)


def test_not_run_under_root(tmp_path: Path) -> None:
    facts = _facts_with_tf()
    deep_probe.probe(ProbeContext(root=tmp_path), facts)
    assert facts.deep is not None and facts.deep.error and "--root" in facts.deep.error


def test_not_run_without_tensorflow() -> None:
    facts = Facts()
    deep_probe.probe(ProbeContext(), facts)
    assert facts.deep is not None and "not installed" in (facts.deep.error or "")


def test_sigill_child(tmp_path: Path) -> None:
    # A real death by SIGILL, as on a CPU without AVX.
    facts = _facts_with_tf()
    deep_probe.probe(ProbeContext(python=_fake_python(tmp_path, "kill -ILL $$\n")), facts)
    assert facts.deep is not None and facts.deep.signal == "SIGILL" and facts.deep.returncode == -4


def test_child_runs_away_from_the_working_directory_and_asks_for_library_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A `tensorflow/` source tree in the working directory must not shadow the installed one, and since TF 2.13
    # "Could not load dynamic library" is a VLOG(1) line of dso_loader: the child asks for it.
    (tmp_path / "tensorflow").mkdir()
    monkeypatch.chdir(tmp_path)
    facts = _facts_with_tf()
    body = 'echo "cwd=$(pwd) vmodule=$TF_CPP_VMODULE level=$TF_CPP_MIN_LOG_LEVEL"\n'
    ctx = ProbeContext(python=_fake_python(tmp_path, body), env={**os.environ, "TF_CPP_VMODULE": "gpu_device=2"})
    deep_probe.probe(ctx, facts)
    said = facts.deep.output_tail
    assert f"cwd={tmp_path}" not in said and "vmodule=gpu_device=2,dso_loader=1 level=0" in said


def test_hanging_child_is_cut_at_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deep_probe, "TIMEOUT", 1.0)
    facts = _facts_with_tf()
    deep_probe.probe(ProbeContext(python=_fake_python(tmp_path, "sleep 30\n")), facts)
    assert facts.deep is not None and facts.deep.timed_out and facts.deep.seconds is not None
    assert facts.deep.seconds < 10


def test_real_interpreter_without_tensorflow(tmp_path: Path) -> None:
    # A real second interpreter (venv without pip, so without TensorFlow): the ImportError is the answer.
    import subprocess

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    facts = _facts_with_tf()
    deep_probe.probe(ProbeContext(python=str(tmp_path / "venv/bin/python")), facts)
    assert facts.deep is not None and facts.deep.returncode == 3
    assert facts.deep.error == "import tensorflow failed: ModuleNotFoundError: No module named 'tensorflow'"
    assert facts.deep.onednn_enabled is None and facts.deep.tf_version is None


@pytest.mark.slow
def test_real_import_of_installed_tensorflow() -> None:
    """Imports the venv's real tensorflow-cpu in a child (about 5 s on the 2-core dev machine)."""
    facts = Facts()
    ctx = ProbeContext()
    tf_probe.probe(ctx, facts)
    if not facts.tensorflow.distributions:
        pytest.skip("TensorFlow is not installed for this interpreter")
    deep_probe.probe(ctx, facts)
    deep = facts.deep
    assert deep is not None and deep.error is None, deep and deep.output_tail
    assert (deep.returncode, deep.signal, deep.timed_out) == (0, None, False)
    assert deep.tf_version == facts.tensorflow.version
    assert deep.onednn_enabled is not None
    assert deep.gpus == []  # tensorflow-cpu registers no GPU
    # What TF says it was not compiled for, the CPU must have (the names agree with CpuFacts.features).
    from envdoctor.probes.cpu import probe as cpu_probe

    cpu_probe(ctx, facts)
    assert set(deep.missing_cpu_instructions) <= set(facts.cpu.features) | {"SSE", "SSE2"}
    assert "tensorflow" not in sys.modules
