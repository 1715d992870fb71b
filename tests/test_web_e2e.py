"""End to end in Debian's Chromium against a real server (subprocess, LocalCluster):
log in, open the demo case, pick seeds in the viewer, run the margin job, watch the
progress, read the MAM, sign off; the therapy form; a server restart during a job.

Screenshots of every page are saved (``$HEPANAV_SCREENSHOTS`` or the test's temp folder)
and checked for their key elements.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from web_helpers import PASSWORD, login, new_server, registry_with_ablation

pytestmark = pytest.mark.slow
CASE = "demo-ablation-001"
MASKS = {
    "tumor_mask": "pre_tumor.nii.gz",
    "ablation_mask": "post_ablation.nii.gz",
    "liver_pre": "pre_liver.nii.gz",
    "liver_post": "post_liver.nii.gz",
}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    root = os.environ.get("HEPANAV_SCREENSHOTS")
    folder = Path(root) if root else tmp_path_factory.mktemp("screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _page(browser, **kwargs):
    page = browser.new_page(**kwargs)
    page.set_default_timeout(120_000)  # software WebGL on 2 busy cores
    return page


def wait_for_job(page, timeout_s: float = 600) -> str:
    """Wait on the job page until the server-sent events report the end (page reloads)."""
    page.wait_for_function(
        "['done','failed'].includes(document.getElementById('job-status').dataset.state)",
        timeout=timeout_s * 1000,
    )
    return page.get_attribute("#job-status", "data-state")


def test_margin_workflow_in_the_browser(web_server, browser, shots):
    page = _page(browser, viewport={"width": 1300, "height": 1000})
    login(page, web_server, "radiologist")
    assert page.locator(f"a[href='/cases/{CASE}']").count() == 1
    page.screenshot(path=shots / "worklist.png", full_page=True)

    page.click(f"a[href='/cases/{CASE}']")
    assert "pre_ct.nii.gz" in page.content() and "post_ct.nii.gz" in page.content()
    page.screenshot(path=shots / "case.png", full_page=True)

    page.click("text=Ablation margin")
    page.wait_for_function("window.hepanav !== undefined", timeout=120_000)
    # The tumour centre from the phantom's truth, in LPS mm: navigate there, then "click" it.
    truth = json.loads((web_server.data_dir / "cases" / CASE / "truth.json").read_text())
    centre = truth_centre(truth)
    page.evaluate(f"window.hepanav.moveTo({json.dumps(centre)})")
    page.click("#set-tumor")
    seed = [float(v) for v in page.input_value("#tumor_seed").split(",")]
    assert max(abs(a - b) for a, b in zip(seed, centre, strict=True)) < 1.6  # one voxel
    # The linked cursor: the post viewer shows the same patient position.
    post = page.evaluate("window.hepanav.b.frac2mm(window.hepanav.b.scene.crosshairPos)")
    assert max(abs(-post[0] - centre[0]), abs(-post[1] - centre[1]), abs(post[2] - centre[2])) < 1.6
    page.screenshot(path=shots / "margin-seeds.png", full_page=True)

    # The zone: navigate to its centre in the post CT and click it too.
    page.evaluate(f"window.hepanav.moveTo({json.dumps(truth['zone_center_post_lps'])})")
    page.click("#set-zone")
    assert page.input_value("#ablation_seed")
    # Segment from the two clicks and inspect the masks over the images.
    page.click("#preview")
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    page.screenshot(path=shots / "segment-progress.png", full_page=True)
    assert wait_for_job(page) == "done", page.text_content("#job-status")
    page.wait_for_function("window.hepanav !== undefined", timeout=120_000)
    assert_scale_bars(page, "[window.hepanav.a, window.hepanav.b]", 2)
    page.screenshot(path=shots / "segment-inspect.png", full_page=True)
    # Accept the masks; liver masks help the registration.
    page.select_option("select[name=liver_pre]", "pre_liver.nii.gz")
    page.select_option("select[name=liver_post]", "post_liver.nii.gz")
    page.click("#run-margin")
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    state = page.text_content("#state")
    assert state in ("queued", "running", "done")
    page.screenshot(path=shots / "job-progress.png", full_page=True)
    assert wait_for_job(page) == "done", page.text_content("#job-status")

    job_id = int(page.url.rsplit("/", 1)[1])
    result = json.loads(
        next(
            (web_server.data_dir / "jobs").glob(f"job-{job_id:06d}/result/margin/margin.json")
        ).read_text()
    )
    # The verdict as the terminal says it: from two clicks the masks are automatic, so
    # there is no interval and the MAM is NOT decisive, here and beside the sign-off.
    u = result["uncertainty"]
    assert u["min_margin_interval_mm"] is None and not u["decisive"], u
    assert page.text_content("#mam") == (
        f"{result['min_margin_mm']:.1f} mm (no interval: automatic masks)"
    )
    assert (
        page.text_content("#decisive")
        == f"NOT decisive: no interval: {u['interval_withheld_reason']}"
    )
    assert "NOT decisive: no interval" in page.text_content("#signoff-verdict")
    # From two clicks, the MAM is close to the phantom's analytic truth.
    assert abs(result["min_margin_mm"] - truth["min_margin_mm"]) < 1.5, (result, truth)
    assert (page.locator("#residual").count() == 1) == (result["min_margin_mm"] < 0)
    page.wait_for_function("window.hepanav !== undefined", timeout=120_000)
    # The cursor starts at the MAM point (LPS mm, within a voxel of the post CT).
    cursor = page.evaluate("window.hepanav.cursor()")
    mam = result["mam_point_lps_mm"]
    assert max(abs(a - b) for a, b in zip(cursor, mam, strict=True)) < 1.6, (cursor, mam)
    assert_scale_bars(page, "[window.hepanav.nv]", 1)
    # The margin-coloured tumour surface and the zone in the 3D view.
    page.wait_for_function("window.hepanavSurface !== undefined", timeout=120_000)
    meshes = page.evaluate(
        "window.hepanavSurface.meshes.map(m => [m.name, m.layers.length,"
        " m.pts.length / 3, m.opacity])"
    )
    assert [m[0] for m in meshes] == ["tumour.surf.gii", "ablation_zone.surf.gii"]
    assert meshes[0][1] == 1 and meshes[0][2] > 100  # the margin layer on the tumour
    assert meshes[1][3] < 0.5  # the zone is translucent
    page.locator("#surface-figure").scroll_into_view_if_needed()
    page.screenshot(path=shots / "job-result.png", full_page=True)
    page.locator("#gl-surface").screenshot(path=shots / "job-result-surface3d.png")

    # Back on the case's margin page (another tab), the cursor starts at this MAM point.
    other_tab = page.context.browser.new_context(storage_state=page.context.storage_state())
    margin_page = other_tab.new_page()
    margin_page.set_default_timeout(120_000)
    margin_page.goto(f"{web_server.url}/cases/{CASE}/margin")
    margin_page.wait_for_function("window.hepanav !== undefined", timeout=120_000)
    cursor = margin_page.evaluate("window.hepanav.cursor()")
    assert max(abs(a - b) for a, b in zip(cursor, mam, strict=True)) < 1.6, (cursor, mam)
    assert margin_page.text_content("#cursor") == ",".join(f"{v:.1f}" for v in cursor)
    # Each slice view: orientation letters on all four sides (screenshot above).
    opts = margin_page.evaluate(
        "[window.hepanav.a.opts.showAllOrientationMarkers,"
        " window.hepanav.b.opts.showAllOrientationMarkers]"
    )
    assert opts == [True, True]
    margin_page.screenshot(path=shots / "margin-page-at-mam.png", full_page=True)
    other_tab.close()

    # Signing off without choosing where to store is refused with one message, no traceback.
    page.click("#signoff")
    assert "choose PACS and/or the registry" in page.text_content("#error-message")
    assert "Traceback" not in page.content()
    page.close()


SCALE_BAR_JS = """(() => { const out = {};
  for (const [key, nv] of [["pre", window.hepanav.a], ["post", window.hepanav.b]]) {
    nv.drawScene();
    out[key] = { isRuler: nv.opts.isRuler, letters: nv.opts.isOrientationTextVisible
                   && nv.opts.showAllOrientationMarkers,
                 tiles: nv.screenSlices.filter(t => t.axCorSag <= 2)
                          .map(t => [t.axCorSag, t.leftTopWidthHeight[2], t.fovMM[0]]),
                 bars: nv.hepanavScaleBars.map(b => Object.assign({}, b,
                   { startMM: nv.screenXY2mm(b.start[0], b.start[1]).slice(0, 3),
                     endMM: nv.screenXY2mm(b.end[0], b.end[1]).slice(0, 3) })) };
  }
  return out; })()"""


def white_run(png: Path, bar: dict) -> float:
    """Fraction of the bar's pixel row (between its ends) drawn white in the screenshot."""
    from PIL import Image

    rgb = Image.open(png).convert("RGB")
    y = round(bar["start"][1])
    xs = range(int(bar["start"][0]) + 2, int(bar["end"][0]) - 1)
    return sum(min(rgb.getpixel((x, y))) >= 200 for x in xs) / len(xs)


