"""The web page in headless Chromium (Debian's chromium, driven by Playwright) on the real server.

Playwright's own browser downloads are never used: the tests launch /usr/bin/chromium and
skip, saying so, where it or the playwright package is missing.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import real_images
from tests.serverlib import Server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DONE = "document.getElementById('status').textContent.startsWith('done')"
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url)
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    context.close()


def wait_for(page: Any, expression: str, timeout_s: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JavaScript expression until it is true (wait_for_function evaluates strings in
    the page, which the page's Content-Security-Policy rightly forbids)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(f"never true: {expression}")
        page.wait_for_timeout(100)


def open_page(page: Any) -> None:
    page.goto("/")
    wait_for(page, "document.getElementById('direction').options.length > 0")


def choose_image(page: Any) -> None:
    page.set_input_files("#file", str(real_images("testA", 1)[0]))


def test_the_page_translates_an_image(page: Any) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    open_page(page)
    choose_image(page)
    wait_for(page, DONE)
    assert page.get_attribute("#after", "src").startswith("blob:")
    assert page.get_attribute("#download", "download") == "horse2zebra.png"
    assert errors == []  # nothing broke, the Content-Security-Policy included


def test_a_network_error_is_shown(page: Any) -> None:
    """Before: "translating…" stayed forever."""
    open_page(page)
    page.route("**/translate/**", lambda route: route.abort("failed"))
    choose_image(page)
    wait_for(page, "document.getElementById('status').className === 'error'")
    assert "failed" in page.text_content("#status")


def test_an_older_answer_never_replaces_a_newer_one(page: Any) -> None:
    """Before: changing the format during a request let the older answer win when it came."""
    open_page(page)
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:
        if not held:
            held.append(route)  # answered later, after the newer request
        else:
            route.continue_()

    page.route("**/translate/**", hold_the_first)
    choose_image(page)
    wait_for(page, "document.getElementById('status').textContent.startsWith('transl')")
    page.select_option("#format", "jpeg")
    wait_for(page, DONE)
    newer = page.get_attribute("#after", "src")
    assert page.get_attribute("#download", "download") == "horse2zebra.jpg"
    stale = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(stale, format="PNG")
    with contextlib.suppress(Exception):  # the page aborted it: answering must change nothing
        held[0].fulfill(status=200, content_type="image/png", body=stale.getvalue())
    page.wait_for_timeout(1000)
    assert page.get_attribute("#after", "src") == newer
    assert page.get_attribute("#download", "download") == "horse2zebra.jpg"
    assert page.text_content("#status").startswith("done")


def test_the_file_picker_is_reachable_by_keyboard(page: Any) -> None:
    """Before: the picker was a <label> for a hidden input: Tab never reached it."""
    open_page(page)
    for _ in range(12):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "document.activeElement === document.body ? '' : document.activeElement.textContent"
        )
        if "Choose an image" in (focused or ""):
            break
    else:
        pytest.fail("Tab never reached the file picker")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(real_images("testA", 1)[0]))
    wait_for(page, DONE)


def test_no_button_inside_a_link(page: Any) -> None:
    open_page(page)
    assert page.locator("a button").count() == 0
    assert page.locator("button a").count() == 0


INIT_COUNT_URLS = """
window.created = []; window.revoked = [];
const create = URL.createObjectURL, revoke = URL.revokeObjectURL;
URL.createObjectURL = (blob) => { const url = create(blob); window.created.push(url); return url; };
URL.revokeObjectURL = (url) => { window.revoked.push(url); revoke(url); };
"""


def test_object_urls_are_revoked(page: Any) -> None:
    """Before: every translation left two blobs behind for the page's lifetime."""
    page.add_init_script(INIT_COUNT_URLS)
    open_page(page)
    choose_image(page)
    wait_for(page, DONE)
    for fmt, extension in (("jpeg", "jpg"), ("webp", "webp")):
        page.select_option("#format", fmt)
        wait_for(page, f"document.getElementById('download').download.endsWith('.{extension}')")
    created = page.evaluate("window.created")
    revoked = page.evaluate("window.revoked")
    live = set(created) - set(revoked)
    assert len(created) == 6 and live == {
        page.get_attribute("#before", "src"),
        page.get_attribute("#after", "src"),
    }
