"""End to end in real headless Chromium (Debian's, driven by Playwright): `leukotrack dashboard` on the
analysed sample cases; every page opens, the slice moves, the index date changes, a click on a
session opens it in the viewer, and no exception element ever shows. Screenshots go to
``test-artifacts/dashboard/`` (or ``$LEUKOTRACK_ARTIFACTS/dashboard``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.browser import (
    chromium_path,
    dashboard_server,
    exceptions,
    image_sources,
    images_ready,
    launch,
    open_page,
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
        images_ready(page, CELLS)
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
    images_ready(page, 2)  # the opened session (day 8) and the one before it
    assert page.get_by_text("opened", exact=True).is_visible()
    label = page.get_by_text(point["session"], exact=True).first
    assert label.is_visible()
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
    images_ready(page, 1)
    assert page.get_by_text("opened", exact=True).is_visible()
    page.screenshot(path=shots / "viewer-centred-on-lesion.png", full_page=True)
    assert exceptions(page) == []
