"""Reports as a browser shows them: headless Chromium (Debian's `chromium`) loads an HTML report, counts the
images that fail to decode and tells whether the page runs wider than the window, and takes a screenshot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# As root, without a sandbox; no background connections (this machine's network is closed to them).
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PROBE = """<script>window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.images = images.length;
  document.body.dataset.broken = images.filter((i) => !(i.complete && i.naturalWidth > 0)).length;
  document.body.dataset.overflow = document.documentElement.scrollWidth - window.innerWidth;
});</script>"""


@dataclass
class Rendered:
    images: int
    broken: int
    overflow_px: int  # how far the page runs past the window's right edge
    screenshot: Path


def chromium() -> str:
    """The browser, or a skip; CI sets PODIUM_REQUIRE_CHROMIUM=1, where a missing browser fails instead."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("PODIUM_REQUIRE_CHROMIUM") == "1":
            pytest.fail("PODIUM_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no chromium on PATH")
    return found


def render_in_chromium(html: Path, screenshot: Path, width: int = 1280, height: int = 2400) -> Rendered:
    """Load `html` (a probe added to a copy beside it), read what the probe found, and save a screenshot."""
    browser = chromium()
    probed = html.with_name(f".probed-{html.name}")
    text = html.read_text()
    probed.write_text(text.replace("</body>", f"{PROBE}</body>") if "</body>" in text else text + PROBE)
    profile = screenshot.parent / ".chromium-profile"
    common = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
    try:
        dom = subprocess.run(
            [*common, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout  # fmt: skip
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [*common, f"--screenshot={screenshot}", probed.as_uri()], capture_output=True, timeout=120, check=True
        )
    finally:
        probed.unlink(missing_ok=True)
        shutil.rmtree(profile, ignore_errors=True)
    found = {key: int(value) for key, value in re.findall(r'data-(images|broken|overflow)="(-?\d+)"', dom)}
    assert set(found) == {"images", "broken", "overflow"}, f"{html}: the probe did not run:\n{dom[:500]}"
    return Rendered(found["images"], found["broken"], max(found["overflow"], 0), screenshot)


def screenshot_dir(tmp_path: Path) -> Path:
    """PODIUM_SCREENSHOTS keeps the screenshots for a person to look at; otherwise they go with tmp_path."""
    return Path(os.environ.get("PODIUM_SCREENSHOTS") or tmp_path / "screenshots")