def test_slice_views_have_a_scale_bar_in_mm(web_server, browser, shots):
    """Every slice tile of both margin viewers shows a scale bar labelled in mm, of the
    length it says: at zoom 1 the axial tile spans the CT's width (240 voxels x 1.5 mm =
    360 mm, read from the file), at zoom 3 three times as many pixels per mm."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(web_server.data_dir / "cases" / CASE / "pre_ct.nii.gz"))
    width_mm = image.GetSize()[0] * image.GetSpacing()[0]
    page = _page(browser, viewport={"width": 1300, "height": 1000})
    login(page, web_server, "radiologist")
    page.goto(f"{web_server.url}/cases/{CASE}/margin")
    page.wait_for_function("window.hepanav !== undefined", timeout=120_000)
    for zoom in (1, 3):
        page.evaluate(
            f"for (const nv of [window.hepanav.a, window.hepanav.b])"
            f" nv.scene.pan2Dxyzmm[3] = {zoom}"
        )
        views = page.evaluate(SCALE_BAR_JS)
        for key, view in views.items():
            assert view["isRuler"] is True and view["letters"] is True, key
            tiles = {t[0]: t for t in view["tiles"]}
            assert sorted(tiles) == [0, 1, 2], view["tiles"]  # axial, coronal, sagittal
            assert abs(abs(tiles[0][2]) - width_mm / zoom) < 1e-3, (tiles[0], width_mm, zoom)
            px_per_mm = zoom * abs(tiles[0][1]) / width_mm
            bars = view["bars"]
            assert sorted(b["axCorSag"] for b in bars) == [0, 1, 2], bars
            for bar in bars:
                mm = bar["mm"]
                assert bar["label"] == f"{mm} mm"
                length_px = bar["end"][0] - bar["start"][0]
                assert abs(length_px - mm * px_per_mm) < 0.01, (bar, px_per_mm)
                # NiiVue's own screen-to-patient mapping (what a click uses) agrees
                shown = (
                    sum((e - s) ** 2 for s, e in zip(bar["startMM"], bar["endMM"], strict=True))
                    ** 0.5
                )
                assert abs(shown - mm) < 1 / px_per_mm, (bar, shown)
            png = shots / f"margin-scale-bar-{key}-zoom{zoom}.png"
            page.locator(f"#gl-{key}").screenshot(path=png)
            for bar in bars:
                assert white_run(png, bar) > 0.9, (png, bar)
        if zoom == 1:
            first = views["pre"]["bars"][0]["mm"]
    # zooming in shortens the bar in mm (it still fits its tile) and keeps it true
    assert views["pre"]["bars"][0]["mm"] < first
    page.screenshot(path=shots / "margin-scale-bar.png", full_page=True)
    page.close()


def assert_scale_bars(page, viewers_js: str, count: int) -> None:
    """Each NiiVue viewer in ``viewers_js`` (a JS array) has the scale bar on, one bar per
    slice tile (axial, coronal, sagittal) labelled in mm, and its orientation letters on."""
    views = page.evaluate(
        f"{viewers_js}.map(nv => {{ nv.drawScene(); return [nv.opts.isRuler,"
        " nv.opts.showAllOrientationMarkers,"
        " nv.hepanavScaleBars.map(b => [b.axCorSag, b.label, b.mm])]; })"
    )
    assert len(views) == count
    for is_ruler, letters, bars in views:
        assert is_ruler is True and letters is True
        assert sorted(b[0] for b in bars) == [0, 1, 2], bars
        assert all(label == f"{mm} mm" for _, label, mm in bars), bars


def truth_centre(truth: dict) -> list[float]:
    """The tumour centre in the pre CT (LPS mm) from the phantom's truth.json."""
    return [float(v) for v in truth["tumor_center_pre_lps"]]


