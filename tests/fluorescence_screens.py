"""Screenshots of HTML reports with headless Chromium (Debian's, never a downloaded one);
the browser set-up is browser_helpers'."""

from __future__ import annotations

from pathlib import Path

from browser_helpers import CHROMIUM, need_chromium
from browser_helpers import CHROMIUM_ARGS as ARGS


def screenshot(html: Path, png: Path) -> dict:
    """Open ``html`` offline, save a full-page PNG, return facts about the page.

    Returns
    -------
    dict
        ``text`` (visible text), ``images`` (list of (naturalWidth, naturalHeight, alt)).
    """
    need_chromium()  # skipped, or failed under CI=true, when missing
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
