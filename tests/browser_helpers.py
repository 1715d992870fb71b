"""Screenshots of HTML reports in real headless Chromium (Playwright), reusable by every area.

Use in a test module::

    from browser_helpers import chromium, screenshot  # noqa: F401  (pytest fixtures)

    def test_report(screenshot, tmp_path):
        shot = screenshot(tmp_path / "report.html")
        assert shot.page.locator("h1").count() == 1
        # shot.png is the full-page PNG

Chromium is Debian's ``/usr/bin/chromium`` (``$HEPANAV_CHROMIUM`` overrides); no browser
is ever downloaded. Without it the test is skipped with the reason, except under
``CI=true``, where a missing browser fails the test. Set ``HEPANAV_SCREENSHOTS=<dir>`` to
keep a copy of every screenshot there for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("HEPANAV_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# WebGL (NiiVue in the web application) in headless mode without a GPU: SwiftShader
# through ANGLE.
WEBGL_ARGS = [
    "--no-first-run",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def need_chromium() -> None:
    """Skip (fail under CI=true) when Debian's Chromium is missing."""
    if not Path(CHROMIUM).is_file():
        _unavailable(
            f"Chromium not found at {CHROMIUM} (apt install chromium, or set HEPANAV_CHROMIUM)"
        )


# One browser at a time per test process: Playwright's sync API can run only once per
# thread, so the browser lives for one test module (each module that imports the fixture
# defines its own) and stops at its end, leaving other modules free to start Playwright.
_SHARED: dict = {}


@pytest.fixture(scope="module")
def chromium(request):
    """A headless Chromium browser for one test module; skipped (failed under CI) when missing."""
    if "browser" in _SHARED:
        return _SHARED["browser"]
    need_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        _unavailable("the playwright Python package is not installed")
    manager = sync_playwright().start()
    try:
        browser = manager.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
    except Exception as exc:  # noqa: BLE001 - any launch failure means no browser here
        manager.stop()
        _unavailable(f"Chromium at {CHROMIUM} did not start: {str(exc).splitlines()[0]}")
    _SHARED["browser"] = browser

    def close() -> None:  # at the end of the module, by the fixture that started it
        _SHARED.pop("browser", None)
        browser.close()
        manager.stop()

    request.addfinalizer(close)
    return browser


@dataclass
class Shot:
    """A rendered page: the open Playwright ``page``, the PNG path, console errors."""

    page: object
    png: Path
    console_errors: list[str]


@pytest.fixture()
def screenshot(chromium, tmp_path):
    """``screenshot(html, png=None, width=1200) -> Shot``: render a local HTML file, save a PNG.

    The page is loaded from ``file://`` with every network request blocked (a report
    must be self-contained), then a full-page screenshot is written (default: beside
    the HTML with ``.png``). Pages close when the test ends.
    """
    pages = []
    keep = os.environ.get("HEPANAV_SCREENSHOTS")

    def shoot(
        html: Path,
        png: Path | None = None,
        *,
        width: int = 1200,
        height: int = 900,
        full_page: bool = True,
    ) -> Shot:
        html = Path(html).resolve()
        png = Path(png) if png else html.with_suffix(".png")
        context = chromium.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        pages.append(context)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        # no network at view time: anything not file:// or data: is refused
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(("file:", "data:"))
                else route.abort()
            ),
        )
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(png), full_page=full_page)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            test = os.environ.get("PYTEST_CURRENT_TEST", "test").split(" ")[0]
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", test.split("::")[-1])
            shutil.copy(png, Path(keep) / f"{name}_{html.parent.name}_{png.name}")
        return Shot(page, png, errors)

    yield shoot
    for context in pages:
        context.close()
