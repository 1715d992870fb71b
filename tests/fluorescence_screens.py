"""Screenshots of HTML reports with headless Chromium (Debian's, never a downloaded one)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def screenshot(html: Path, png: Path) -> dict:
    """Open ``html`` offline, save a full-page PNG, return facts about the page.

    Returns
    -------
    dict
        ``text`` (visible text), ``images`` (list of (naturalWidth, naturalHeight, alt)).
    """
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium (/usr/bin/chromium) is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("http*://**", lambda route: route.abort())  # reports work offline
            page.goto(html.resolve().as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(png), full_page=True)
            text = page.inner_text("body")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.naturalWidth, e.naturalHeight, e.alt])"
            )
        finally:
            browser.close()
    return {"text": text, "images": images}
