"""TensorFlow probe without importing TensorFlow (fixtures: tests/fixtures/site-packages/README.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.facts import Facts, TensorflowFacts
from envdoctor.probes import ProbeContext
from envdoctor.probes import tensorflow as tfprobe
from envdoctor.probes.tensorflow import fill_from_path, parse_build_info, probe, read_metadata

FIXTURES = Path(__file__).parent / "fixtures"
SITES = FIXTURES / "site-packages"
H100_ROOT = FIXTURES / "h100-firecracker" / "idle" / "root"


def _fill(site: Path) -> TensorflowFacts:
    tf = TensorflowFacts()
    fill_from_path(ProbeContext(), tf, [str(site)])
    return tf


def _names(packages: list) -> dict[str, str | None]:
    return {p.name: p.version for p in packages}


# --- build_info.py --------------------------------------------------------------------------------------


def test_real_cpu_wheel_build_info() -> None:
    info = parse_build_info((SITES / "tf-2.21-cpu" / tfprobe.BUILD_INFO).read_text())
    assert info is not None
    assert (info.is_cuda_build, info.is_rocm_build, info.cuda_version, info.cuda_compute_capabilities) == (
        False,
        False,
        None,
        [],
    )
    assert info.raw == {"is_cuda_build": False, "is_rocm_build": False, "is_tensorrt_build": False}


def test_cuda_wheel_build_info() -> None:
    info = parse_build_info((SITES / "tf-2.17-cuda" / tfprobe.BUILD_INFO).read_text())
    assert info is not None and info.is_cuda_build is True
    assert (info.cuda_version, info.cudnn_version, info.cpu_compiler) == ("12.3", "8", "/usr/lib/llvm-17/bin/clang")
    assert info.cuda_compute_capabilities == ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]
    assert info.raw["is_tensorrt_build"] is True


def test_build_info_variants() -> None:
    # TF 2.12's build_info (the 2.12.0 wheel's build_info.py on PyPI), written as a plain dict.
    text = (
        "build_info = {'cpu_compiler': '/dt9/usr/bin/gcc', 'cuda_compute_capabilities': ['sm_35', 'sm_50', "
        "'sm_60', 'sm_70', 'sm_75', 'compute_80'], 'cuda_version': '11.8', 'cudnn_version': '8', "
        "'is_cuda_build': True, 'is_rocm_build': False, 'is_tensorrt_build': True}"
    )
    info = parse_build_info(text)
    assert info is not None and info.cuda_version == "11.8" and info.cuda_compute_capabilities[0] == "sm_35"
    # A source build can carry the capabilities as one string; booleans can come as text.
    info = parse_build_info(
        "import collections\nbuild_info = collections.OrderedDict([('cuda_compute_capabilities', "
        "'sm_70,compute_80'), ('is_cuda_build', 'true'), ('msvcp_dll_names', ('a.dll', 'b.dll'))])"
    )
    assert info is not None and info.cuda_compute_capabilities == ["sm_70", "compute_80"]
    assert info.is_cuda_build is True and info.raw["msvcp_dll_names"] == ["a.dll", "b.dll"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "build_info = OrderedDict(",
        "build_info = foo()",
        "x = 1",
        "build_info = [1, 2]",
        "\x00",
        "build_info = {'a': __import__('os')}",
        "build_info = collections.OrderedDict([('a', 1)], extra)",
    ],
)
def test_unreadable_build_info_is_none_not_an_exception(text: str) -> None:
    info = parse_build_info(text)
    assert info is None or info.raw == {"a": 1}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_build_info_never_raises(text: str) -> None:
    parse_build_info(text)
    parse_build_info("build_info = collections.OrderedDict(" + text)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["tf-2.21-cpu", "tf-2.17-cuda", "two-tensorflows"]), st.floats(0, 1))
def test_truncated_build_info_never_raises(site: str, fraction: float) -> None:
    text = (SITES / site / tfprobe.BUILD_INFO).read_text()
    parse_build_info(text[: int(len(text) * fraction)])


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_metadata_never_raises(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    info = tmp_path_factory.mktemp("m") / "x-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_bytes(data)
    read_metadata(ProbeContext(env={}), str(info))


# --- distributions ------------------------------------------------------------------------------------------


def test_cuda_site_packages() -> None:
    tf = _fill(SITES / "tf-2.17-cuda")
    assert _names(tf.distributions) == {"tensorflow": "2.17.0"}
    assert tf.version == "2.17.0"
    assert tf.location == f"{SITES / 'tf-2.17-cuda'}/tensorflow"
    assert tf.build_info is not None and tf.build_info.cuda_version == "12.3"
    # In the recipe's order; unrelated packages (requests, nvidia-*) are not listed here.
    assert [(p.name, p.version) for p in tf.related] == [
        ("keras", "3.4.1"),
        ("tf_keras", "2.17.0"),
        ("numpy", "1.26.4"),
        ("torch", "2.4.0"),
        ("jax", "0.4.31"),
        ("jaxlib", "0.4.31"),
    ]


def test_several_tensorflow_distributions_and_the_one_that_owns_the_files() -> None:
    tf = _fill(SITES / "two-tensorflows")
    assert _names(tf.distributions) == {
        "tensorflow": "2.16.1",
        "tensorflow-cpu": "2.17.0",
        "tf-nightly": "2.19.0.dev20241201",
    }
    # tensorflow 2.16.1 was installed last: the build_info.py on disk is the one its RECORD names.
    assert tf.version == "2.16.1"
    assert tf.build_info is not None and tf.build_info.is_cuda_build is True
    assert _names(tf.related) == {"Keras": "2.2.4"}  # read from a legacy .egg-info file


def test_owner_unknown_when_no_record_matches(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(SITES / "two-tensorflows", site)
    (site / tfprobe.BUILD_INFO).write_text("build_info = {'is_cuda_build': False}\n")
    assert _fill(site).version is None


def test_nothing_installed(tmp_path: Path) -> None:
    tf = _fill(tmp_path)
    assert tf.distributions == [] and tf.location is None and tf.version is None and tf.build_info is None


def test_this_interpreter_in_process() -> None:
    facts = Facts()
    probe(ProbeContext(), facts)
    tf = facts.tensorflow
    assert tf.error is None and tf.python_executable == sys.executable
    assert tf.python_version == "{}.{}.{}".format(*sys.version_info[:3])
    assert all(os.path.isdir(p) for p in tf.site_packages)
    try:
        from importlib.metadata import version

        expected = version("tensorflow-cpu")
    except Exception:
        pytest.skip("tensorflow-cpu not installed in this environment")
    assert _names(tf.distributions).get("tensorflow_cpu") == expected == tf.version
    assert tf.build_info is not None and tf.build_info.is_cuda_build is False
    assert "tensorflow" not in sys.modules  # read, never imported


# --- another interpreter (--python) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real second interpreter: a venv without pip, given the CUDA wheel's files as its packages."""
    venv = tmp_path_factory.mktemp("other") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python3*/site-packages"))
    shutil.copytree(SITES / "tf-2.17-cuda", site, dirs_exist_ok=True)
    return venv


