"""The CUDA probe: toolkits, cuDNN, pip wheels and the loader's view, on fake roots built from real files."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envdoctor.facts import Facts, TfBuildInfo
from envdoctor.probes import ProbeContext, cuda
from envdoctor.probes.cuda import (
    ld_so_conf_dirs,
    parse_cudnn_header,
    parse_nvcc_version,
    parse_version_json,
    parse_version_txt,
)

FIXTURES = Path(__file__).parent / "fixtures"
H100 = FIXTURES / "h100-firecracker/idle"
ROOTS = FIXTURES / "roots"
TF_SITE = "/opt/venv/lib/python3.11/site-packages"
TORCH_SITE = "/opt/torch/venv/lib/python3.12/site-packages"
REAL_NVCC = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2025 NVIDIA Corporation
Built on Wed_Aug_20_01:58:59_PM_PDT_2025
Cuda compilation tools, release 13.0, V13.0.88
Build cuda_13.0.r13.0/compiler.36424714_0
"""  # verbatim from the H100 capture's host.txt


def run_probe(
    root: Path,
    env: dict[str, str] | None = None,
    tf_cuda: str | None = None,
    tf_cudnn: str | None = None,
    site: list[str] | None = None,
    tf_location: str | None = None,
) -> Facts:
    facts = Facts()
    facts.system.arch = "x86_64"
    facts.tensorflow.site_packages = site or []
    facts.tensorflow.location = tf_location
    if tf_cuda:
        facts.tensorflow.build_info = TfBuildInfo(is_cuda_build=True, cuda_version=tf_cuda, cudnn_version=tf_cudnn)
    cuda.probe(ProbeContext(root=root.resolve(), env=env or {}), facts)
    return facts


def libs(facts: Facts) -> dict[str, tuple]:
    return {r.name: (r.status, r.path, r.via, r.candidates) for r in facts.cuda.tf_libraries}


# --- parsers ------------------------------------------------------------------------------------------


def test_version_json_real_layout():
    text = (ROOTS / "multi-toolkit/root/usr/local/cuda-11.8/version.json").read_text()
    assert '"cuda" : {' in text  # the real file's spacing
    assert parse_version_json(text) == "11.8.20220929"


@pytest.mark.parametrize(
    "text", ["", "{", "[]", '{"cuda": "12.4"}', '{"cuda": {"version": 12.4}}', '{"cuda": {"version": "x"}}']
)
def test_version_json_broken(text):
    assert parse_version_json(text) is None


def test_version_txt_and_nvcc():
    assert parse_version_txt("CUDA Version 10.2.89\n") == "10.2.89"
    assert parse_version_txt("CUDA Version\n") is None
    assert parse_nvcc_version(REAL_NVCC) == "13.0.88"
    assert parse_nvcc_version("nvcc: command not found") is None


def test_cudnn_headers_real_and_v8():
    assert parse_cudnn_header((H100 / "root/usr/include/x86_64-linux-gnu/cudnn_version.h").read_text()) == "9.14.0"
    v8 = (ROOTS / "multi-toolkit/root/usr/local/cuda-11.8/include/cudnn_version.h").read_text()
    assert parse_cudnn_header(v8) == "8.9.7"
    assert parse_cudnn_header("#include <cudnn_version.h>\n") is None  # cudnn.h of cuDNN >= 8: no macros


# --- toolkits -------------------------------------------------------------------------------------------

MULTI = ROOTS / "multi-toolkit/root"


def test_several_toolkits_side_by_side_symlinks_are_one_install():
    facts = run_probe(MULTI, env={"PATH": "/usr/local/cuda/bin:/usr/bin", "CUDA_HOME": "/usr/local/cuda-12"})
    found = {t.path: (t.version, t.version_source, t.active) for t in facts.cuda.toolkits}
    # /usr/local/cuda (relative link) and /usr/local/cuda-12 (absolute link via /etc/alternatives) are 12.6.
    assert found == {
        "/usr/local/cuda-10.2": ("10.2.89", "version.txt", False),
        "/usr/local/cuda-11.8": ("11.8.20220929", "version.json", False),
        "/usr/local/cuda-12.6": ("12.6.20241114", "version.json", True),
    }
    active = next(t for t in facts.cuda.toolkits if t.active)
    assert active.found_via == ["/usr/local", "CUDA_HOME", "PATH"]
    assert active.nvcc == "/usr/local/cuda-12.6/bin/nvcc"


