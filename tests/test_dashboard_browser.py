"""End to end in real headless Chromium (Debian's, driven by Playwright): `leukotrack dashboard` on the
analysed sample cases; every page opens, the slice moves, the index date changes, a click on a
session opens it in the viewer, and no exception element ever shows. Screenshots go to
``test-artifacts/dashboard/`` (or ``$LEUKOTRACK_ARTIFACTS/dashboard``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from tests.browser import (
    chromium_path,
    dashboard_server,
    exceptions,
    image_sources,
    images_ready,
    launch,
    open_page,
    use_static_viewer,
    viewer_frame,
    wait_for_app_run,
)

pytestmark = pytest.mark.slow

if chromium_path() is None:
    if os.environ.get("LEUKOTRACK_REQUIRE_CHROMIUM") == "1":
        raise RuntimeError("chromium is missing; .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

playwright_api = pytest.importorskip("playwright.sync_api")
CELLS = 5  # sample case: five session rows, each one image of DWI | ADC | FLAIR


@pytest.fixture(scope="module")
def shots(artifacts: Path) -> Path:
    folder = artifacts / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(analyzed_samples: Path, shots: Path) -> Iterator[str]:
    with dashboard_server(analyzed_samples, log=shots / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    tab = context.new_page()
    yield tab
    context.close()


def _listening(port: int) -> list[str]:
    return [
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]


def test_server_is_local_only_with_safe_settings(server):
    port = int(server.rsplit(":", 1)[1])
    assert _listening(port) == ["127.0.0.1"]
    streamlit = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"]
        and "dashboard/app.py" in " ".join(p.info["cmdline"])
        and f"--server.port={port}" in p.info["cmdline"]
    ]
    assert len(streamlit) == 1
    flags = set(streamlit[0].info["cmdline"])
    assert {
        "--server.address=127.0.0.1",
        "--server.enableXsrfProtection=true",
        "--browser.gatherUsageStats=false",
        "--client.showErrorDetails=none",
        "--server.maxUploadSize=25",
    } <= flags


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("?case=indexcase", "cohort"),
        ("cohort?case=indexcase", "cohort-by-url"),
        ("overview?case=indexcase", "overview"),
        ("viewer?case=indexcase", "viewer"),
        ("lesions?case=indexcase", "lesions"),
        ("csf?case=cnsmyeloma", "csf"),
        ("overview?case=cnsmyeloma", "overview-clinical-only"),
        ("run", "run"),
    ],
)
def test_every_page_opens_without_an_exception(server, page, shots, path, name):
    open_page(page, f"{server}/{path}")
    if name == "viewer":
        viewer_frame(page)
    if name == "cohort-by-url":
        assert page.get_by_text("Page not found", exact=False).count() == 0
        page.get_by_role("heading", name="Cohort").wait_for()
    if "overview" in name or name == "csf":
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    page.wait_for_timeout(300)
    page.screenshot(path=shots / f"{name}.png", full_page=True)
    assert exceptions(page) == []
    assert page.get_by_text("Research use only", exact=False).first.is_visible()


def _slice(page):
    return page.get_by_role("slider", name="slice")


def test_moving_the_slice_redraws_every_cell(server, page, shots):
    open_page(page, f"{server}/viewer?case=indexcase")
    use_static_viewer(page)
    images_ready(page, CELLS)
    before = image_sources(page)
    start = int(_slice(page).input_value())
    page.get_by_role("button", name="◀").click()
    wait_for_app_run(page)
    images_ready(page, CELLS)
    assert int(_slice(page).input_value()) == start - 1
    after = image_sources(page)
    assert len(after) == CELLS and all(a != b for a, b in zip(after, before, strict=True))
    page.get_by_text("coronal", exact=True).click()
    wait_for_app_run(page)
    images_ready(page, CELLS)
    assert _slice(page).get_attribute("max") == "256"
    page.screenshot(path=shots / "viewer-coronal.png", full_page=True)
    assert exceptions(page) == []


def _axis_title(page) -> str:
    return page.locator(".js-plotly-plot .g-x4title text").first.text_content() or ""


def test_changing_the_index_date_moves_the_axis(server, page, shots):
    open_page(page, f"{server}/overview?case=indexcase")
    page.wait_for_selector(".js-plotly-plot .main-svg")
    assert "first MRI (2023-03-14)" in _axis_title(page)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').nth(1).click()
    page.get_by_role("option", name="first dose (2023-01-13)").click()
    wait_for_app_run(page)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot text')]"
        ".some(t => t.textContent.includes('first dose (2023-01-13)'))",
        timeout=30_000,
    )
    page.screenshot(path=shots / "overview-first-dose.png", full_page=True)
    assert exceptions(page) == []


def test_clicking_a_session_opens_it_in_the_viewer(server, page, shots):
    open_page(page, f"{server}/overview?case=indexcase")
    page.wait_for_selector(".js-plotly-plot .main-svg")
    page.wait_for_timeout(500)
    # screen position of the third FLAIR lesion point (day 8) from Plotly's own axes
    point = page.evaluate(
        """() => {
            const gd = document.querySelector('.js-plotly-plot');
            const trace = gd._fullData.find(t => t.name === "FLAIR lesions (mL)");
            const xa = gd._fullLayout.xaxis3, ya = gd._fullLayout.yaxis3;
            const box = gd.getBoundingClientRect();
            const x = Array.from(trace.x)[2], y = Array.from(trace.y)[2];
            return {x: box.left + xa._offset + xa.l2p(x), y: box.top + ya._offset + ya.l2p(y),
                    session: trace.customdata[2][0]};
        }"""
    )
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url("**/viewer**", timeout=30_000)
    wait_for_app_run(page)
    frame = viewer_frame(page)
    rows = frame.eval_on_selector_all(".rowlabel", "els => els.map(e => e.innerText)")
    assert len(rows) == 2  # the opened session (day 8) and the one before it
    assert rows[1].startswith("[opened]") and point["session"] in rows[1]
    page.screenshot(path=shots / "viewer-opened-from-overview.png", full_page=True)
    assert exceptions(page) == []


def test_selecting_a_lesion_centres_the_viewer(server, page, shots):
    open_page(page, f"{server}/lesions?case=indexcase")
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    page.wait_for_timeout(500)
    box = grid.bounding_box()
    # the row-selection checkbox column of the first data row (header row is ~35 px high)
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 18)
    page.wait_for_url("**/viewer**", timeout=30_000)
    wait_for_app_run(page)
    frame = viewer_frame(page)
    rows = frame.eval_on_selector_all(".rowlabel", "els => els.map(e => e.innerText)")
    assert any(row.startswith("[opened]") for row in rows)
    page.screenshot(path=shots / "viewer-centred-on-lesion.png", full_page=True)
    assert exceptions(page) == []


def _crosshairs(frame) -> list[list[float]]:
    return frame.evaluate(
        "() => window.leukotrackViewer.viewers.map(nv => Array.from(nv.scene.crosshairPos))"
    )


def _canvas_box(frame, panel: str) -> dict:
    box = frame.locator(f'canvas[data-panel="{panel}"]').bounding_box()
    assert box is not None
    return box


def test_the_interactive_viewer_links_every_panel_in_the_browser(server, page, shots):
    """NiiVue panels: the wheel moves the slice of all 15 panels at once, a click moves every
    crosshair and reads the ADC out in um2/s, a right-drag changes one panel's window and "Match"
    gives it to its column, an ROI box gives a mean ADC; none of it asks the server (no message on
    Streamlit's websocket)."""
    page.set_viewport_size({"width": 1920, "height": 1200})
    sent: list[object] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    open_page(page, f"{server}/viewer?case=indexcase")
    frame = viewer_frame(page)
    assert frame.evaluate("window.leukotrackViewer.viewers.length") == 3 * CELLS
    letters = frame.evaluate("window.leukotrackViewer.viewers[0].opts.isOrientationTextVisible")
    assert letters is True
    # lesions in the report's colours: FLAIR orange, DWI cyan (and green where one resolved)
    colours = frame.evaluate(
        "() => window.leukotrackViewer.viewers.map((nv, i) => [window.leukotrackViewer.panels[i].id,"
        " nv.volumes.slice(1).map(v => v.colormap)])"
    )
    for panel, maps in colours:
        expected = "leukotrack_255_165_0" if panel.endswith("FLAIR") else "leukotrack_0_200_255"
        assert maps[0] == expected and set(maps[1:]) <= {"leukotrack_60_220_90"}
    sent.clear()
    start = _crosshairs(frame)
    adc = _canvas_box(frame, "ses-20230317:ADC")
    page.mouse.move(adc["x"] + adc["width"] / 2, adc["y"] + adc["height"] / 2)
    page.mouse.wheel(0, 300)
    frame.wait_for_function(
        "z => window.leukotrackViewer.viewers.every(nv => nv.scene.crosshairPos[2] !== z)",
        arg=start[0][2],
        timeout=10_000,
    )
    moved = _crosshairs(frame)
    assert len({round(p[2], 6) for p in moved}) == 1  # every panel on the same slice
    assert sent == []  # scrolling did not ask the server
    # a click: every crosshair to the same point, the readout in um2/s; the point goes to the page
    # once (for the correction tools), and nothing else does
    page.mouse.click(adc["x"] + adc["width"] * 0.42, adc["y"] + adc["height"] * 0.4)
    frame.wait_for_function(
        "() => document.getElementById('status').textContent.includes('um2/s')", timeout=10_000
    )
    frame.wait_for_function("() => window.leukotrackViewer.picked !== undefined")
    picked = frame.evaluate("window.leukotrackViewer.picked")
    assert picked["panel"] == "ses-20230317:ADC" and len(picked["mm"]) == 3
    wait_for_app_run(page)
    assert page.get_by_text("Point: x ").count() == 0  # shown for paint and grow only
    sent.clear()
    clicked = _crosshairs(frame)
    assert all(p == clicked[0] for p in clicked) and clicked[0][:2] != moved[0][:2]
    readout = frame.inner_text("#status")
    assert readout.startswith("ses-20230317 ADC: ") and " um2/s at x " in readout
    # window / level: right-drag on one FLAIR panel, then match its column
    flair = _canvas_box(frame, "ses-20230314:FLAIR")
    windows = (
        "() => window.leukotrackViewer.viewers.map(nv => [nv.volumes[0].cal_min, "
        "nv.volumes[0].cal_max])"
    )
    before = frame.evaluate(windows)
    page.mouse.move(flair["x"] + flair["width"] / 2, flair["y"] + flair["height"] / 2)
    page.mouse.down(button="right")
    page.mouse.move(
        flair["x"] + flair["width"] / 2 + 60, flair["y"] + flair["height"] / 2 + 40, steps=8
    )
    page.mouse.up(button="right")
    after = frame.evaluate(windows)
    panels = frame.evaluate("window.leukotrackViewer.panels.map(p => p.id)")
    first_flair = panels.index("ses-20230314:FLAIR")
    other_flair = panels.index("ses-20230826:FLAIR")
    assert after[first_flair] != before[first_flair]
    assert after[other_flair] == before[other_flair]
    frame.get_by_role("button", name="Match W/L").click()
    matched = frame.evaluate(windows)
    assert matched[other_flair] == matched[first_flair]
    # zoom: in Pan/zoom mode the wheel zooms the panel under it, and every panel follows
    zooms = "() => window.leukotrackViewer.viewers.map(nv => nv.scene.pan2Dxyzmm[3])"
    before_zoom = frame.evaluate(zooms)
    frame.get_by_role("button", name="Pan/zoom").click()
    page.mouse.move(adc["x"] + adc["width"] / 2, adc["y"] + adc["height"] / 2)
    page.mouse.wheel(0, -300)
    frame.wait_for_function(
        "z => window.leukotrackViewer.viewers.every(nv => nv.scene.pan2Dxyzmm[3] > z)",
        arg=max(before_zoom),
        timeout=10_000,
    )
    zoomed = frame.evaluate(zooms)
    assert len({round(z, 6) for z in zoomed}) == 1 and zoomed[0] > before_zoom[0]
    # an ROI box on the ADC panel: its mean, in um2/s, from the browser
    frame.get_by_role("button", name="ROI").click()
    page.mouse.move(adc["x"] + adc["width"] * 0.40, adc["y"] + adc["height"] * 0.35)
    page.mouse.down(button="right")
    page.mouse.move(adc["x"] + adc["width"] * 0.55, adc["y"] + adc["height"] * 0.5, steps=8)
    page.mouse.up(button="right")
    frame.wait_for_function("() => window.leukotrackViewer.lastRoi !== undefined", timeout=10_000)
    roi = frame.evaluate("window.leukotrackViewer.lastRoi")
    assert roi["panel"] == "ses-20230317:ADC" and roi["nvox"] > 10
    assert 100 < roi["mean"] < 3500  # brain ADC, um2/s
    assert "ROI: mean" in frame.inner_text("#status")
    page.screenshot(path=shots / "viewer-interactive.png", full_page=True)
    assert sent == []  # nothing above needed the server
    assert exceptions(page) == []


def test_prior_current_layout_shows_two_sessions_side_by_side(server, page, shots):
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_page(page, f"{server}/viewer?case=indexcase")
    page.get_by_text("Prior / current", exact=True).click()
    wait_for_app_run(page)
    frame = viewer_frame(page)
    assert frame.evaluate("window.leukotrackViewer.viewers.length") == 6
    heads = frame.eval_on_selector_all(".colhead", "els => els.map(e => e.innerText)")
    assert heads[0].startswith("prior: ") and heads[1].startswith("current: ")
    assert "last dose" in heads[1]  # the session's drug state beside its images
    page.screenshot(path=shots / "viewer-prior-current.png", full_page=True)
    assert exceptions(page) == []


def test_native_series_opens_in_the_browser(server, page, shots):
    open_page(page, f"{server}/viewer?case=indexcase")
    page.get_by_text("Native series", exact=True).click()
    wait_for_app_run(page)
    frame = viewer_frame(page)
    assert frame.evaluate("window.leukotrackViewer.viewers.length") == 1
    dims = frame.evaluate("Array.from(window.leukotrackViewer.viewers[0].volumes[0].dims)")
    assert dims[:4] == [3, 128, 128, 25]  # the first session's DWI trace as acquired (2 mm EPI)
    page.screenshot(path=shots / "viewer-native.png", full_page=True)
    assert exceptions(page) == []


@pytest.fixture(scope="module")
def own_data(analyzed_samples: Path, tmp_path_factory) -> Path:
    """A copy of the analysed samples and their store, for the tests that change them."""
    import shutil

    out = tmp_path_factory.mktemp("corrections") / "out"
    shutil.copytree(analyzed_samples, out)
    return out


@pytest.fixture(scope="module")
def own_server(own_data: Path, shots: Path) -> Iterator[str]:
    with dashboard_server(own_data, log=shots / "server-corrections.log") as url:
        yield url


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label`` by typing, as a reader would."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    wait_for_app_run(page)


def test_a_false_lesion_is_erased_in_the_browser_and_the_erasure_undone(
    own_server, own_data, page, shots
):
    """A reader clicks a panel, names the false lesion, says why and applies: the page reports the
    re-measured volume within seconds, sessions.tsv is corrected and marked; undo restores the
    automatic result byte for byte."""
    import csv

    folder = own_data / "sub-indexcase"
    before = (folder / "sessions.tsv").read_bytes()
    session = "ses-20230322"
    with (folder / "lesions.tsv").open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    false = next(
        r
        for r in rows
        if r["session_id"] == session and r["source"] == "dwi" and r["change"] == "new"
    )
    page.set_viewport_size({"width": 1920, "height": 1200})
    open_page(page, f"{own_server}/viewer?case=indexcase")
    frame = viewer_frame(page)
    dwi = _canvas_box(frame, f"{session}:DWI")
    page.mouse.click(dwi["x"] + dwi["width"] / 2, dwi["y"] + dwi["height"] / 2)
    frame.wait_for_function("() => window.leukotrackViewer.picked !== undefined")
    wait_for_app_run(page)
    # the click chose the session and the DWI lesions; the reader names the lesion
    assert page.get_by_role("combobox", name="Session", exact=True).input_value() == session
    _choose(page, "Lesion to erase", false["lesion_id"])
    page.get_by_label("Reason (kept in the audit trail)").fill("susceptibility artefact")
    page.get_by_label("Reason (kept in the audit trail)").press("Enter")
    wait_for_app_run(page)
    overlays = "() => window.leukotrackViewer.panels.map(p => p.overlays.map(o => o.url).join(' '))"
    before_overlays = frame.evaluate(overlays)
    images = "() => window.leukotrackViewer.viewers.map(nv => nv.volumes[0].name)"
    before_images = frame.evaluate(images)
    page.get_by_role("button", name="Apply correction").click()
    page.get_by_text("re-measured and re-tracked").wait_for(timeout=60_000)
    wait_for_app_run(page, 120_000)
    # the viewer shows the corrected outlines in place: the same panels and images, new overlays
    # from the edited session on, nothing rebuilt
    frame.wait_for_function("() => Number(document.body.dataset.refreshes || 0) >= 1")
    after_overlays = frame.evaluate(overlays)
    panels = frame.evaluate("window.leukotrackViewer.panels.map(p => p.id)")
    changed = {
        panel for panel, a, b in zip(panels, before_overlays, after_overlays, strict=True) if a != b
    }
    assert f"{session}:DWI" in changed and "ses-20230314:DWI" not in changed
    assert frame.evaluate(images) == before_images
    assert frame.evaluate("document.body.dataset.ready") == "1"
    with (folder / "sessions.tsv").open() as handle:
        corrected = {r["session_id"]: r for r in csv.DictReader(handle, delimiter="\t")}
    assert corrected[session]["corrected"] == "dwi"
    assert page.get_by_text("Correct lesions (1 correction active)").count() == 1
    page.screenshot(path=shots / "viewer-correction.png", full_page=True)
    # the screenshot shows the lesions in their colours: orange FLAIR and cyan DWI outlines
    pixels = np.asarray(Image.open(shots / "viewer-correction.png").convert("RGB")).reshape(-1, 3)
    for rgb in ((255, 165, 0), (0, 200, 255)):
        assert (np.abs(pixels.astype(int) - rgb).sum(axis=1) < 60).sum() > 20, rgb
    page.get_by_role("button", name="Undo last correction").click()
    page.get_by_text("undone; 0 correction(s) left").wait_for(timeout=60_000)
    wait_for_app_run(page, 120_000)
    assert (folder / "sessions.tsv").read_bytes() == before
    assert exceptions(page) == []


def test_four_sessions_by_three_sequences_fit_a_1920_by_1080_screen(server, page, shots):
    """The Figure-1 grid (4 sessions x DWI/ADC/FLAIR, NiiVue panels) fits a 1920x1080 screen whole:
    scrolled to it, every panel lies inside the window."""
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_page(page, f"{server}/viewer?case=indexcase")
    page.get_by_role("combobox", name="Sessions (rows)").focus()
    page.keyboard.press("Backspace")  # the last session out: four rows left
    page.keyboard.press("Escape")
    wait_for_app_run(page)
    frame = viewer_frame(page)
    assert frame.evaluate("window.leukotrackViewer.viewers.length") == 12
    iframe = page.locator('iframe[title*="leukotrack_viewer"]')
    iframe.scroll_into_view_if_needed()
    page.evaluate("el => el.scrollIntoView({block: 'start'})", iframe.element_handle())
    box = iframe.bounding_box()
    assert box is not None and box["height"] <= 1080 and box["x"] + box["width"] <= 1920
    for canvas in frame.locator("canvas").all():
        inside = canvas.bounding_box()
        assert inside is not None
        assert inside["y"] >= 0 and inside["y"] + inside["height"] <= 1080
        assert inside["x"] + inside["width"] <= 1920
    page.screenshot(path=shots / "viewer-4x3-1920x1080.png")
    assert exceptions(page) == []
