"""The --html page in a real headless browser (Debian's chromium, as .ci/run installs it): a screenshot shows the
drifting cell highlighted, and the DOM after the page's own script ran shows the table sorted."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_fleet import fleet_of, make_fleet

from envdoctor.fleet import render

Image = pytest.importorskip("PIL.Image", reason="Pillow reads the screenshot: pip install '.[test]'")
BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium: apt-get install chromium (as .ci/run does)")
DRIFT_RGB = (0xFF, 0xB3, 0xB3)  # td.drift's background in templates/fleet/report.html.j2


def headless(*args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    return subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet")
    fleet = fleet_of(make_fleet(folder / "reports", 4, {"node03": {"driver": "570.86.15"}}))
    path = folder / "fleet.html"
    path.write_text(render.html(fleet))
    return path


def test_screenshot_shows_the_table_with_the_drifting_cell_highlighted(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "fleet.png"
    result = headless(f"--screenshot={shot}", "--window-size=1200,700", page.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 700)
    colours = image.getcolors(maxcolors=1 << 20) or []
    drift_pixels = sum(count for count, rgb in colours if rgb == DRIFT_RGB)
    # One drifting cell (node03's driver): a block of the highlight colour, a few thousand pixels, not zero.
    assert 1000 < drift_pixels < 40000, drift_pixels


@pytest.mark.parametrize(
    "anchor, hosts",
    [("#sort=2", ["node03", "node01", "node02", "node04"]), ("#sort=-2", ["node01", "node02", "node04", "node03"])],
)
def test_the_page_script_sorts_the_table(page: Path, anchor: str, hosts: list[str]) -> None:
    result = headless("--dump-dom", page.as_uri() + anchor)
    assert result.returncode == 0, result.stderr[-2000:]
    body = result.stdout.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert re.findall(r"<tr[^>]*><td>([^<]+)</td>", body) == hosts
    assert '<td class="drift" title="differs from the majority">≠ 570.86.15</td>' in body
    assert 'href="#finding-gpu-memory-in-use"' in body and 'id="finding-gpu-memory-in-use"' in result.stdout
