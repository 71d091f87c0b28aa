"""Render the report in headless Chromium: what a reader sees, not only what the HTML says."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from test_report import make_run  # pytest puts tests/ on sys.path (rootdir-relative imports)

from tunepipe.report import SECTION_IDS, write_report
from tunepipe.report.checks import missing_sections

pytestmark = pytest.mark.browser


def _chromium() -> str | None:
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (apt-get install chromium; or set CHROMIUM)"
)


def _headless(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with no network, sync or first-run side trips."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(make_run(tmp_path_factory.mktemp("browser"), n_trials=7))


@needs_chromium
def test_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    shot = report.parent / "report_screenshot.png"
    proc = _headless(
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,4000",
        "--hide-scrollbars",
        report.as_uri(),
    )
    assert shot.exists(), f"no screenshot; chromium said:\n{proc.stderr[-2000:]}"
    pixels = imread(shot)
    assert pixels.shape[0] >= 4000 and pixels.shape[1] >= 1280
    assert float(np.var(pixels)) > 0
    # The page is long: the last quarter must still show content (images did render, the page
    # did not stop after the header).
    assert float(np.var(pixels[3 * pixels.shape[0] // 4 :])) > 0


@needs_chromium
def test_rendered_dom_has_every_section(report: Path, tmp_path: Path) -> None:
    proc = _headless(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<html" in proc.stdout
    assert missing_sections(proc.stdout, SECTION_IDS) == []