def test_other_interpreter(second_venv: Path) -> None:
    facts = Facts()
    python = str(second_venv / "bin" / "python")
    probe(ProbeContext(python=python), facts)
    tf = facts.tensorflow
    assert tf.error is None
    assert tf.python_executable == python
    assert tf.python_version == "{}.{}.{}".format(*sys.version_info[:3])
    site = str(next(second_venv.glob("lib/python3*/site-packages")))
    assert site in tf.site_packages
    # Its own packages, not this interpreter's tensorflow-cpu.
    assert _names(tf.distributions) == {"tensorflow": "2.17.0"}
    assert tf.location == f"{site}/tensorflow" and tf.build_info and tf.build_info.cuda_version == "12.3"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (None, "No such file"),
        ("#!/bin/sh\necho 'Fatal Python error: init_fs_encoding' >&2\nexit 1\n", "Fatal Python error"),
        ("#!/bin/sh\necho 'not json'\n", "no usable answer"),
        ("#!/bin/sh\nsleep 30\n", "timeout"),
    ],
)
def test_broken_interpreter_becomes_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str | None, expected: str
) -> None:
    python = tmp_path / "python3"
    if script is not None:
        python.write_text(script)
        python.chmod(0o755)
    monkeypatch.setattr(tfprobe, "PYTHON_TIMEOUT", 1.0)
    facts = Facts()
    probe(ProbeContext(python=str(python)), facts)
    assert facts.tensorflow.error and expected in facts.tensorflow.error
    assert facts.tensorflow.python_executable == str(python) and facts.tensorflow.distributions == []


# --- --root -----------------------------------------------------------------------------------------------


def test_root_image_site_packages(tmp_path: Path) -> None:
    shutil.copytree(SITES / "tf-2.17-cuda", tmp_path / "usr/local/lib/python3.12/dist-packages")
    facts = Facts()
    probe(ProbeContext(root=tmp_path), facts)
    tf = facts.tensorflow
    # Paths are those of the inspected image, without the root prefix.
    assert tf.site_packages == ["/usr/local/lib/python3.12/dist-packages"]
    assert tf.location == "/usr/local/lib/python3.12/dist-packages/tensorflow"
    assert (tf.version, tf.python_version) == ("2.17.0", "3.12")
    assert tf.build_info is not None and tf.build_info.is_cuda_build is True