@pytest.mark.parametrize(
    ("env", "active"),
    [
        ({"PATH": "/usr/local/cuda-11.8/bin"}, "/usr/local/cuda-11.8"),
        ({"PATH": "/usr/local/cuda-11.8/bin", "CUDA_HOME": "/usr/local/cuda-10.2"}, "/usr/local/cuda-11.8"),
        ({"CUDA_HOME": "/usr/local/cuda-10.2"}, "/usr/local/cuda-10.2"),
        ({"CUDA_PATH": "/usr/local/cuda-11.8"}, "/usr/local/cuda-11.8"),
        ({}, "/usr/local/cuda-12.6"),  # nothing set: what /usr/local/cuda points at, the build tools' default
    ],
)
def test_active_toolkit(env, active):
    facts = run_probe(MULTI, env=env)
    assert [t.path for t in facts.cuda.toolkits if t.active] == [active]


def test_symlinks_resolve_inside_the_root():
    fs = ProbeContext(root=MULTI.resolve(), env={}).fs
    assert fs.realpath("/usr/local/cuda-12/bin/nvcc") == "/usr/local/cuda-12.6/bin/nvcc"
    assert fs.realpath("/usr/include/cudnn_version.h") == "/usr/include/x86_64-linux-gnu/cudnn_version_v9.h"
    assert fs.realpath("/usr/local/cuda-11.8/lib64/../include") == "/usr/local/cuda-11.8/targets/x86_64-linux/include"


def test_symlink_loop_does_not_hang(tmp_path):
    (tmp_path / "a").symlink_to("/b")
    (tmp_path / "b").symlink_to("/a")
    fs = ProbeContext(root=tmp_path, env={}).fs
    assert fs.realpath("/a/x") in ("/a", "/b")
    assert fs.listdir("/a") == frozenset()


def test_old_driver_new_toolkit():
    facts = run_probe(ROOTS / "old-driver-new-toolkit/root", env={"PATH": "/usr/bin"})
    (toolkit,) = facts.cuda.toolkits
    assert (toolkit.path, toolkit.version, toolkit.active) == ("/usr/local/cuda-12.6", "12.6.20241114", True)


def test_apt_layout_version_from_libcudart(tmp_path):
    # The H100's CUDA 13.0 came from apt: no version.json; libcudart.so.13.0.96 names the version.
    lib = tmp_path / "usr/local/cuda-13.0/targets/x86_64-linux/lib"
    lib.mkdir(parents=True)
    (lib / "libcudart.so.13.0.96").touch()
    (lib / "libcudart.so.13").symlink_to("libcudart.so.13.0.96")
    (tmp_path / "usr/local/cuda").symlink_to("/usr/local/cuda-13.0")
    (toolkit,) = run_probe(tmp_path).cuda.toolkits
    assert (toolkit.path, toolkit.version, toolkit.version_source) == ("/usr/local/cuda-13.0", "13.0.96", "libcudart")


def test_version_from_cuda_h(tmp_path):
    # A toolkit assembled from wheels (the dev machine's): libcudart.so.13 only, no version.json.
    inc = tmp_path / "usr/local/cuda-13.0/include"
    inc.mkdir(parents=True)
    (tmp_path / "usr/local/cuda-13.0/nvvm").mkdir()
    (inc / "cuda.h").write_text("/* CUDA API */\n#ifndef __cuda_cuda_h__\n#define CUDA_VERSION 13000\n")
    (toolkit,) = run_probe(tmp_path).cuda.toolkits
    assert (toolkit.version, toolkit.version_source) == ("13.0", "cuda.h")


