"""`envdoctor fleet`: real H100 snapshots copied to many hosts, with the classic cluster faults put in by hand
(a node left on an older driver, a GPU fallen off the bus, truncated and foreign reports, a host reported twice)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envdoctor.doctor import diagnose
from envdoctor.facts import Facts, from_dict
from envdoctor.fleet import judge, load, render
from envdoctor.fleet.node import Field
from envdoctor.report.jsonout import diagnosis_dict

REPO = Path(__file__).resolve().parent.parent
H100_BUSY = REPO / "tests" / "fixtures" / "h100-firecracker" / "envdoctor" / "busy-facts.json"
H200 = REPO / "tests" / "fixtures" / "h200-firecracker" / "envdoctor" / "facts.json"


def snapshot(host: str, base: Path = H100_BUSY, **changes: Any) -> dict[str, Any]:
    """A real snapshot as `host`; changes: driver=..., gpus=N (keep the first N), collected_at=..."""
    facts = copy.deepcopy(json.loads(base.read_text()))
    facts["system"]["hostname"] = host
    if "driver" in changes:  # a partial upgrade: the library and the loaded module both at this version
        facts["driver"]["userspace_version"] = facts["driver"]["kernel_module_version"] = changes["driver"]
    if "gpus" in changes:
        facts["gpus"] = facts["gpus"][: changes["gpus"]]
    if "collected_at" in changes:
        facts["collected_at"] = changes["collected_at"]
    return facts


def check_json(facts: dict[str, Any]) -> dict[str, Any]:
    """What `envdoctor check --json` prints for these facts."""
    return diagnosis_dict(diagnose(from_dict(Facts, facts)))


def write(folder: Path, name: str, document: Any) -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def make_fleet(folder: Path, n: int, drift: dict[str, dict[str, Any]] | None = None) -> list[Path]:
    """n nodes node01..; `drift` maps a host to its changes. Written as check --json documents."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write(
            folder, f"node{i:02d}.json", check_json(snapshot(f"node{i:02d}", **(drift or {}).get(f"node{i:02d}", {})))
        )
        for i in range(1, n + 1)
    ]


def fleet_of(paths: list[Path], **options: Any) -> judge.Fleet:
    nodes, skipped = load.load_reports(paths)
    return judge.judge(nodes, skipped, **options)


def envdoctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        cwd=REPO,
        timeout=120,
    )


def test_the_node_that_differs_is_marked_and_the_findings_name_their_nodes(tmp_path: Path) -> None:
    paths = make_fleet(tmp_path, 5, {"node03": {"driver": "570.86.15"}, "node05": {"gpus": 0}})
    fleet = fleet_of(paths)
    assert [n.host for n in fleet.nodes] == ["node01", "node02", "node03", "node04", "node05"]
    assert fleet.expected[Field.DRIVER] == "580.159.04" and fleet.expected[Field.GPU_COUNT] == 1
    assert fleet.drift == {"node03": [Field.DRIVER], "node05": [Field.GPU_COUNT]}
    memory = next(g for g in fleet.findings if g.code == "gpu.memory-in-use")
    assert memory.severity == "warning" and memory.hosts == ["node01", "node02", "node03", "node04"]
    assert fleet.exit_code == 0  # warnings and drift alone: 0 ...
    assert fleet_of(paths, strict=True).exit_code == 1  # ... and 1 with --strict
    text = render.markdown(fleet)
    assert "| node03 | NVIDIA H100 80GB HBM3 × 1 (79.6 GiB) | **≠ 570.86.15** |" in text
    assert "- node03: driver 570.86.15 (majority 580.159.04)" in text


def test_a_tie_has_no_majority_and_marks_every_node(tmp_path: Path) -> None:
    fleet = fleet_of(make_fleet(tmp_path, 2, {"node02": {"driver": "570.86.15"}}))
    assert fleet.no_majority == [Field.DRIVER] and Field.DRIVER not in fleet.expected
    assert set(fleet.drift) == {"node01", "node02"}
    assert "driver: no majority" in render.expected_line(fleet)


def test_the_newest_report_of_a_host_wins_and_the_report_says_so(tmp_path: Path) -> None:
    old = write(
        tmp_path, "a.json", check_json(snapshot("node01", driver="570.86.15", collected_at="2026-01-01T00:00:00+00:00"))
    )
    new = write(tmp_path, "b.json", check_json(snapshot("node01", collected_at="2026-02-01T00:00:00+01:00")))
    fleet = fleet_of([new, old])
    assert [n.path for n in fleet.nodes] == [str(new)]
    assert fleet.duplicates == [judge.Duplicate("node01", str(new), (str(old),))]
    assert f"the newest, {new}, is used (ignored: {old})" in "\n".join(render.problems(fleet))


