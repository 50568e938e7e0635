"""TensorFlow findings: distributions, Python range, CPU-only builds next to a GPU, and --deep results."""

from __future__ import annotations

from checks_support import codes, fix_convention_violations, h100, no_gpu_facts, one, tensorflow

from envdoctor.checks import Severity
from envdoctor.facts import DeepFacts, PythonPackage
from envdoctor.probes.deep import parse_import_output


def test_h100_with_gpu_tf_is_ok():
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0")
    ok = one(facts, "tensorflow.ok")
    assert ok.title == "TensorFlow 2.21.0 (tensorflow, CUDA 12.5.1 / cuDNN 9 build) on Python 3.12.3"


def test_tensorflow_cpu_on_gpu_machine():
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    f = one(facts, "tensorflow.cpu-only-with-gpu")
    assert f.severity is Severity.WARNING
    assert "build_info.py: is_cuda_build = False" in f.evidence
    assert f.fix == (
        "/home/user/venv/bin/python -m pip uninstall -y tensorflow-cpu && "
        "/home/user/venv/bin/python -m pip install 'tensorflow[and-cuda]==2.21.0'"
    )


def test_tensorflow_cpu_without_gpu_is_fine():
    facts = no_gpu_facts()
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    assert "tensorflow.cpu-only-with-gpu" not in codes(facts)
    assert one(facts, "tensorflow.ok").title.startswith("TensorFlow 2.21.0 (tensorflow-cpu, CPU build)")


def test_native_windows_tf_has_no_gpu():
    facts = h100("idle")
    facts.system.os = "Windows"
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.tensorflow.distributions = [
        PythonPackage("tensorflow", "2.15.1"),
        PythonPackage("tensorflow-intel", "2.15.1"),
    ]
    facts.tensorflow.version = "2.15.1"
    f = one(facts, "tensorflow.cpu-only-with-gpu")
    assert "native Windows" in f.title and "wsl --install" in f.fix
    # tensorflow pulls tensorflow-intel on Windows at the same version: not a conflict
    assert "tensorflow.several-distributions" not in codes(facts)


def test_several_distributions():
    facts = no_gpu_facts()
    facts.tensorflow = tensorflow("2.21.0")
    facts.tensorflow.distributions.append(PythonPackage("tensorflow-cpu", "2.20.0"))
    facts.tensorflow.distributions.append(PythonPackage("keras", "3.12.0"))  # not a TF distribution
    f = one(facts, "tensorflow.several-distributions")
    assert f.severity is Severity.ERROR
    assert f.fix.endswith(
        "-m pip uninstall -y tensorflow tensorflow-cpu && /home/user/venv/bin/python -m pip install tensorflow==2.21.0"
    )


def test_tensorflow_and_tensorflow_cpu_on_a_gpu_machine_reinstall_one_with_cuda():
    # Both own tensorflow/: uninstalling only tensorflow-cpu deletes the shared files and pip then calls
    # tensorflow "already satisfied". One finding, whose fix removes both and installs the GPU one.
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0")
    facts.tensorflow.distributions.append(PythonPackage("tensorflow-cpu", "2.21.0"))
    f = one(facts, "tensorflow.several-distributions")
    assert f.fix == (
        "/home/user/venv/bin/python -m pip uninstall -y tensorflow tensorflow-cpu && "
        "/home/user/venv/bin/python -m pip install 'tensorflow[and-cuda]==2.21.0'"
    )
    assert "tensorflow.cpu-only-with-gpu" not in codes(facts)


