"""Fuzzing the two inputs an attacker controls: a `--root` tree and a `--from` snapshot.

A tree holds, at the paths the probes read, random bytes, FIFOs, directories and links (into the root, out of it,
to `/`, to themselves); collect must finish, record no crashed probe, show nothing of the host and produce facts
every output can print. A snapshot is a real one (tests/fixtures/h100-firecracker) with random JSON in random
places; loading it gives one usage error, or the doctor diagnoses it and renders it in every format.

CI runs a few hundred examples (well under a minute). ENVDOCTOR_FUZZ_EXAMPLES=N runs more: `scripts/fuzz-long.sh`,
its last result in bench/README.md.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envdoctor.errors import UsageError
from envdoctor.facts import to_dict
from envdoctor.probes import ProbeContext, collect

TESTS = Path(__file__).parent
SNAPSHOT = TESTS / "fixtures/h100-firecracker/envdoctor/busy-facts.json"
SECRET = "ENVDOCTOR-FUZZ-HOST-SECRET"
EXAMPLES = int(os.environ.get("ENVDOCTOR_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(
    max_examples=EXAMPLES or 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Where the probes look (a sample of what tests/test_probe_root_confinement.py records, shallow and deep).
PROBED = [
    "/etc/os-release",
    "/usr/lib/os-release",
    "/etc/hostname",
    "/etc/debian_version",
    "/etc/redhat-release",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ld.so.conf.d/cuda.conf",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/driver/nvidia/version",
    "/proc/modules",
    "/proc/1/cgroup",
    "/sys/module/nvidia/version",
    "/sys/bus/pci/devices",
    "/sys/bus/pci/devices/0000:3b:00.0",
    "/sys/bus/pci/devices/0000:3b:00.0/vendor",
    "/sys/bus/pci/devices/0000:3b:00.0/class",
    "/usr/local/cuda",
    "/usr/local/cuda/version.json",
    "/usr/local/cuda-12.4",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu/libcudnn.so.9",
    "/usr/include/cudnn_version.h",
    "/usr/lib/python3/dist-packages",
    "/usr/lib/python3/dist-packages/tensorflow/__init__.py",
    "/usr/lib/python3/dist-packages/tensorflow/python/platform/build_info.py",
    "/usr/lib/python3/dist-packages/tensorflow-2.17.0.dist-info",
    "/usr/lib/python3/dist-packages/tensorflow-2.17.0.dist-info/METADATA",
    "/usr/local/lib/python3.12/site-packages",
    "/opt/conda/lib/python3.11/site-packages",
]

entry = st.one_of(
    st.tuples(st.just("file"), st.binary(max_size=300)),
    st.tuples(
        st.just("text"),
        st.sampled_from(
            [
                "ID=ubuntu\nVERSION_ID=24.04\n",
                "include /etc/ld.so.conf.d/*.conf\n/usr/local/cuda/lib64\n",
                "include *\ninclude ../../../*\n",
                "0x10de\n",
                "0x030200\n",
                '{"cuda": {"version": "12.4.1"}}',
                "#define CUDNN_MAJOR 9\n",
                "Name: tensorflow\nVersion: 2.17.0\n\n",
                "nvidia 1 0 - Live 0x0\n",
            ]
        ),
    ),
    st.tuples(st.just("fifo"), st.none()),
    st.tuples(st.just("dir"), st.none()),
    st.tuples(
        st.just("link"),
        st.sampled_from(
            [
                "/",
                ".",
                "..",
                "../../../../../..",
                "/etc",
                "/usr/local/cuda",
                "self",
                "HOST",
                "HOST-DIR",
                "../../../../../../../HOST",
            ]
        ),
    ),
)


def _build(root: Path, entries: list[tuple[str, tuple[str, Any]]], host: Path) -> None:
    for path, (kind, value) in entries:
        local = root / path.lstrip("/")
        parent = os.path.realpath(local.parent)
        if os.path.lexists(local) or not parent.startswith(f"{root}/"):
            continue
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
        except OSError:  # a parent is a file or a FIFO already
            continue
        if kind == "file":
            local.write_bytes(value)
        elif kind == "text":
            local.write_text(value)
        elif kind == "fifo":
            os.mkfifo(local)
        elif kind == "dir":
            local.mkdir()
        else:
            target = {"self": local.name, "HOST": str(host / "secret"), "HOST-DIR": str(host)}.get(value, value)
            os.symlink(target.replace("HOST", str(host).lstrip("/")) if value.endswith("/HOST") else target, local)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("host")
    (folder / "secret").write_text(f"ID={SECRET}\n{SECRET}\n0x10de\n")
    (folder / f"{SECRET}.conf").write_text("/" + SECRET + "\n")
    return folder


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this OS")
@FUZZ
@given(entries=st.lists(st.tuples(st.sampled_from(PROBED), entry), max_size=12))
def test_any_root_tree_is_read_inside_the_root_without_a_crash(host: Path, entries: list) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(os.path.realpath(scratch)) / "root"
        root.mkdir()
        _build(root, entries, host)
        facts = collect(ProbeContext(root=root, env={}))
        assert facts.probe_errors == []
        text = json.dumps(to_dict(facts), ensure_ascii=False)
        text.encode("utf-8")  # strict: printable everywhere
        assert SECRET.lower() not in text.lower()
        shutil.rmtree(root, ignore_errors=True)


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["\n", "$(id)", "`id`", "'\"", "\x1b[2J", "GPU-", "2.21.0", "sm_90"]),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _leaf_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [prefix] + [p for k, v in value.items() for p in _leaf_paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [prefix] + [p for i, v in enumerate(value) for p in _leaf_paths(v, (*prefix, i))]
    return [prefix]


REAL = json.loads(SNAPSHOT.read_text())
PLACES = [p for p in _leaf_paths(REAL) if p]


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(PLACES), json_value), min_size=1, max_size=4),
    raw_suffix=st.sampled_from(["", "", "", "]", "{", "\x00"]),
)
def test_any_snapshot_is_rejected_in_one_line_or_diagnosed_and_rendered(changes: list, raw_suffix: str) -> None:
    from envdoctor.commands.check import load_snapshot
    from envdoctor.doctor import diagnose
    from envdoctor.report import human, jsonout, markdown

    data = json.loads(json.dumps(REAL))
    for place, value in changes:
        target = data
        try:
            for key in place[:-1]:
                target = target[key]
            target[place[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        handle.write(json.dumps(data) + raw_suffix)
    try:
        facts = load_snapshot(Path(handle.name))
    except UsageError as exc:
        assert "\n" not in str(exc).strip()
        return
    finally:
        os.unlink(handle.name)
    diagnosis = diagnose(facts)
    assert [f for f in diagnosis.findings if f.category == "envdoctor"] == []
    jsonout.dumps(jsonout.diagnosis_dict(diagnosis)).encode("utf-8")
    markdown.render(diagnosis).encode("utf-8")
    out = io.StringIO()
    human.render(diagnosis, verbose=True, stream=out)
    assert "\x1b" not in out.getvalue()
