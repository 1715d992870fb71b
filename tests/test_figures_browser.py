"""The toolkit's HTML parts in real headless Chromium (screenshots, offline rendering)."""

from __future__ import annotations

import numpy as np
from skimage.measure import marching_cubes

from browser_helpers import chromium, screenshot  # noqa: F401  (pytest fixtures)
from hepanav.imaging.figures.surface3d import SurfaceLayer, interactive_html


def test_interactive_3d_view_draws_offline(screenshot, tmp_path):
    zz, yy, xx = np.mgrid[-20:21, -20:21, -20:21]
    verts, faces, _, _ = marching_cubes((xx**2 + yy**2 + zz**2).astype(float), 12.0**2)
    margin = verts[:, 0] - 20.0  # from -8 to +4 mm: two bands
    fragment = interactive_html(
        [
            SurfaceLayer("tumour", verts, faces, margin),
            SurfaceLayer("zone", (verts - 20) * 1.4 + 20, faces, colour="#009E73", opacity=0.25),
        ],
        markers=[(verts[np.argmin(margin)], "#F0E442", "MAM point")],
        element_id="v3d",
        width=400,
        height=300,
    )
    html = tmp_path / "view.html"
    html.write_text(f"<!doctype html><html><body>{fragment}</body></html>", encoding="utf-8")
    shot = screenshot(html, width=500, height=450)
    assert shot.console_errors == []
    assert shot.page.locator("#v3d").get_attribute("data-drawn") == "1"
    # the canvas is not blank: some pixels differ from the background
    distinct = shot.page.evaluate(
        """() => { const c = document.querySelector('#v3d canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 0; i < d.length; i += 4)
                     if (d[i] > 40 || d[i + 1] > 40 || d[i + 2] > 40) n++;
                   return n; }"""
    )
    assert distinct > 2000
    # dragging turns the view: the picture changes
    before = shot.page.locator("#v3d canvas").screenshot()
    box = shot.page.locator("#v3d canvas").bounding_box()
    shot.page.mouse.move(box["x"] + 100, box["y"] + 100)
    shot.page.mouse.down()
    shot.page.mouse.move(box["x"] + 200, box["y"] + 130)
    shot.page.mouse.up()
    assert shot.page.locator("#v3d canvas").screenshot() != before
    assert shot.png.stat().st_size > 1000