def test_several_distributions_keep_a_vendor_build_instead_of_swapping_it_for_pypi():
    # NGC's TensorFlow (2.16.1+nv24.8) plus a pip-installed tensorflow-cpu: reinstalling from PyPI would drop the
    # vendor build, and uninstalling tensorflow-cpu from the same site-packages deletes the shared tensorflow/.
    facts = h100("idle")
    facts.system.container = "docker"
    facts.tensorflow = tensorflow("2.21.0", python="3.10.12", site="/usr/local/lib/python3.10/dist-packages")
    facts.tensorflow.version = facts.tensorflow.distributions[0].version = "2.16.1+nv24.8"
    site = facts.tensorflow.distributions[0].location
    facts.tensorflow.distributions.append(PythonPackage("tensorflow-cpu", "2.16.1", site))
    f = one(facts, "tensorflow.several-distributions")
    assert f.severity is Severity.ERROR
    assert "-m pip" not in f.fix  # no command here can restore it
    assert all(line.startswith("# ") for line in f.fix.splitlines())
    assert "tensorflow 2.16.1+nv24.8 is a vendor build" in f.fix
    assert "fresh container from the vendor's image" in f.fix
    facts.system.container = None  # no image to go back to: the vendor's wheel
    assert "pip install --no-deps <the vendor's tensorflow wheel>" in one(facts, "tensorflow.several-distributions").fix
    # tensorflow-cpu in another directory (user site): removing it leaves the vendor's files alone
    facts.tensorflow.distributions[1].location = "/root/.local/lib/python3.10/site-packages"
    fix = one(facts, "tensorflow.several-distributions").fix.splitlines()
    assert fix[0] == "/home/user/venv/bin/python -m pip uninstall -y tensorflow-cpu"
    assert fix[1].startswith("# tensorflow 2.16.1+nv24.8 is a vendor build")
    assert fix_convention_violations([one(facts, "tensorflow.several-distributions")]) == []


def test_python_outside_release_range():
    facts = no_gpu_facts()
    facts.tensorflow = tensorflow("2.15.0", python="3.12.3")
    f = one(facts, "tensorflow.python-unsupported")
    assert f.severity is Severity.ERROR
    assert "TensorFlow 2.15.0: Python 3.9–3.11" in f.evidence
    assert "tensorflow==2.21.*" in f.fix


def test_install_fixes_keep_and_cuda_on_a_gpu_machine():
    # A plain `tensorflow` brings no CUDA libraries: on a usable GPU the fix must name tensorflow[and-cuda].
    from envdoctor.facts import NvidiaWheel

    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0", python="3.13.1")
    facts.tensorflow.version = "2.19.0"  # its wheel stops at Python 3.12
    f = one(facts, "tensorflow.python-unsupported")
    assert f.fix.splitlines()[0] == "/home/user/venv/bin/python -m pip install 'tensorflow[and-cuda]==2.21.*'"
    # torch with its own nvidia-* CUDA wheels here: tensorflow[and-cuda] would re-pin them, so a venv of its own
    facts.tensorflow.related = [PythonPackage("torch", "2.8.0")]
    facts.cuda.nvidia_wheels = [NvidiaWheel("nvidia-cudnn-cu12", "9.10.2.21")]
    lines = one(facts, "tensorflow.python-unsupported").fix.splitlines()
    assert lines[:2] == [
        "/home/user/venv/bin/python -m venv ~/tf",
        "~/tf/bin/python -m pip install 'tensorflow[and-cuda]==2.21.*'",
    ]
    assert "torch 2.8.0" in lines[2]
    gone = h100("idle")
    gone.tensorflow.python_version = "3.14.0"  # no TensorFlow, no release for this Python
    assert (
        "~/tf/bin/python -m pip install 'tensorflow[and-cuda]==2.21.*'"
        in one(gone, "tensorflow.python-unsupported").fix
    )


def test_python_too_new_for_any_release():
    facts = no_gpu_facts()
    facts.system.python_version = "3.14.0"
    f = one(facts, "tensorflow.python-unsupported")
    assert f.severity is Severity.WARNING
    assert "python3.13 -m venv" in f.fix


def test_not_installed_suggests_and_cuda_with_gpu():
    facts = h100("idle")
    f = one(facts, "tensorflow.not-installed")
    assert f.severity is Severity.INFO
    assert f.fix == "/home/user/venv/bin/python -m pip install 'tensorflow[and-cuda]==2.21.*'"


def test_not_installed_beside_torch_and_jax_cuda_wheels_gets_a_venv_of_its_own():
    # The real H100/H200 captures: /opt/torch/.venv holds torch 2.11 and jax 0.11 with cu13 nvidia-* wheels;
    # tensorflow[and-cuda] there would add nvidia-cudnn-cu12, which writes the same nvidia/cudnn/lib files.
    import json
    from pathlib import Path

    from envdoctor.facts import Facts, from_dict

    fixtures = Path(__file__).parent / "fixtures"
    for machine in ("h100-firecracker", "h200-firecracker"):
        facts = from_dict(Facts, json.loads((fixtures / machine / "envdoctor" / "facts.json").read_text()))
        f = one(facts, "tensorflow.not-installed")
        lines = f.fix.splitlines()
        assert lines[:2] == [
            "/opt/torch/.venv/bin/python3 -m venv ~/tf",
            "~/tf/bin/python -m pip install 'tensorflow[and-cuda]==2.21.*'",
        ]
        assert lines[2].startswith("# a venv of its own: torch 2.11.0, jax 0.11.2, jaxlib 0.11.2 here use nvidia-*")
        assert "/opt/torch/.venv/bin/python3 -m pip install" not in f.fix
    # no CUDA wheels beside it: pip install into this environment, as before
    facts.cuda.nvidia_wheels = []
    here = "/opt/torch/.venv/bin/python3 -m pip install 'tensorflow[and-cuda]==2.21.*'"
    assert one(facts, "tensorflow.not-installed").fix == here


