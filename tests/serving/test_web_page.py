"""The web page in headless Chromium (Debian's chromium, driven by Playwright) on the real server.

Playwright's own browser downloads are never used: the tests launch /usr/bin/chromium and
skip, saying so, where it or the playwright package is missing.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.builders import ROOT, real_images
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
AXE = ROOT / "tests" / "serving" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "runs" / "test-artifacts"  # screenshots a person can look at


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@contextlib.contextmanager
def browsing(browser: Any, server: Server, **options: Any) -> Iterator[Any]:
    """A page of a fresh browser context on `server` (options: Playwright's new_context)."""
    context = browser.new_context(base_url=server.url, **options)
    try:
        opened = context.new_page()
        opened.set_default_timeout(TIMEOUT_MS)
        yield opened
    finally:
        context.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    with browsing(browser, server) as opened:
        yield opened


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


def canvas_pixels(page: Any) -> np.ndarray:
    """The #after canvas as shown (the blend of original and translation), as RGB."""
    data_url = page.evaluate("document.getElementById('after').toDataURL('image/png')")
    with Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def set_slider(page: Any, slider: str, value: int) -> None:
    page.eval_on_selector(
        slider, f"s => {{ s.value = '{value}'; s.dispatchEvent(new Event('input')); }}"
    )


def test_the_page_translates_an_image(page: Any, server: Server, tmp_path: Path) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    open_page(page)
    assert page.is_hidden("#result")
    choose_image(page)
    wait_for(page, DONE)
    assert not page.is_hidden("#result")
    assert re.search(r"\(the model \d+ ms of the server's \d+ ms\)", page.text_content("#status"))
    assert page.text_content("#ai-note").startswith("Made by a model: horse2zebra (h2z 1)")
    assert page.evaluate(
        "[document.getElementById('after').width, document.getElementById('after').height]"
    ) == [256, 256]
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "n02381460_1000-horse2zebra.png"
    saved = tmp_path / "saved.png"
    download.value.save_as(saved)
    assert b"trainedAlgorithmicMedia" in saved.read_bytes()  # the server's marked answer
    assert errors == []  # nothing broke, the Content-Security-Policy included


def test_strength_and_compare_change_the_picture_at_once(page: Any, server: Server) -> None:
    open_page(page)
    choose_image(page)
    wait_for(page, DONE)
    photo = real_images("testA", 1)[0]
    answer = httpx.post(
        f"{server.url}/translate/horse2zebra", content=photo.read_bytes(),
        headers={"content-type": "image/jpeg"}, timeout=60,
    )  # fmt: skip
    with Image.open(io.BytesIO(answer.content)) as image:
        translation = np.asarray(image.convert("RGB"), dtype=np.float64)
    with Image.open(photo) as image:
        original = np.asarray(image.convert("RGB"), dtype=np.float64)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    assert np.abs(canvas_pixels(page) - translation).mean() <= 1.0  # 100 %: the translation
    set_slider(page, "#strength", 0)
    assert np.abs(canvas_pixels(page) - original).mean() <= 2.0  # 0 %: the original's pixels
    set_slider(page, "#strength", 50)
    assert np.abs(canvas_pixels(page) - (original + translation) / 2).mean() <= 2.0
    assert requests == []  # no round trip while dragging
    assert page.get_attribute("#strength", "aria-valuetext") == "50%"
    # the compare slider by keyboard: the translation covers less of the picture
    page.focus("#compare")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert page.input_value("#compare") == "48"
    assert page.get_attribute("#compare", "aria-valuetext") == "48% translation"
    clip = page.evaluate("document.getElementById('after').style.clipPath")
    assert clip == "inset(0px 52% 0px 0px)"
    # a download at 50 %: the server's blend at full size, marked, named as before
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "n02381460_1000-horse2zebra.png"
    assert any("strength=0.5" in url for url in requests)


def test_a_network_error_is_shown(page: Any) -> None:
    """Bug guarded: "translating…" stayed forever."""
    open_page(page)
    page.route("**/translate/**", lambda route: route.abort("failed"))
    choose_image(page)
    wait_for(page, "document.getElementById('status').className === 'error'")
    assert "failed" in page.text_content("#status")
    assert page.get_attribute("#status", "role") == "alert"  # announced assertively


def test_a_503_is_retried_by_its_retry_after(page: Any) -> None:
    open_page(page)
    answers = {"count": 0}

    def warming_up_once(route: Any) -> None:
        answers["count"] += 1
        if answers["count"] == 1:
            route.fulfill(
                status=503, headers={"Retry-After": "1"}, content_type="application/json",
                body=json.dumps({"error": "the service is not ready: models loading"}),
            )  # fmt: skip
        else:
            route.continue_()

    page.route("**/translate/**", warming_up_once)
    choose_image(page)
    wait_for(page, "document.getElementById('status').textContent.includes('trying again in 1 s')")
    wait_for(page, DONE)
    assert answers["count"] == 2

    def always_busy(route: Any) -> None:
        route.fulfill(
            status=503, headers={"Retry-After": "0"}, content_type="application/json",
            body=json.dumps({"error": "the server is overloaded; retry shortly"}),
        )  # fmt: skip

    page.unroute("**/translate/**")
    page.route("**/translate/**", always_busy)
    choose_image(page)
    wait_for(page, "document.getElementById('status').className === 'error'")
    assert "gave up after 5 tries" in page.text_content("#status")


def test_an_older_answer_never_replaces_a_newer_one(page: Any) -> None:
    """Bug guarded: changing a setting during a request let the older answer win when it came."""
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
    page.select_option("#size", "128")
    wait_for(page, DONE)
    newer = canvas_pixels(page)
    stale = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(stale, format="PNG")
    with contextlib.suppress(Exception):  # the page aborted it: answering must change nothing
        held[0].fulfill(status=200, content_type="image/png", body=stale.getvalue())
    page.wait_for_timeout(1000)
    assert np.array_equal(canvas_pixels(page), newer)
    assert page.text_content("#status").startswith("done")


def test_drops_anywhere_and_pastes_are_caught(page: Any) -> None:
    open_page(page)
    make_transfer = """async () => {
        const answer = await fetch('/examples/horse2zebra/input.jpg');
        const transfer = new DataTransfer();
        transfer.items.add(new File([await answer.blob()], 'dropped.jpg', {type: 'image/jpeg'}));
        return transfer;
    }"""
    transfer = page.evaluate_handle(make_transfer)
    page.dispatch_event("h1", "drop", {"dataTransfer": transfer})  # outside the drop zone
    wait_for(page, DONE)
    assert page.url.endswith("/") and "dropped.jpg" not in page.url  # the page stayed
    page.evaluate("() => { document.getElementById('status').textContent = ''; }")
    paste = f"""async () => {{
        const transfer = await ({make_transfer})();
        document.dispatchEvent(new ClipboardEvent('paste', {{clipboardData: transfer}}));
    }}"""
    page.evaluate(paste)
    wait_for(page, DONE)  # (the status was cleared before the paste)


NO_WEB_SHARE = "delete Navigator.prototype.share; delete Navigator.prototype.canShare;"


def test_share_without_web_share_copies_the_image(browser: Any, server: Server) -> None:
    with browsing(browser, server) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        page.add_init_script(NO_WEB_SHARE)
        open_page(page)
        choose_image(page)
        wait_for(page, DONE)
        assert page.evaluate("typeof navigator.share") == "undefined"
        page.click("#share")
        wait_for(page, "document.getElementById('status').textContent.startsWith('copied')")
        assert "n02381460_1000-horse2zebra.png" in page.text_content("#status")
        types = page.evaluate("async () => (await navigator.clipboard.read())[0].types")
        assert types == ["image/png"]


def test_a_phone_screen_has_one_column_and_no_sideways_scroll(browser: Any, server: Server) -> None:
    with browsing(browser, server, viewport={"width": 390, "height": 844}) as page:
        open_page(page)
        choose_image(page)
        wait_for(page, DONE)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        boxes = [page.locator(s).bounding_box() for s in ("#direction", "#pick", "#download")]
        assert all(box is not None and box["x"] + box["width"] <= 390 for box in boxes)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "page-390x844.png"), full_page=True)


