"""The page of `convzoo serve` in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright): no request leaves 127.0.0.1, a digit drawn with the mouse is read, a dropped photo
gets bars."""
import base64
import os

import pytest

from conftest import SAMPLE
from test_serve import start_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# strokes on the 280x280 pad, as (x, y) points of one mouse drag each
DIGITS = {
    "7": [[(70 + 13 * i, 60) for i in range(11)] + [(200 - 8 * i, 60 + 15 * i) for i in range(1, 13)]],
    "1": [[(145 - i, 40 + 17 * i) for i in range(12)]],
}


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    pytest.importorskip("flask", reason="flask is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    proc, port = start_server(tmp_path_factory.mktemp("page"), "--model", "mnist", "--model", "cifar10")
    requests = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 800})
        page.set_default_timeout(60_000)
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("body[data-ready='1']")
        yield page, port, requests
        browser.close()
    proc.terminate()
    proc.wait(30)


def _draw(page, strokes):
    box = page.locator("#pad").bounding_box()
    sx, sy = box["width"] / 280, box["height"] / 280
    for stroke in strokes:
        page.mouse.move(box["x"] + stroke[0][0] * sx, box["y"] + stroke[0][1] * sy)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * sx, box["y"] + y * sy, steps=2)
        page.mouse.up()


def _settled(page):
    """Wait until no classify request is in flight, then the top label shown."""
    page.wait_for_function("() => document.querySelectorAll('#bars .bar').length > 0")
    page.wait_for_timeout(300)
    page.wait_for_function("() => !window.convzooBusy()")
    return page.locator("#bars .bar.top").get_attribute("data-label")


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_drawn_digit_is_the_top_class(browser_page, digit, tmp_path):
    page, _, _ = browser_page
    page.select_option("#model", "mnist")
    page.click("#clear")
    _draw(page, DIGITS[digit])
    assert _settled(page) == digit
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")
    page.screenshot(path=str(tmp_path / f"drawn_{digit}.png"))


def test_dropped_photo_shows_bars(browser_page):
    page, _, _ = browser_page
    page.select_option("#model", "cifar10")
    data = base64.b64encode((SAMPLE / "samples" / "fashion_mnist_9997_Bag_photo.jpg").read_bytes()).decode()
    page.evaluate("""b64 => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "photo.jpg", {type: "image/jpeg"}));
        document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
    }""", data)
    _settled(page)
    assert page.locator("#bars .bar").count() == 5
    assert page.locator("#seen-shape").inner_text() == "input 32x32x3 (0..255)"


def test_no_request_leaves_the_server(browser_page):
    _, port, requests = browser_page
    assert requests and all(u.startswith(f"http://127.0.0.1:{port}/") or u.startswith(("data:", "blob:"))
                            for u in requests), requests