def test_therapy_form_and_escaping(web_server, browser, shots):
    page = _page(browser, viewport={"width": 1200, "height": 900})
    login(page, web_server, "surgeon")
    page.goto(web_server.url + "/therapy")
    attack = "case_id: '<img src=x onerror=window.__xss=1>'\n"
    page.fill("#case_text", attack)
    page.click("#evaluate")
    # Shown as text, never as markup: no <img> element was created, the flag stays unset.
    assert page.evaluate("window.__xss === undefined")
    assert page.locator("main img[src=x]").count() == 0
    assert page.locator("#therapy-error, #verdicts").count() >= 1
    page.screenshot(path=shots / "therapy.png", full_page=True)
    page.close()


def test_dose_check_in_the_browser(web_server, browser, shots):
    page = _page(browser, viewport={"width": 1200, "height": 900})
    login(page, web_server, "radiologist")
    page.goto(web_server.url + "/therapy")
    page.click("#dose-link")
    page.select_option("#regimen", "ctace-doxorubicin")
    page.fill("#dose", "80")
    page.select_option("#unit", "mg/m2")
    page.select_option("#per", "session")
    page.click("#check-dose")
    # 80 mg/m2 against the protocol's 25-75 mg/m2 per session: above, with its source.
    assert page.text_content("#dose-verdict").strip().startswith("ABOVE")
    assert "Llovet" in page.text_content("#dose-source")
    assert "25-75 mg/m2 per session" in page.text_content("#dose-result")
    page.screenshot(path=shots / "dose-check.png", full_page=True)
    # Typed text comes back as text, never as markup.
    page.select_option("#regimen", "")
    page.fill("#drug", "<img src=x onerror=window.__xss=1>")
    page.click("#check-dose")
    assert page.locator("#dose-error").count() == 1
    assert page.evaluate("window.__xss === undefined")
    assert page.locator("main img[src=x]").count() == 0
    assert page.input_value("#drug") == "<img src=x onerror=window.__xss=1>"
    page.screenshot(path=shots / "dose-check-refused.png", full_page=True)
    page.close()