def test_the_page_has_no_serious_accessibility_violations(browser: Any, server: Server) -> None:
    if not AXE.is_file():
        pytest.skip(f"needs axe-core at {AXE} (make test installs it with npm)")
    with browsing(browser, server, bypass_csp=True) as page:  # to inject axe
        open_page(page)
        choose_image(page)
        wait_for(page, DONE)
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate("async () => (await axe.run()).violations")
        serious = [
            f"{v['id']} ({v['impact']}): {v['help']}"
            for v in violations
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == []


def test_the_file_picker_is_reachable_by_keyboard(page: Any) -> None:
    """Bug guarded: the picker was a <label> for a hidden input: Tab never reached it."""
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
    # then on by keyboard alone: the sliders and the download
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
        if reached[-1] == "download":
            break
    assert {"compare", "strength", "format", "download"} <= set(reached)
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename.endswith("-horse2zebra.png")


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
    """Bug guarded: every translation left two blobs behind for the page's lifetime."""
    page.add_init_script(INIT_COUNT_URLS)
    open_page(page)
    for _ in range(3):
        choose_image(page)
        wait_for(page, DONE)
    created = page.evaluate("window.created")
    revoked = page.evaluate("window.revoked")
    live = set(created) - set(revoked)
    assert len(created) == 3 and live == {page.get_attribute("#before", "src")}


def test_the_fast_preview_comes_first_then_the_full_model(
    browser: Any, two_pairs_server: Server, tmp_path: Path
) -> None:
    with browsing(browser, two_pairs_server, accept_downloads=True) as page:
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
        # the preview comes in a format cheap to encode; the full answer in PNG
        assert ["format=jpeg" in url for url in urls] == [True, False]
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


def test_the_chooser_groups_pairs_and_offers_their_examples(
    browser: Any, two_pairs_server: Server
) -> None:
    with browsing(browser, two_pairs_server, accept_downloads=True) as page:
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
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
        with page.expect_download() as download:
            page.click("#download")
        assert download.value.suggested_filename == "winter-winter2summer.png"
        assert errors == []
