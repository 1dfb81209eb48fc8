"""The browser check itself: it must see a broken image and a page wider than the window."""

from __future__ import annotations

from pathlib import Path

from .browser import render_in_chromium

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_the_browser_check_counts_broken_images_and_overflow(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    good, broken = f'<img src="data:image/png;base64,{PIXEL}">', '<img src="data:image/png;base64,AAAA">'
    page.write_text(f"<html><body>{good}{good}{broken}</body></html>")
    rendered = render_in_chromium(page, tmp_path / "shots" / "report.png", width=800, height=600)
    assert (rendered.images, rendered.broken, rendered.overflow_px) == (3, 1, 0)
    assert rendered.screenshot.stat().st_size > 1000
    page.write_text(f'<html><body><div style="width: 2000px">wide</div>{good}</body></html>')
    wide = render_in_chromium(page, tmp_path / "shots" / "wide.png", width=800, height=600)
    assert (wide.broken, wide.overflow_px) == (0, 2000 + 8 - 800)  # the body keeps its 8 px margin
    assert not (tmp_path / ".probed-report.html").exists()