def test_nvcc_version_on_the_host(tmp_path):
    home = tmp_path / "cuda-13.0"
    (home / "bin").mkdir(parents=True)
    (home / "nvvm").mkdir()
    nvcc = home / "bin/nvcc"
    nvcc.write_text("#!/bin/sh\ncat <<'EOF'\n" + REAL_NVCC + "EOF\n")
    nvcc.chmod(0o755)
    ctx = ProbeContext(env={"CUDA_HOME": str(home), "PATH": "/usr/bin:/bin"})  # no nvcc there
    toolkits = cuda.find_toolkits(ctx, ctx.fs)
    mine = [t for t in toolkits if t.path == str(home)]
    assert [(t.version, t.version_source, t.active) for t in mine] == [("13.0.88", "nvcc", True)]


def test_nvcc_wrapper_script_on_path(tmp_path):
    # A wrapper such as `exec /usr/local/cuda-11.8/bin/nvcc "$@"` in /usr/local/bin (seen on the dev machine).
    root = tmp_path
    for sub in ("usr/local/bin", "usr/local/cuda-11.8/bin", "usr/local/cuda-11.8/nvvm"):
        (root / sub).mkdir(parents=True)
    (root / "usr/local/bin/nvcc").write_text('#!/bin/sh\nexec /usr/local/cuda-11.8/bin/nvcc "$@"\n')
    (root / "usr/local/cuda-11.8/bin/nvcc").touch()
    (root / "usr/local/cuda-11.8/version.json").write_text((MULTI / "usr/local/cuda-11.8/version.json").read_text())
    facts = run_probe(root, env={"PATH": "/usr/local/bin:/usr/bin"})
    assert [(t.path, t.found_via, t.active) for t in facts.cuda.toolkits] == [
        ("/usr/local/cuda-11.8", ["/usr/local", "PATH"], True)
    ]


def test_nothing_installed(tmp_path):
    facts = run_probe(tmp_path, tf_cuda="12.5.1", tf_cudnn="9")
    assert facts.cuda.toolkits == [] and facts.cuda.cudnn == [] and facts.cuda.nvidia_wheels == []
    assert {status for status, *_ in libs(facts).values()} == {"missing"}


# --- cuDNN ----------------------------------------------------------------------------------------------


def test_cudnn_headers_and_sonames_multi():
    facts = run_probe(MULTI, env={})
    found = [(c.path, c.version, c.source) for c in facts.cuda.cudnn]
    assert found == [
        # /usr/include/cudnn_version.h is the alternatives link to this one: one install, not two
        ("/usr/include/cudnn_version.h", "9.14.0", "header"),
        ("/usr/local/cuda-11.8/include/cudnn_version.h", "8.9.7", "header"),
        ("/usr/lib/x86_64-linux-gnu/libcudnn.so.9.14.0", "9.14.0", "soname"),
        ("/usr/local/cuda-11.8/targets/x86_64-linux/lib/libcudnn.so.8.9.7", "8.9.7", "soname"),
    ]


def test_cudnn_real_h100_headers():
    facts = run_probe(H100 / "root")
    # cudnn_version.h and cudnn_version_v9.h side by side in one directory are one install.
    assert [(c.path, c.version) for c in facts.cuda.cudnn if c.source == "header"] == [
        ("/usr/include/x86_64-linux-gnu/cudnn_version.h", "9.14.0")
    ]


# --- pip wheels --------------------------------------------------------------------------------------

PIP = ROOTS / "pip-cuda/root"


def test_pip_wheels_both_layouts():
    facts = run_probe(PIP, site=[TF_SITE, TORCH_SITE])
    wheels = {w.name: (w.version, w.lib_dir, w.layout) for w in facts.cuda.nvidia_wheels}
    assert "nvidia-ml-py" not in wheels  # a Python binding, not a CUDA library
    assert wheels["nvidia-cudnn-cu12"] == ("9.3.0.75", f"{TF_SITE}/nvidia/cudnn/lib", "cu12")
    assert wheels["nvidia-cuda-runtime-cu12"] == ("12.5.82", f"{TF_SITE}/nvidia/cuda_runtime/lib", "cu12")
    assert wheels["nvidia-cuda-runtime"] == ("13.0.96", f"{TORCH_SITE}/nvidia/cu13/lib", "cu13")
    assert wheels["nvidia-cublas"][2] == "cu13"
    assert len(wheels) == 13  # with the nvcc wheel the [and-cuda] extra brings (XLA's ptxas and libdevice)
    cudnn = [(c.path, c.version, c.source) for c in facts.cuda.cudnn]
    assert cudnn == [(f"{TF_SITE}/nvidia/cudnn", "9.3.0", "wheel"), (f"{TORCH_SITE}/nvidia/cudnn", "9.19.0", "wheel")]