def test_restart_during_a_job_runs_it_once(tmp_path, phantom_case, browser):
    server = new_server(tmp_path, phantom_case)
    server.start()
    try:
        with httpx.Client(base_url=server.url, follow_redirects=False) as client:
            r = client.post("/login", data={"username": "test-radiologist", "password": PASSWORD})
            assert r.status_code == 303
            page = client.get("/therapy", headers={"accept": "text/html"}).text
            token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)
            form = {"csrf_token": token, "pre": "pre_ct.nii.gz", "post": "post_ct.nii.gz", **MASKS}
            r = client.post(f"/cases/{CASE}/margin", data=form)
            assert r.status_code == 303
            job_id = int(r.headers["location"].rsplit("/", 1)[1])
            deadline = time.monotonic() + 120
            while client.get(f"/api/jobs/{job_id}").json()["state"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.5)
        server.kill()  # a crash: no shutdown handlers run
        server.start()
        with httpx.Client(base_url=server.url, follow_redirects=False) as client:
            client.post("/login", data={"username": "test-radiologist", "password": PASSWORD})
            deadline = time.monotonic() + 900
            while (status := client.get(f"/api/jobs/{job_id}").json())["state"] not in (
                "done",
                "failed",
            ):
                assert time.monotonic() < deadline
                time.sleep(1)
        assert status["state"] == "done", status
        job_dir = server.data_dir / "jobs" / f"job-{job_id:06d}"
        assert len(list(job_dir.glob("result/margin/margin.json"))) == 1
        assert not list(job_dir.glob(".work-*"))
    finally:
        server.stop()


def _recording(folder: Path) -> tuple[Path, Path]:
    """A short 8-bit NIR video and a 12-bit NIR frame folder from the fluorescence phantom."""
    import cv2

    from hepanav.fluorescence.demo import demo_lesions
    from hepanav.phantoms.fluorescence import Camera, render_sequence, save_frames

    camera = Camera(width=320, height=240, mm_per_px=0.3)
    frames = list(render_sequence(demo_lesions(), camera, n_frames=12, seed=3))
    nir_dir, _ = save_frames(frames, folder / "frames")
    video = folder / "nir.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (320, 240), False)
    for frame in frames:
        scale = 255.0 / (2**camera.bit_depth - 1)
        writer.write((frame.nir.astype(float) * scale).clip(0, 255).astype("uint8"))
    writer.release()
    return video, nir_dir