def test_unknown_release():
    facts = no_gpu_facts()
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.tensorflow.version = "2.22.0"
    assert one(facts, "tensorflow.unknown-release").severity is Severity.INFO


def test_deep_sigill():
    facts = no_gpu_facts("x86-pentium-g640-no-avx.txt")
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.deep = DeepFacts(returncode=-4, signal="SIGILL", output_tail="Illegal instruction (core dumped)\n")
    f = one(facts, "tensorflow.import-sigill")
    assert f.severity is Severity.ERROR
    assert "import tensorflow: killed by SIGILL" in f.evidence and "envdoctor build-tf" in f.fix


def test_deep_no_gpu_registered():
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0")
    facts.deep = DeepFacts(
        returncode=0,
        gpus=[],
        output_tail=(
            "W0000 gpu_device.cc:2341] Cannot dlopen some GPU libraries.\nSkipping registering GPU devices...\n"
        ),
    )
    f = one(facts, "tensorflow.no-gpu-registered")
    assert "Skipping registering GPU devices..." in f.evidence
    # GPUs hidden on purpose (`envdoctor env --gpus none` sets -1; an empty value hides all): TensorFlow is right.
    for hidden in ("-1", ""):
        facts.env.variables["CUDA_VISIBLE_DEVICES"] = hidden
        assert "tensorflow.no-gpu-registered" not in codes(facts), hidden
    facts.env.variables["CUDA_VISIBLE_DEVICES"] = "0"
    assert "tensorflow.no-gpu-registered" in codes(facts)


def test_deep_abort_by_the_cpu_guard_points_to_a_build():
    # An AVX2 build on an AVX-only CPU: cpu_feature_guard says so, then aborts (cpu.no-avx does not fire here).
    facts = no_gpu_facts()
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.deep = parse_import_output(
        "",
        "F0000 cpu_feature_guard.cc:88] The TensorFlow library was compiled to use AVX2 instructions, but these "
        "aren't available on your machine.\n",
        -6,
    )
    f = one(facts, "tensorflow.import-cpu-unsupported")
    assert (
        f.severity is Severity.ERROR and "killed by SIGABRT" in f.evidence[0] and f.fix.startswith("envdoctor build-tf")
    )


def test_deep_timeout():
    facts = no_gpu_facts()
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.deep = DeepFacts(timed_out=True, seconds=60.0)
    assert one(facts, "tensorflow.import-timeout").severity is Severity.WARNING


def test_deep_output_parsed_by_the_deep_probe():
    """The deep probe's own parser over TF's real log lines (wording as TensorFlow 2.21 prints it:
    tensorflow/core/platform/cpu_feature_guard.cc, port.cc)."""
    from envdoctor.probes.deep import parse_import_output

    stderr = (
        "I0000 cpu_feature_guard.cc:210] This TensorFlow binary is optimized to use available CPU instructions "
        "in performance-critical operations.\nTo enable the following instructions: AVX2 AVX512F AVX512_VNNI "
        "AVX512_BF16 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.\n"
    )
    facts = no_gpu_facts("x86-epyc-9654-zen4.txt")
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.deep = parse_import_output("", stderr, 1, None)
    assert one(facts, "tensorflow.import-failed").severity is Severity.ERROR
    facts.deep = parse_import_output("", stderr, 0, None)
    assert "tensorflow.import-failed" not in codes(facts)
    assert "AVX512_VNNI" in one(facts, "cpu.unused-instructions").title


def test_deep_not_run_under_root():
    facts = no_gpu_facts()
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.deep = DeepFacts(error="not run: --root given (nothing on the inspected system can be executed)")
    f = one(facts, "tensorflow.deep-not-run")
    assert f.severity is Severity.INFO and "--root" in f.evidence[0]