def test_tf_libraries_from_pip_wheels_through_rpath():
    facts = run_probe(
        PIP, tf_cuda="12.5.1", tf_cudnn="9", site=[TF_SITE, TORCH_SITE], tf_location=f"{TF_SITE}/tensorflow"
    )
    found = libs(facts)
    table = json.loads((Path(__file__).parents[1] / "recipes/cuda_libraries.json").read_text())
    assert set(found) == set(table["cuda"]["12"]) | {"cudnn", "cuda"}
    for name in table["cuda"]["12"]:
        status, path, via, _ = found[name]
        assert (status, via) == ("found", "rpath") and path.startswith(f"{TF_SITE}/nvidia/")
    assert found["cudnn"][:3] == ("found", f"{TF_SITE}/nvidia/cudnn/lib/libcudnn.so.9", "rpath")
    assert found["cudnn"][3] == [f"{TORCH_SITE}/nvidia/cudnn/lib/libcudnn.so.9"]  # another env's copy
    assert found["cuda"][:3] == ("found", "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "ld.so.cache")


def test_tf_libraries_from_another_env_are_off_the_loader_path():
    # TF in a site-packages without the wheels: the torch venv's CUDA 13 copies do not help a CUDA 12 build,
    # and its CUDA 12 copies (other env) are not on TF's rpath.
    facts = run_probe(
        PIP, tf_cuda="12.5.1", tf_cudnn="9", site=[TORCH_SITE, TF_SITE], tf_location=f"{TORCH_SITE}/tensorflow"
    )
    found = libs(facts)
    assert found["cudart"] == ("off_loader_path", None, None, [f"{TF_SITE}/nvidia/cuda_runtime/lib/libcudart.so.12"])


def test_cpu_tensorflow_needs_no_cuda_libraries():
    facts = run_probe(PIP, site=[TF_SITE])
    assert facts.cuda.tf_libraries == []
    facts = Facts()
    facts.tensorflow.build_info = TfBuildInfo(is_cuda_build=False)
    cuda.probe(ProbeContext(root=PIP.resolve(), env={}), facts)
    assert facts.cuda.tf_libraries == []


# --- the loader --------------------------------------------------------------------------------------


def test_ld_so_conf_of_the_real_h100():
    ctx = ProbeContext(root=(H100 / "root").resolve(), env={})
    dirs = ld_so_conf_dirs(ctx.fs, "/etc/ld.so.conf")
    # include /etc/ld.so.conf.d/*.conf, in glob order; each file's directories in file order.
    expected = []
    for conf in sorted((H100 / "root/etc/ld.so.conf.d").glob("*.conf")):
        expected += [ln.strip() for ln in conf.read_text().splitlines() if ln.strip().startswith("/")]
    assert dirs == expected
    assert "/usr/local/cuda/targets/x86_64-linux/lib" in dirs and "/usr/local/nvidia/lib64" in dirs


def test_ld_so_conf_that_includes_itself_ends(tmp_path):
    # Ten conf.d files that each include the whole directory: read once each, not 10**depth times.
    conf_d = tmp_path / "etc/ld.so.conf.d"
    conf_d.mkdir(parents=True)
    (tmp_path / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n")
    for i in range(10):
        (conf_d / f"{i}.conf").write_text(f"include *.conf\n/opt/lib{i}\n")
    started = time.perf_counter()
    dirs = ld_so_conf_dirs(ProbeContext(root=tmp_path, env={}).fs, "/etc/ld.so.conf")
    assert time.perf_counter() - started < 1.0
    assert sorted(dirs) == [f"/opt/lib{i}" for i in range(10)]  # each once, in include (depth-first) order


def test_include_with_dotdot_stays_inside_the_root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/ld.so.conf").write_text("include ../../../../../../../etc/host.conf.d/*.conf\n")
    (tmp_path / "etc/host.conf.d").mkdir()
    (tmp_path / "etc/host.conf.d/a.conf").write_text("/inside/lib\n")
    assert ld_so_conf_dirs(ProbeContext(root=tmp_path, env={}).fs, "/etc/ld.so.conf") == ["/inside/lib"]


def test_off_loader_path_toolkit_and_ld_library_path():
    facts = run_probe(MULTI, tf_cuda="11.8", tf_cudnn="8")
    found = libs(facts)
    lib118 = "/usr/local/cuda-11.8/targets/x86_64-linux/lib"
    assert found["cudart"] == ("off_loader_path", None, None, [f"{lib118}/libcudart.so.11.0"])
    assert found["cudnn"] == ("off_loader_path", None, None, [f"{lib118}/libcudnn.so.8"])
    assert found["cublas"][0] == "missing"
    facts = run_probe(MULTI, env={"LD_LIBRARY_PATH": "/usr/local/cuda-11.8/lib64"}, tf_cuda="11.8", tf_cudnn="8")
    assert libs(facts)["cudart"] == ("found", "/usr/local/cuda-11.8/lib64/libcudart.so.11.0", "LD_LIBRARY_PATH", [])


def test_cuda12_toolkit_found_through_ld_so_conf():
    facts = run_probe(MULTI, tf_cuda="12.5.1", tf_cudnn="9")
    found = libs(facts)
    assert found["cudart"][:3] == (
        "found",
        "/usr/local/cuda-12/targets/x86_64-linux/lib/libcudart.so.12",
        "ld.so.cache",
    )
    assert found["cudnn"][:3] == ("found", "/usr/lib/x86_64-linux-gnu/libcudnn.so.9", "ld.so.cache")


def test_wsl2_libcuda_from_the_windows_driver():
    facts = run_probe(ROOTS / "wsl2/root", tf_cuda="12.5.1", tf_cudnn="9")
    assert libs(facts)["cuda"][:3] == ("found", "/usr/lib/wsl/lib/libcuda.so.1", "ld.so.cache")


def test_probe_is_fast_on_a_fixture_root():
    started = time.perf_counter()
    run_probe(PIP, tf_cuda="12.5.1", tf_cudnn="9", site=[TF_SITE, TORCH_SITE], tf_location=f"{TF_SITE}/tensorflow")
    assert time.perf_counter() - started < 0.1


# --- fuzzing ---------------------------------------------------------------------------------------------

REAL_JSON = (MULTI / "usr/local/cuda-12.6/version.json").read_text()
REAL_HEADER = (H100 / "root/usr/include/x86_64-linux-gnu/cudnn_version.h").read_text()
REAL_CONF = (H100 / "root/etc/ld.so.conf.d/x86_64-linux-gnu.conf").read_text()


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(0, len(REAL_JSON)))
def test_fuzz_version_files(text, cut):
    for parse in (parse_version_json, parse_version_txt, parse_nvcc_version):
        parse(text)
        parse(REAL_JSON[:cut])
        parse(REAL_JSON[:cut] + text)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(0, len(REAL_HEADER)))
def test_fuzz_cudnn_header(text, cut):
    parse_cudnn_header(text)
    version = parse_cudnn_header(REAL_HEADER[:cut] + text)
    assert version is None or version.split(".")[0].isdigit()


@settings(max_examples=60, deadline=None)
@given(st.text(), st.text())
def test_fuzz_ld_so_conf_and_version_json_in_a_root(conf, version_json):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "etc/ld.so.conf.d").mkdir(parents=True)
        (root / "etc/ld.so.conf").write_text("include /etc/ld.so.conf.d/*.conf\n" + conf)
        (root / "etc/ld.so.conf.d/a.conf").write_text(REAL_CONF + conf + "\ninclude ../ld.so.conf\n")
        (root / "usr/local/cuda-12.0").mkdir(parents=True)
        (root / "usr/local/cuda-12.0/version.json").write_text(version_json)
        run_probe(root, tf_cuda="12.0", tf_cudnn="9")