def test_fluorescence_upload_and_live_page(tmp_path, phantom_case, browser, shots):
    video, nir_dir = _recording(tmp_path)
    server = new_server(tmp_path / "srv", phantom_case)
    os.environ["HEPANAV_WEB_LIVE_SOURCE"] = str(nir_dir)
    try:
        server.start()
    finally:
        del os.environ["HEPANAV_WEB_LIVE_SOURCE"]
    try:
        page = _page(browser, viewport={"width": 1200, "height": 900})
        login(page, server, "surgeon")
        page.goto(server.url + "/fluoro")
        page.set_input_files("input[name=nir]", str(video))
        page.click("#analyse")
        page.wait_for_url(re.compile(r".*/jobs/\d+$"))
        assert wait_for_job(page) == "done", page.text_content("#job-status")
        page.screenshot(path=shots / "fluoro-job.png", full_page=True)
        with page.expect_popup() as popup:
            page.click("text=Open the report")
        report = popup.value
        report.wait_for_load_state()
        assert "not a medical device" in report.content().lower()
        report.screenshot(path=shots / "fluoro-report.png", full_page=True)

        page.goto(server.url + "/fluoro/live")
        page.wait_for_function("document.getElementById('live').naturalWidth > 0", timeout=60_000)
        assert page.evaluate("document.getElementById('live').naturalWidth") == 320
        page.screenshot(path=shots / "fluoro-live.png", full_page=True)
        # Every MJPEG part carries the frame's added latency.
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        with httpx.stream(
            "GET", server.url + "/fluoro/live/stream", cookies=cookies, timeout=30
        ) as r:
            assert r.headers["content-type"].startswith("multipart/x-mixed-replace")
            head = b""
            for chunk in r.iter_bytes():
                head += chunk
                if b"X-Latency-Ms" in head:
                    break
        assert re.search(rb"X-Latency-Ms: \d+\.\d+", head)
        page.close()
    finally:
        server.stop()


def test_jobs_run_on_an_external_dask_scheduler(tmp_path, phantom_case):
    """``--scheduler tcp://...``: a hospital adds workers; the job runs on them."""
    from distributed import Client, LocalCluster, get_task_stream

    video, _ = _recording(tmp_path)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        server = new_server(tmp_path / "srv", phantom_case)
        os.environ["HEPANAV_WEB_SCHEDULER"] = cluster.scheduler_address
        try:
            server.start()
        finally:
            del os.environ["HEPANAV_WEB_SCHEDULER"]
        try:
            with (
                get_task_stream(client) as stream,
                httpx.Client(base_url=server.url, follow_redirects=False, timeout=60) as http,
            ):
                http.post("/login", data={"username": "test-surgeon", "password": PASSWORD})
                page = http.get("/therapy", headers={"accept": "text/html"}).text
                token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)
                with open(video, "rb") as handle:
                    r = http.post(
                        "/fluoro",
                        data={"csrf_token": token, "bit_depth": "8"},
                        files={"nir": ("nir.avi", handle)},
                    )
                assert r.status_code == 303, r.text
                job_id = int(r.headers["location"].rsplit("/", 1)[1])
                deadline = time.monotonic() + 300
                while (state := http.get(f"/api/jobs/{job_id}").json()["state"]) not in (
                    "done",
                    "failed",
                ):
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
            assert state == "done"
            keys = {str(task["key"]) for task in stream.data}
            assert f"hepanav-job-{job_id}-1" in keys
        finally:
            server.stop()


