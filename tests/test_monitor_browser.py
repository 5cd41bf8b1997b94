"""report.html opened by a real browser (Debian's Chromium, headless, offline).

Skipped only when no Chromium is installed (`apt-get install chromium`).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from test_monitor_files import populate

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium at /usr/bin/chromium")
def test_report_renders_in_headless_chromium(tmp_path) -> None:
    run = tmp_path / "run"
    populate(run, n=60, saturate_from=30).close("finished")
    url = (run / "report.html").resolve().as_uri()
    dom = chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'id="verdict"' in dom.stdout and "discriminator saturation" in dom.stdout
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,3000", url)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as img:
        img = img.convert("RGB")
    assert img.size == (1200, 3000)
    # The embedded images were decoded and drawn: the dark sample grids (#181818)
    # and matplotlib's blue plot lines are on the page, not just text.
    px = img.get_flattened_data()
    dark = sum(1 for p in px if max(p) < 40)
    blue = sum(1 for r, g, b in px if abs(r - 31) < 30 and abs(g - 119) < 30 and abs(b - 180) < 30)
    assert dark > 0.01 * len(px) and blue > 2000