def test_distribution_names_are_compared_canonically():
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.tensorflow.distributions[0].name = "tensorflow_cpu"  # as importlib.metadata spells it from the dist-info
    f = one(facts, "tensorflow.cpu-only-with-gpu")
    assert "pip uninstall -y tensorflow-cpu" in f.fix


def test_every_tensorflow_distribution_counts_for_several():
    # tensorflow-aarch64 and tf-nightly-* install the same `tensorflow` package (python_packages.json).
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0")
    site = facts.tensorflow.distributions[0].location
    facts.tensorflow.distributions.append(PythonPackage("tf-nightly-gpu", "2.22.0.dev20260101", site))
    f = one(facts, "tensorflow.several-distributions")
    assert "tf-nightly-gpu 2.22.0.dev20260101 (/home/user/venv/lib/python3.12/site-packages)" in f.evidence
    assert "pip uninstall -y tensorflow tf-nightly-gpu" in f.fix
    assert f.fix.endswith("pip install 'tensorflow[and-cuda]==2.21.0'")


def test_linaro_aarch64_wheel_is_cpu_only_next_to_a_gpu():
    facts = h100("idle")
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-aarch64")
    assert "pip uninstall -y tensorflow-aarch64" in one(facts, "tensorflow.cpu-only-with-gpu").fix


def test_package_without_metadata_is_not_reported_missing():
    # The pip-cuda fake root's tensorflow/ has no dist-info: importable, so not "not installed".
    facts = no_gpu_facts()
    facts.tensorflow.location = "/opt/venv/lib/python3.11/site-packages/tensorflow"
    assert "tensorflow.not-installed" not in codes(facts)
    ok = one(facts, "tensorflow.ok")
    assert ok.title == "TensorFlow (version unknown) (tensorflow, no build_info.py) on Python 3.12.3"
    assert any("no tensorflow*.dist-info" in e for e in ok.evidence)


def test_not_installed_under_root_says_where_it_looked():
    facts = no_gpu_facts()
    facts.host = False
    facts.tensorflow.site_packages = ["/usr/lib/python3/dist-packages"]
    f = one(facts, "tensorflow.not-installed")
    assert f.evidence[0] == "searched under --root: /usr/lib/python3/dist-packages"
    assert f.evidence[1].startswith(
        "Python 3.12: TensorFlow 2.16, "
    )  # the releases with wheels for it, pinned in the fix


def test_failed_inspection_is_not_reported_as_not_installed():
    # A snapshot of `check --python /bin/false` (the CLI now refuses that with exit 2; old snapshots remain).
    facts = no_gpu_facts()
    facts.tensorflow.python_executable = "/bin/false"
    facts.tensorflow.error = "could not run /bin/false: exit code 1"
    found = codes(facts)
    assert "tensorflow.inspect-failed" in found
    assert "tensorflow.not-installed" not in found


def test_externally_managed_python_gets_a_venv_instead_of_pip_install():
    # Debian 12's /usr/bin/python3 (PEP 668): `pip install` there fails with "externally-managed-environment".
    facts = h100("idle")
    facts.tensorflow.python_executable, facts.tensorflow.python_env = "/usr/bin/python3", "system"
    facts.tensorflow.externally_managed = True
    assert one(facts, "tensorflow.not-installed").fix.splitlines()[:3] == [
        "/usr/bin/python3 -m venv ~/tf-venv",
        "~/tf-venv/bin/python -m pip install 'tensorflow[and-cuda]==2.21.*'",
        "# /usr/bin/python3 is externally managed (PEP 668): pip refuses to change it, so TensorFlow goes into a venv",
    ]
    assert (
        "# if the venv step fails: sudo apt-get install -y python3-venv" in one(facts, "tensorflow.not-installed").fix
    )
    facts.tensorflow = tensorflow("2.21.0", "tensorflow-cpu")
    facts.tensorflow.python_executable, facts.tensorflow.externally_managed = "/usr/bin/python3", True
    fix = one(facts, "tensorflow.cpu-only-with-gpu").fix
    assert "pip uninstall" not in fix  # refused as well
    assert "~/tf-venv/bin/python -m pip install 'tensorflow[and-cuda]==2.21.0'" in fix.splitlines()
    facts.tensorflow.externally_managed = False  # a venv: pip as before
    assert one(facts, "tensorflow.cpu-only-with-gpu").fix.startswith("/usr/bin/python3 -m pip uninstall -y")
