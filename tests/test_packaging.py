"""`pip install .` (not editable) must carry recipes/ and templates/ in the wheel: build it, install it in a
fresh venv, and use it from there."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # `python -m build` as a packager runs it: the sdist first, then the wheel built from the unpacked sdist.
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (sdist,) = out.glob("envdoctor-*.tar.gz")
    assert sdist.stat().st_size > 0
    (built,) = out.glob("envdoctor-*.whl")
    return built


def test_wheel_carries_recipes_and_templates(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for data_dir in ("recipes", "templates"):
        expected = {f"envdoctor/{p.relative_to(REPO).as_posix()}" for p in (REPO / data_dir).rglob("*") if p.is_file()}
        assert expected, f"{data_dir}/ is empty in the checkout"
        assert expected <= set(names), sorted(expected - set(names))


def test_installed_wheel_runs_from_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "fresh venv"  # a space in the path on purpose
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    # Dependencies come from this test environment (appended after the fresh venv's own site-packages, so the
    # freshly installed envdoctor wins over any other copy).
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    where = subprocess.run(
        [py, "-c", "import envdoctor.resources as r; print(r.recipes_dir()); print(r.templates_dir())"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.split("\n")
    assert where[0].startswith(purelib) and where[1].startswith(purelib), where
    version = subprocess.run([env_dir / "bin" / "envdoctor", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("envdoctor ")
    root = REPO / "tests" / "fixtures" / "h100-firecracker" / "idle" / "root"
    report = subprocess.run(
        [env_dir / "bin" / "envdoctor", "check", "--json", "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert report.returncode in (0, 1), report.stderr
    document = json.loads(report.stdout)
    assert document["facts"]["root"] == str(root)
