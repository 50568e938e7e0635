"""The doctor against real failure reports: each case in tests/fixtures/reports/cases/ rebuilds one reported machine
(a fake root built here from its spec, with real METADATA headers and real /proc files, or a snapshot), runs the
real probes (`--root`) or loads the snapshot (`--from`), and expects the cause the report's thread settled.

Every case is also round-tripped through a saved snapshot (`check --save`, then `--from`): same findings. The
README there ranks the failure classes and links the reports."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from checks_support import TESTS, fix_convention_violations

from envdoctor.checks import run_checks
from envdoctor.checks.common import is_tf_distribution, release_rows
from envdoctor.facts import Facts, from_dict, to_dict
from envdoctor.knowledge.names import dist_name
from envdoctor.probes import ProbeContext, collect

CORPUS = TESTS / "fixtures" / "reports"
CASES = sorted((CORPUS / "cases").glob("*.json"))
PLACEHOLDER = re.compile(r"\b(CUDA|cuDNN|TensorFlow|Python|driver) \?")


def _case(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _write(root: Path, path: str, text: str) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if text.startswith("@fixture:"):  # a real file kept elsewhere in tests/fixtures
        shutil.copyfile(TESTS / "fixtures" / text.removeprefix("@fixture:"), target)
    else:
        target.write_text(text)
    return target


BUILD_INFO = """# Copyright 2020 The TensorFlow Authors. All Rights Reserved.
# (license header of the generated file)
\"\"\"Auto-generated module providing information about the build.\"\"\"
import collections

build_info = collections.OrderedDict({items})
"""


def _build_info(dist: str, version: str, given: dict[str, Any] | None) -> str:
    """TensorFlow's generated build_info.py: the case's values, else its release's row (a CUDA build)."""
    if given is None:
        if dist in ("tensorflow-cpu", "intel-tensorflow"):
            given = {"is_cuda_build": False, "is_rocm_build": False}
        else:
            row = release_rows()[".".join(version.split(".")[:2])]
            given = {
                "cuda_compute_capabilities": row["compute_capabilities"],
                "cuda_version": row["cuda"],
                "cudnn_version": row["cudnn"].split(".")[0],
                "is_cuda_build": True,
                "is_rocm_build": False,
            }
    return BUILD_INFO.format(items=repr(sorted(given.items())))


def _satisfying(specifier: Any) -> str:
    """A version inside a requirement's range: one of its own bounds, else 1.0 (only the range matters)."""
    from packaging.version import Version

    bounds = [s.version.rstrip(".*").removesuffix("dev").rstrip(".") for s in specifier]
    for candidate in bounds + ["1.0"]:
        try:
            if specifier.contains(Version(candidate), prereleases=True):
                return candidate
        except ValueError:
            continue
    return "1.0"


def _fill_requirements(dists: dict[str, str]) -> dict[str, str]:
    """The report lists the packages that matter; the rest of TensorFlow's requirements (absl-py, wrapt, ...) were
    installed by pip at versions that satisfy them, so the rebuilt environment has them too."""
    from packaging.requirements import Requirement

    filled = dict(dists)
    have = {dist_name(n) for n in dists}
    for name, version in dists.items():
        real = CORPUS / "metadata" / f"{dist_name(name)}-{version}.METADATA"
        lines = real.read_text().splitlines() if real.is_file() else []
        for line in (ln.split(": ", 1)[1] for ln in lines if ln.startswith("Requires-Dist: ")):
            req = Requirement(line)
            if req.marker is not None and "extra" in str(req.marker) or dist_name(req.name) in have:
                continue
            if req.marker is not None and not req.marker.evaluate(
                {"platform_system": "Linux", "sys_platform": "linux", "platform_machine": "x86_64", "extra": ""}
            ):
                continue
            filled[req.name] = _satisfying(req.specifier)
            have.add(dist_name(req.name))
    return filled


