"""TensorFlow's Requires-Dist against the installed distributions (issue 10, point 2): the fast path, markers,
and where the installed copies are looked up (a user's ~/.local first, a venv's base Python when it includes it)."""

from __future__ import annotations

from pathlib import Path

from checks_support import TESTS, codes, one, tensorflow
from test_checks_reports import build_root

from envdoctor.checks.requirements import _plainly_met
from envdoctor.facts import Facts, PythonPackage, SystemFacts
from envdoctor.probes import ProbeContext, collect

METADATA = TESTS / "fixtures" / "reports" / "metadata"


def _requires(name: str) -> list[str]:
    lines = (METADATA / f"{name}.METADATA").read_text().splitlines()
    return [line.split(": ", 1)[1] for line in lines if line.startswith("Requires-Dist: ")]


def test_plain_lines_are_settled_without_packaging_requirements():
    have = {"numpy": PythonPackage("numpy", "1.26.4"), "protobuf": PythonPackage("protobuf", "4.25.3")}
    assert _plainly_met("numpy (<2.0.0,>=1.23.5)", have)
    assert _plainly_met("numpy<2.0.0,>=1.23.5", have)
    assert not _plainly_met("numpy>=2", have)  # unmet: packaging gives the verdict and the wording
    assert _plainly_met('nvidia-cudnn-cu12==8.9.7.29 ; extra == "and-cuda"', have)  # no extra asked for
    assert not _plainly_met('numpy<2 ; python_version >= "3.12"', have)  # a real marker: packaging evaluates it
    assert not _plainly_met('x>=1 ; platform_system == "Linux" or extra == "a"', have)
    assert not _plainly_met("ml-dtypes~=0.2.0", have)  # not installed, and ~= is not a plain clause
    rc = {"numpy": PythonPackage("numpy", "2.0.0rc1")}
    assert not _plainly_met("numpy<2.0", rc)  # <2.0 excludes 2.0's pre-releases (PEP 440): packaging decides


def _tf216(numpy: str) -> Facts:
    facts = Facts(system=SystemFacts(os="Linux", arch="x86_64", python_version="3.12.3"))
    facts.tensorflow = tensorflow("2.16.1", python="3.12.3")
    site = facts.tensorflow.site_packages[0]
    facts.tensorflow.distributions[0].requires_dist = _requires("tensorflow-2.16.1")
    facts.tensorflow.requirements = [
        PythonPackage(n, v, site)
        for n, v in [
            ("numpy", numpy),
            ("ml_dtypes", "0.3.2"),
            ("keras", "3.3.3"),
            ("protobuf", "4.25.3"),
            ("h5py", "3.11.0"),
            ("absl_py", "2.1.0"),
            ("astunparse", "1.6.3"),
            ("flatbuffers", "24.3.25"),
            ("gast", "0.5.4"),
            ("google_pasta", "0.2.0"),
            ("grpcio", "1.64.0"),
            ("libclang", "18.1.1"),
            ("opt_einsum", "3.3.0"),
            ("packaging", "24.0"),
            ("requests", "2.32.3"),
            ("setuptools", "70.0.0"),
            ("six", "1.16.0"),
            ("tensorboard", "2.16.2"),
            ("termcolor", "2.4.0"),
            ("typing_extensions", "4.12.0"),
            ("wrapt", "1.16.0"),
        ]
    ]
    facts.tensorflow.requirements_path = [site]
    return facts


def test_markers_pick_the_line_for_this_python():
    # 2.16.1 says numpy<2.0.0,>=1.23.5 for Python <= 3.11 and numpy<2.0.0,>=1.26.0 for >= 3.12.
    assert not {c for c in codes(_tf216("1.26.4")) if c.startswith("tensorflow.requirement")}
    found = one(_tf216("1.25.2"), "tensorflow.requirement-broken")
    assert "numpy<2.0.0,>=1.26.0" in found.fix and "numpy 1.25.2" in found.title


def test_old_snapshot_without_requirements_is_not_judged():
    facts = _tf216("2.0.0")
    facts.tensorflow.requirements_path = []  # a snapshot from before the probe read them
    assert not {c for c in codes(facts) if c.startswith("tensorflow.requirement")}


def test_user_site_shadows_the_system_python_under_root(tmp_path: Path):
    # A user's `pip install --user numpy` (numpy 2) sits before the distribution's numpy 1 for /usr/bin/python3
    # (nv-tlabs/vipe#42 has TensorFlow itself in ~/.local with numpy 2.1.2).
    build_root(
        tmp_path,
        {
            "os_release": "ubuntu-22.04",
            "files": {"/usr/bin/python3.10": ""},
            "envs": [
                {
                    "site": "/usr/local/lib/python3.10/dist-packages",
                    "dists": {"tensorflow": "2.15.0", "numpy": "1.26.4"},
                },
                {"site": "/home/ann/.local/lib/python3.10/site-packages", "dists": {"numpy": "2.1.2"}},
            ],
        },
    )
    facts = collect(ProbeContext(root=tmp_path, env={}))
    tf = facts.tensorflow
    assert tf.requirements_path[0] == "/home/ann/.local/lib/python3.10/site-packages"
    assert next(p for p in tf.requirements if p.name == "numpy").version == "2.1.2"
    found = one(facts, "tensorflow.requirement-broken")
    assert found.fix.startswith("/usr/bin/python3.10 -m pip uninstall -y numpy\n")
    assert "shadows the environment's own" in found.fix


def test_venv_sees_the_user_site_only_with_system_site_packages(tmp_path: Path):
    venv = {
        "site": "/home/ann/venv/lib/python3.11/site-packages",
        "dists": {"tensorflow": "2.14.0", "numpy": "1.26.4"},
        "pyvenv": "home = /usr/bin\ninclude-system-site-packages = false\n",
    }
    user = {"site": "/home/ann/.local/lib/python3.11/site-packages", "dists": {"numpy": "2.3.4"}}
    build_root(tmp_path, {"envs": [venv, user]})
    facts = collect(ProbeContext(root=tmp_path, env={}))
    assert facts.tensorflow.requirements_path == ["/home/ann/venv/lib/python3.11/site-packages"]
    assert not {c for c in codes(facts) if c.startswith("tensorflow.requirement")}
    (tmp_path / "home/ann/venv/pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = true\n")
    facts = collect(ProbeContext(root=tmp_path, env={}))
    assert facts.tensorflow.requirements_path[:2] == [
        "/home/ann/.local/lib/python3.11/site-packages",
        "/home/ann/venv/lib/python3.11/site-packages",
    ]
    assert one(facts, "tensorflow.requirement-broken").title.startswith("numpy 2.3.4 is installed")
