"""The web page in headless Chromium (Debian's chromium, driven by Playwright) on the real server.

Playwright's own browser downloads are never used: the tests launch /usr/bin/chromium and
skip, saying so, where it or the playwright package is missing.
"""

from __future__ import annotations

import contextlib
import io
import re
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
    assert re.search(r"\(the model \d+ ms of the server's \d+ ms\)", page.text_content("#status"))
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
    # Playwright turns file-chooser interception on, without waiting, when the first listener
    # is added: add one now, so that it is on long before Enter (else a race: no event).
    page.on("filechooser", lambda chooser: None)
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


def test_the_fast_preview_comes_first_then_the_full_model(
    browser: Any, two_pairs_server: Server, tmp_path: Path
) -> None:
    context = browser.new_context(base_url=two_pairs_server.url, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        open_page(page)
        options = page.eval_on_selector_all("#direction option", "os => os.map(o => o.value)")
        # the students are previews, not choices
        assert options == ["horse2zebra", "zebra2horse", "summer2winter", "winter2summer"]
        held: list[Any] = []
        urls: list[str] = []

        def hold_the_full_model(route: Any) -> None:
            urls.append(route.request.url)
            if "-fast" in route.request.url:
                route.continue_()
            else:
                held.append(route)  # let the preview arrive first, deterministically

        page.route("**/translate/**", hold_the_full_model)
        page.select_option("#size", "128")
        choose_image(page)
        label = "document.getElementById('after-label').textContent"
        wait_for(page, f"{label}.includes('fast preview')")
        assert "horse2zebra-fast" in page.text_content("#after-label")
        assert "full model is still working" in page.text_content("#status")
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not held and time.monotonic() < deadline:  # the full model's request, held
            page.wait_for_timeout(100)
        held[0].continue_()
        wait_for(page, f"{label}.includes('full model')")
        wait_for(page, DONE)
        assert page.text_content("#after-label") == "After: full model (horse2zebra)"
        assert all("resolution=128" in url for url in urls) and len(urls) == 2
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "out.png"
        download.value.save_as(saved)
        with Image.open(saved) as image:
            assert image.format == "PNG" and image.size[0] > 0
        page.unroute("**/translate/**")
        page.set_input_files(
            "#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
        )
        wait_for(page, "document.getElementById('status').className === 'error'")
        assert page.text_content("#status").startswith(("400", "415"))
    finally:
        context.close()


def test_the_chooser_groups_pairs_and_offers_their_examples(
    browser: Any, two_pairs_server: Server
) -> None:
    context = browser.new_context(base_url=two_pairs_server.url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        open_page(page)
        groups = page.eval_on_selector_all("#direction optgroup", "gs => gs.map(g => g.label)")
        assert groups == ["horse ↔ zebra", "summer ↔ winter"]
        page.select_option("#direction", "winter2summer")
        assert page.text_content("#direction option:checked") == "winter → summer"
        assert not page.is_hidden("#sample")
        assert page.get_attribute("#sample-output", "src") == "/examples/winter2summer/output.jpg"
        wait_for(page, "document.getElementById('sample-output').naturalWidth > 0")  # it loaded
        page.click("#try-example")  # the example photo is one click away
        wait_for(page, DONE)
        assert page.text_content("#after-label") == "After: full model (winter2summer)"
        assert page.get_attribute("#download", "download") == "winter2summer.png"
        assert errors == []
    finally:
        context.close()