def test_bad_reports_are_named_skipped_and_counted_never_a_traceback(tmp_path: Path) -> None:
    good = make_fleet(tmp_path, 1)
    whole = json.dumps(check_json(snapshot("node02")))
    older, newer, malformed = snapshot("x"), check_json(snapshot("y")), snapshot("z")
    older["schema_version"] = 0
    newer["schema_version"] = newer["facts"]["schema_version"] = 2
    malformed["gpus"] = "four"
    bad = {
        "truncated.json": whole[: len(whole) // 2],  # the node died while writing
        "empty.json": "",
        "foreign.json": {"kind": "something else"},
        "older.json": older,
        "newer.json": newer,
        "malformed.json": malformed,
        "findings.json": {**check_json(snapshot("w")), "findings": [{"code": 1}]},
        "latin1.json": b"\xff\xfe",
    }
    for name, content in bad.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else write(tmp_path, name, content)
    result = envdoctor("fleet", str(tmp_path), "--json")
    assert result.returncode == 1 and result.stderr == ""
    document = json.loads(result.stdout)
    reasons = {Path(s["path"]).name: s["reason"] for s in document["skipped"]}
    assert reasons == {
        "truncated.json": "not JSON",
        "empty.json": "not JSON",
        "latin1.json": "not JSON",
        "foreign.json": "not an envdoctor report",
        "older.json": "other schema",
        "newer.json": "other schema",
        "malformed.json": "malformed",
        "findings.json": "malformed",
    }
    assert [n["host"] for n in document["nodes"]] == ["node01"] and str(good[0]) == document["nodes"][0]["path"]
    assert document["summary"]["skipped"] == 8
    details = {Path(s["path"]).name: s["detail"] for s in document["skipped"]}
    assert "older than this envdoctor's (1)" in details["older.json"] and "upgrade" in details["newer.json"]


def test_a_save_snapshot_is_judged_here_a_check_json_keeps_the_nodes_findings(tmp_path: Path) -> None:
    saved = write(tmp_path, "saved.json", snapshot("node01"))
    document = check_json(snapshot("node02"))
    document["findings"].append(
        {
            "code": "gpu.fell-off-bus",
            "category": "gpu",
            "severity": "error",
            "title": "GPU 3 fell off the bus",
            "evidence": ["Xid 79"],
            "fix": "sudo reboot",
        }
    )
    reported = write(tmp_path, "reported.json", document)
    fleet = fleet_of([saved, reported])
    assert [n.source for n in fleet.nodes] == ["check --save", "check --json"]
    assert [g.hosts for g in fleet.findings if g.code == "gpu.fell-off-bus"] == [["node02"]]
    assert fleet.exit_code == 1 and fleet.findings[0].code == "gpu.fell-off-bus"  # the worst comes first


def test_nodes_without_a_report_are_missing(tmp_path: Path) -> None:
    fleet = fleet_of(make_fleet(tmp_path, 2), expected_hosts=["node01", "node02.cluster", "node03"])
    assert fleet.missing == ["node03"] and fleet.exit_code == 1


def test_expect_gate_from_a_spec_written_from_one_node(tmp_path: Path) -> None:
    paths = make_fleet(tmp_path / "r", 3, {"node02": {"driver": "570.86.15"}})
    spec = tmp_path / "spec.json"
    written = envdoctor("fleet", str(paths[0]), "--write-spec", str(spec), "--json")
    assert written.returncode == 0, written.stderr
    assert json.loads(spec.read_text()) == {
        "kind": "envdoctor-fleet-spec",
        "schema_version": 1,
        "from": str(paths[0]),
        "driver": "580.159.04",
        "cuda": "13.0.96",
        "cudnn": "9.14.0",
        "tensorflow": None,
        "gpu_count": 1,
    }
    gated = envdoctor("fleet", str(tmp_path / "r"), "--expect", str(spec), "--json")
    document = json.loads(gated.stdout)
    assert gated.returncode == 1 and document["gate_failures"] == ["node02"] and document["summary"]["gate"] is False
    # A spec with the field dropped no longer compares it: the gate passes.
    loose = {k: v for k, v in json.loads(spec.read_text()).items() if k != "driver"}
    write(tmp_path, "loose.json", loose)
    fleet = fleet_of(
        paths, reference=__import__("envdoctor.fleet.spec", fromlist=["x"]).load_reference(tmp_path / "loose.json")
    )
    assert fleet.gate_failures == [] and fleet.exit_code == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["fleet", "/nonexistent/reports"], "/nonexistent/reports: no such file or folder"),
        (["fleet", "EMPTY"], "no *.json report in this folder"),
        (["fleet", "GOOD", "--json", "--markdown"], "--json and --markdown cannot be combined"),
        (["fleet", "GOOD", "--expect", "BADSPEC"], "unknown field(s) 'drivers'"),
        (["fleet", "GOOD", "--expect", "GOOD"], "Is a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "empty").mkdir()
    make_fleet(tmp_path / "good", 1)
    write(tmp_path, "bad-spec.json", {"kind": "envdoctor-fleet-spec", "schema_version": 1, "drivers": "1"})
    paths = {"EMPTY": tmp_path / "empty", "GOOD": tmp_path / "good", "BADSPEC": tmp_path / "bad-spec.json"}
    result = envdoctor(*[str(paths.get(a, a)) for a in args])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_hostile_values_are_text_in_every_format(tmp_path: Path) -> None:
    path = write(tmp_path, "x.json", check_json(snapshot("<script>alert(1)</script>|\x1b]0;pwned\x07")))
    fleet = fleet_of([path])
    page = render.html(fleet)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\x1b" not in render.markdown(fleet) and "\\|" in render.markdown(fleet)
    # Self-contained: nothing is fetched from anywhere.
    assert "http://" not in page and "https://" not in page and " src=" not in page


def test_terminal_table_end_to_end(tmp_path: Path) -> None:
    make_fleet(tmp_path, 3, {"node02": {"gpus": 0}})
    result = envdoctor("fleet", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "envdoctor fleet · 3 node(s)"
    assert any("node02" in line and "≠ none" in line for line in lines)
    assert "  node02: GPUs 0 (majority 1)" in lines
