"""Drive the dashboard in real headless Chromium (Debian's /usr/bin/chromium) with Playwright.

Shared by the end-to-end tests and benchmarks/bench_dashboard.py. The server is started the way a
user starts it (`leukotrack dashboard`), on a free port; the waits follow Streamlit's own e2e suite
(app container present, connected, script not running, no skeletons).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Frame, Page, Playwright

CHROMIUM = os.environ.get("LEUKOTRACK_CHROMIUM", "/usr/bin/chromium")
#: Flags for Chromium on a closed network as root (see ../.library/env: no sandbox as root, no
#: background connections, which this machine refuses).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
APP = '[data-testid="stApp"]'


def chromium_path() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    return CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def dashboard_server(data: Path, port: int | None = None, log: Path | None = None) -> Iterator[str]:
    """`leukotrack dashboard --data DATA` on a free port; yields its URL once /_stcore/health is ok."""
    port = port or free_port()
    command = [sys.executable, "-m", "followup.cli", "dashboard", "--data", str(data)]
    command += ["--port", str(port), "--no-open"]
    sink = log.open("w") if log else subprocess.DEVNULL
    process = subprocess.Popen(
        command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the dashboard did not start (exit {process.poll()}); see {log}"
                )
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
        if log:
            sink.close()  # type: ignore[union-attr]


def launch(playwright: Playwright) -> Browser:
    """Headless Debian Chromium."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def wait_for_app_run(page: Page, timeout_ms: float = 30_000) -> None:
    """Until the script (and any fragment) has finished its run and nothing is left to load."""
    page.wait_for_timeout(250)  # widget debounce; a rerun may not have started yet
    page.wait_for_selector(f"{APP}[data-test-connection-state='CONNECTED']", timeout=timeout_ms)
    page.wait_for_selector(f"{APP}[data-test-script-state='notRunning']", timeout=timeout_ms)
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0", timeout=timeout_ms
    )


def open_page(page: Page, url: str, timeout_ms: float = 60_000) -> None:
    """Load ``url`` and wait until the app has rendered."""
    page.goto(url)
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout_ms)
    wait_for_app_run(page, timeout_ms)


def exceptions(page: Page) -> list[str]:
    """Text of any exception element Streamlit shows (there must be none)."""
    return [e.inner_text() for e in page.query_selector_all('[data-testid="stException"]')]


def images_ready(page: Page, count: int, timeout_ms: float = 30_000) -> None:
    """Until ``count`` images of the main area have loaded."""
    page.wait_for_function(
        """n => {
            const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
            return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=count,
        timeout=timeout_ms,
    )


def image_sources(page: Page) -> list[str]:
    """``src`` of the viewer's images, in page order."""
    return page.eval_on_selector_all(
        '[data-testid="stImage"] img', "els => els.map(e => e.getAttribute('src'))"
    )


def viewer_frame(page: Page, timeout_ms: float = 120_000) -> Frame:
    """The interactive (NiiVue) viewer's frame, once every panel has loaded its volumes."""
    handle = page.wait_for_selector('iframe[title*="leukotrack_viewer"]', timeout=timeout_ms)
    frame = handle.content_frame()
    assert frame is not None
    frame.wait_for_function(
        "document.body.dataset.ready === '1' || document.body.dataset.ready === 'error'",
        timeout=timeout_ms,
    )
    assert frame.evaluate("document.body.dataset.ready") == "1", frame.inner_text("#status")
    return frame


def use_static_viewer(page: Page) -> None:
    """Switch the viewer page to its server-rendered images."""
    page.get_by_text("Static images", exact=True).click()
    wait_for_app_run(page)