def test_h100_capture_root_finds_the_venv_with_nvidia_wheels() -> None:
    for python in (None, "/opt/torch/.venv/bin/python"):
        facts = Facts()
        probe(ProbeContext(root=H100_ROOT, python=python), facts)
        assert facts.tensorflow.site_packages == ["/opt/torch/.venv/lib/python3.12/site-packages"]
        assert facts.tensorflow.python_version == "3.12" and facts.tensorflow.distributions == []


def test_root_with_two_environments_takes_the_python_of_the_one_holding_tensorflow() -> None:
    # tests/fixtures/roots/pip-cuda: /opt/venv (python3.11, a tensorflow/ stub) and /opt/torch/venv (python3.12).
    facts = Facts()
    probe(ProbeContext(root=Path(__file__).parent / "fixtures/roots/pip-cuda/root"), facts)
    assert facts.tensorflow.location == "/opt/venv/lib/python3.11/site-packages/tensorflow"
    assert facts.tensorflow.python_version == "3.11"


# --- PEP 668: an externally managed interpreter (pip refuses to install into it) ------------------------


def test_other_interpreter_in_a_venv_is_not_externally_managed(second_venv: Path) -> None:
    facts = Facts()
    probe(ProbeContext(python=str(second_venv / "bin" / "python")), facts)
    # PEP 668 exempts virtual environments even when the base Python's stdlib has the marker.
    assert (facts.tensorflow.python_env, facts.tensorflow.externally_managed) == ("venv", False)


def test_system_interpreter_with_the_marker_is_externally_managed() -> None:
    python = Path("/usr/bin/python3")
    if not python.is_file():
        pytest.skip("no /usr/bin/python3")
    script = "import sysconfig, os; print(os.path.isfile(sysconfig.get_path('stdlib') + '/EXTERNALLY-MANAGED'))"
    marked = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=60).stdout.strip()
    facts = Facts()
    probe(ProbeContext(python=str(python)), facts)
    assert facts.tensorflow.python_env == "system"  # /usr/bin/python3 is no venv
    assert facts.tensorflow.externally_managed is (marked == "True")  # Debian 12 here: True


def test_pep668_rule() -> None:
    assert tfprobe.pep668("/usr", "/usr", marker=True) == ("system", True)
    assert tfprobe.pep668("/home/u/venv", "/usr", marker=True) == ("venv", False)
    assert tfprobe.pep668("/usr", "/usr", marker=False) == ("system", False)


def test_root_pip_fixes_target_the_python_that_owns_tensorflows_directory(tmp_path: Path) -> None:
    debian = Path("/usr/lib/python3.11/EXTERNALLY-MANAGED")  # Debian's real marker, copied when there is one
    marker = debian.read_text() if debian.is_file() else "[externally-managed]\nError=use apt or a venv\n"
    cases = {
        "venv": (
            "opt/app/venv/lib/python3.11/site-packages",
            "opt/app/venv/pyvenv.cfg",
            ("/opt/app/venv/bin/python", "venv", False),
        ),
        "system": (
            "usr/local/lib/python3.11/dist-packages",
            "usr/lib/python3.11/EXTERNALLY-MANAGED",
            ("/usr/bin/python3.11", "system", True),
        ),
        "prefix": ("opt/py/lib/python3.11/site-packages", None, ("/opt/py/bin/python", None, None)),
        # the python:3.11 images: Python built into /usr/local, while Debian's own may carry the marker
        "usr-local": (
            "usr/local/lib/python3.11/site-packages",
            "usr/local/bin/python3.11",
            ("/usr/local/bin/python3.11", "system", False),
        ),
    }
    for name, (site, extra, expected) in cases.items():
        root = tmp_path / name
        shutil.copytree(SITES / "tf-2.17-cuda", root / site)
        if extra:
            (root / extra).parent.mkdir(parents=True, exist_ok=True)
            (root / extra).write_text(marker if extra.endswith("MANAGED") else "home = /usr/bin\n")
        if name == "usr-local":  # Debian's marker for its own /usr/bin/python3.11 must not count for this one
            (root / "usr/lib/python3.11").mkdir(parents=True)
            (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").write_text(marker)
        facts = Facts()
        probe(ProbeContext(root=root), facts)
        tf = facts.tensorflow
        assert (tf.python_executable, tf.python_env, tf.externally_managed) == expected, name
