"""The catalogue of finding codes (recipes/findings.json) and the checks hold to each other both ways, docs/findings.md
is current, and `envdoctor explain` prints pages, lists and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from envdoctor import catalogue
from tests.finding_codes import emitted_codes

REPO = Path(__file__).resolve().parent.parent
CODE = r"^[a-z0-9]+(\.[a-z0-9-]+)+$"  # the pattern docs/check.schema.json gives a finding's code


def test_every_emitted_code_is_catalogued_with_its_severities() -> None:
    entries = catalogue.entries()
    for code, emitted in emitted_codes().items():
        assert code in entries, f"{code} ({', '.join(emitted.places)}) is not in recipes/findings.json"
        assert not entries[code].retired, f"{code} is marked retired but {', '.join(emitted.places)} emits it"
        assert emitted.severities == set(entries[code].severity), (
            f"{code}: the checks write {sorted(emitted.severities)}, the catalogue says {entries[code].severity}"
        )


def test_every_live_catalogued_code_is_emitted() -> None:
    emitted = emitted_codes()
    live = [code for code, entry in catalogue.entries().items() if not entry.retired]
    assert [code for code in live if code not in emitted] == [], "catalogued, not retired, but no check emits it"


def test_published_codes_stay_catalogued() -> None:
    """A code is a contract: once published it stays in the catalogue (retired if no longer emitted)."""
    lines = (REPO / "tests/fixtures/finding_codes.txt").read_text().splitlines()
    published = [line for line in lines if line and not line.startswith("#")]
    assert [code for code in published if code not in catalogue.entries()] == []
    assert [code for code in catalogue.entries() if code not in published] == [], (
        "a new code: append it to tests/fixtures/finding_codes.txt"
    )


def test_entries_are_complete_and_sourced() -> None:
    import re

    from envdoctor.checks.base import CATEGORIES

    raw = json.loads((REPO / "recipes/findings.json").read_text())["codes"]
    for code, entry in catalogue.entries().items():
        assert re.match(CODE, code) and entry.category in CATEGORIES, code
        assert set(raw[code]) == {"severity", "title", "meaning", "why", "fix", "sources", "retired"}, code
        assert all(text.strip() for text in (entry.title, entry.meaning, entry.why, entry.fix)), code
        assert entry.sources, f"{code} cites no source"
        for source in entry.sources:  # a primary source on the web, or a file of this repository
            assert source.startswith("https://") or (REPO / source).is_file(), f"{code}: {source}"


def test_docs_findings_md_is_current() -> None:
    assert (REPO / "docs/findings.md").read_text() == catalogue.markdown(), (
        "docs/findings.md is stale: run python -m envdoctor.catalogue"
    )


def test_check_does_not_load_the_catalogue() -> None:
    """The catalogue is for explain and the docs: `check` keeps its start-up time."""
    code = (
        "import sys; from envdoctor.cli import main; sys.argv = ['envdoctor', 'check', '--from', "
        "'tests/fixtures/h100-firecracker/envdoctor/busy-facts.json', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('envdoctor.catalogue' in sys.modules, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "False"


def _explain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envdoctor", "explain", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def test_explain_prints_a_page() -> None:
    result = _explain("driver.minor-compat-for-tf")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("driver.minor-compat-for-tf  (info)\n")
    for label in ("What it means:", "Why it matters:", "How to fix:", "Sources:"):
        assert label in result.stdout


@pytest.mark.parametrize("prefix", ["driver", "driver.", "driver.too-old"])
def test_explain_lists_a_prefix(prefix: str) -> None:
    result = _explain(prefix)
    codes = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0 and codes and all(c.startswith(prefix) for c in codes)
    assert "driver.too-old-for-tf" in codes


def test_explain_alone_lists_every_code() -> None:
    result = _explain()
    codes = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert result.returncode == 0 and codes == set(catalogue.entries())


@pytest.mark.parametrize(
    ("arg", "hint"),
    [
        ("driver.too-old-for-tensorflow", "did you mean driver.too-old-for-tf?"),
        ("nonsense", "envdoctor explain lists every code"),
        ("\x1b]0;x\x07", "envdoctor explain lists every code"),
    ],
)
def test_explain_unknown_code_is_one_line_exit_2(arg: str, hint: str) -> None:
    result = _explain(arg)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and hint in result.stderr and "\x1b" not in result.stderr