def test_registry_dashboard_and_record_correction(tmp_path, phantom_case, browser, shots):
    server = new_server(tmp_path / "srv", phantom_case)
    lesion = registry_with_ablation(
        f"sqlite:///{server.data_dir / 'registry.sqlite'}", tmp_path / "cohort"
    )
    server.start()
    try:
        page = _page(browser, viewport={"width": 1200, "height": 1000})
        login(page, server, "coordinator")
        page.goto(server.url + "/registry?procedure_type=ablation")
        rows = page.locator("#by-procedure tr")
        assert rows.count() == 2  # header + ablation only: never pooled with resections
        assert "ablation" in rows.nth(1).text_content()
        page.screenshot(path=shots / "registry.png", full_page=True)
        key = f"{lesion['patient_id']}/{lesion['lesion_id']}"
        page.fill("#lookup input[name=key]", key)
        page.click("#lookup button")
        assert key in page.text_content("h1")
        page.select_option("#field", "size_mm")
        page.fill("#value", "23")
        page.fill("#reason", "size re-measured on CT <img src=x onerror=window.__xss=1>")
        page.click("#correct button")
        page.wait_for_function(
            "document.querySelectorAll('#history tr').length > 1 &&"
            " document.getElementById('history').textContent.includes('re-measured')",
            timeout=30_000,
        )
        history = page.text_content("#history")
        # The reason is shown as text: no element was injected, the flag stays unset.
        assert page.evaluate("window.__xss === undefined")
        assert page.locator("#history img").count() == 0
        assert "test-coordinator" in history and "size_mm" in history and "23" in history
        page.screenshot(path=shots / "registry-record.png", full_page=True)
        # A surgeon may read the record but not change it.
        with httpx.Client(base_url=server.url, follow_redirects=False, timeout=60) as http:
            http.post("/login", data={"username": "test-surgeon", "password": PASSWORD})
            csrf = re.search(
                r'name="csrf-token" content="([0-9a-f]+)"',
                http.get("/therapy", headers={"accept": "text/html"}).text,
            ).group(1)
            r = http.patch(
                "/api/registry/records/lesions",
                headers={"X-CSRF-Token": csrf},
                json={
                    "key": {"patient_id": lesion["patient_id"], "lesion_id": lesion["lesion_id"]},
                    "changes": {"size_mm": 99},
                    "reason": "x",
                },
            )
            assert r.status_code == 403
        page.close()
    finally:
        server.stop()


def test_planning_workflow_in_the_browser(web_server, browser, shots):
    page = _page(browser, viewport={"width": 1300, "height": 1000})
    login(page, web_server, "radiologist")
    page.goto(f"{web_server.url}/cases/{CASE}/plan")
    page.select_option("#ct", "pre_ct.nii.gz")
    page.select_option("#tumor", "pre_tumor.nii.gz")
    page.select_option("#labels", "pre_labels.nii.gz")
    page.fill("#margin_mm", "5")
    page.screenshot(path=shots / "plan-form.png", full_page=True)
    page.click("#run")
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    assert wait_for_job(page) == "done", page.text_content("#job-status")
    job_id = int(page.url.rsplit("/", 1)[1])
    plan = json.loads(
        next(
            (web_server.data_dir / "jobs").glob(f"job-{job_id:06d}/result/plan/plan.json")
        ).read_text()
    )
    verdict = page.text_content("#plan-verdict")
    if plan["feasible"]:
        assert verdict.startswith("Feasible")
        assert page.locator("#needles tr").count() == 1 + len(plan["needles"])
        page.wait_for_function("window.hepanav !== undefined", timeout=120_000)
        # a 3D perspective view: no scale bar (no single mm per pixel), the orientation cube
        assert page.evaluate("window.hepanav.nv.opts.isOrientCube") is True
        # The Slicer markups link names the file `hepanav plan` writes (was plan.mrk.json).
        link = page.locator("a[href$='/trajectories.mrk.json']")
        assert link.count() == 1
        markups = page.request.get(web_server.url + link.get_attribute("href"))
        assert markups.ok and '"coordinateSystem": "LPS"' in markups.text()
    else:
        # An infeasible plan is never shown as placeable trajectories, nor exported for
        # navigation: no markups, no placement check, no needles from the API (tester4).
        assert verdict.startswith("NOT feasible")
        assert page.locator("#needles").count() == 0
        assert page.locator("#not-placeable").count() == 1
        assert page.locator("a[href$='.mrk.json']").count() == 0
        assert page.locator("#placement").count() == 0
        api = page.request.get(f"{web_server.url}/api/jobs/{job_id}/needles").json()
        assert plan["needles"] and api["nodes"]["names"] == []
    page.screenshot(path=shots / "plan-result.png", full_page=True)
    with page.expect_popup() as popup:
        page.click("text=Open the plan report")
    report = popup.value
    report.wait_for_load_state()
    assert "not a medical device" in report.content().lower()
    report.screenshot(path=shots / "plan-report.png", full_page=True)
    page.close()