def _env(root: Path, env: dict[str, Any]) -> None:
    site = env["site"]
    prefix = site.split("/lib/python")[0]
    if "pyvenv" in env:
        _write(root, f"{prefix}/pyvenv.cfg", env["pyvenv"])
    if env.get("conda"):
        (root / prefix.lstrip("/") / "conda-meta").mkdir(parents=True, exist_ok=True)
    for name, version in _fill_requirements(env.get("dists", {})).items():
        real = CORPUS / "metadata" / f"{dist_name(name)}-{version}.METADATA"
        header = real.read_text() if real.is_file() else f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        _write(root, f"{site}/{name.replace('-', '_')}-{version}.dist-info/METADATA", header)
        if is_tf_distribution(name):
            _write(root, f"{site}/tensorflow/__init__.py", "")
            _write(
                root,
                f"{site}/tensorflow/python/platform/build_info.py",
                _build_info(dist_name(name), version, env.get("build_info")),
            )
    for path, text in env.get("files", {}).items():  # relative to the site-packages directory
        _write(root, f"{site}/{path}", text)


def build_root(root: Path, spec: dict[str, Any]) -> None:
    if spec.get("os_release"):
        shutil.copytree(TESTS / "fixtures" / "os-release" / spec["os_release"], root, dirs_exist_ok=True)
    for path, text in spec.get("files", {}).items():
        _write(root, path, text)
    for name in spec.get("dev", []):  # a live /dev (null is always there); git cannot hold device nodes
        _write(root, f"/dev/{name}", "")
    for pci in spec.get("pci", []):
        dev = f"/sys/bus/pci/devices/{pci['address']}"
        _write(root, f"{dev}/vendor", "0x10de\n")
        _write(root, f"{dev}/device", pci["device"] + "\n")
        _write(root, f"{dev}/class", pci.get("class", "0x030000") + "\n")
        if pci.get("driver"):
            (root / f"sys/bus/pci/drivers/{pci['driver']}").mkdir(parents=True, exist_ok=True)
            (root / dev.lstrip("/") / "driver").symlink_to(f"../../../bus/pci/drivers/{pci['driver']}")
    for env in spec.get("envs", []):
        _env(root, env)
    for path, target in spec.get("links", {}).items():
        link = root / path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)


def _merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in overlay.items()}}
    return overlay


def facts_for(case: dict[str, Any], tmp: Path) -> Facts:
    if "snapshot" in case:
        return from_dict(Facts, case["snapshot"])
    build_root(tmp, case["root"])
    facts = collect(ProbeContext(root=tmp, env={}))
    assert facts.probe_errors == []
    if "overlay" in case:  # what only the live machine showed (NVML's answer, the shell's variables)
        facts = from_dict(Facts, _merge(to_dict(facts), case["overlay"]))
    return facts


def _check(case: dict[str, Any], facts: Facts) -> list[tuple[str, str]]:
    found = {f.code: f for f in run_checks(facts)}
    assert not [c for c in found if c.startswith("envdoctor.")], found
    for code, want in case["expect"].items():
        assert code in found, f"{code} missing; found {sorted(found)}"
        f = found[code]
        if "severity" in want:
            assert f.severity.value == want["severity"], (code, f.severity)
        for part in want.get("title", []):
            assert part in f.title, (code, part, f.title)
        for part in want.get("evidence", []):
            assert any(part in e for e in f.evidence), (code, part, f.evidence)
        for part in want.get("fix", []):
            assert part in (f.fix or ""), (code, part, f.fix)
        for part in want.get("fix_not", []):
            assert part not in (f.fix or ""), (code, part, f.fix)
    for code in case.get("absent", []):
        assert code not in found, (code, found[code].title)
    for f in found.values():
        assert not PLACEHOLDER.search(f.fix or ""), (f.code, f.fix)
    assert fix_convention_violations(list(found.values())) == []
    return sorted((f.code, f.severity.value) for f in found.values())


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_report(path: Path, tmp_path: Path) -> None:
    case = _case(path)
    facts = facts_for(case, tmp_path)
    direct = _check(case, facts)
    saved = from_dict(Facts, json.loads(json.dumps(to_dict(facts))))  # check --save, then check --from
    assert _check(case, saved) == direct


def test_corpus_covers_the_issue() -> None:
    cases = [_case(p) for p in CASES]
    assert len({c["report"] for c in cases}) >= 40
    readme = (CORPUS / "README.md").read_text()
    for c in cases:
        assert c["report"].startswith("https://") and c["report"] in readme, c["report"]
        assert c["class"] and c["shows"] and c["settled"]
    for point in range(1, 10):
        assert sum(point in c["points"] for c in cases) >= 2, f"issue point {point}"
