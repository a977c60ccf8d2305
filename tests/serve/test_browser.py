"""The draw-a-digit page in a real headless Chromium: draw with the mouse, read the answer."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("LENET_SCREENSHOT_DIR", "/tmp"))

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture(scope="module")
def page(live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, timeout=60_000,
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking"])
        try:
            pg = browser.new_page(viewport={"width": 1100, "height": 720})
            pg.set_default_timeout(20_000)
            pg.requested = []
            pg.on("request", lambda req: pg.requested.append(req.url))
            pg.goto(live_server + "/")
            pg.wait_for_selector("body[data-state=ready]")
            yield pg
        finally:
            browser.close()


def _draw(pg, points: list[tuple[float, float]]) -> None:
    box = pg.locator("#pad").bounding_box()
    x0, y0 = box["x"], box["y"]
    pg.mouse.move(x0 + points[0][0], y0 + points[0][1])
    pg.mouse.down()
    for x, y in points[1:]:
        pg.mouse.move(x0 + x, y0 + y, steps=2)
    pg.mouse.up()


def _prediction(pg) -> str:
    pg.wait_for_selector("body[data-state=predicted]")
    return pg.locator("#prediction").inner_text().strip()


def _top_bar_fills_over_half(pg) -> bool:
    """The winning bar is drawn over half the track (after its short CSS transition)."""
    pg.wait_for_function("""() => { const el = document.querySelector('.bar.top .fill');
        return el && el.getBoundingClientRect().width >
                     0.5 * el.parentElement.getBoundingClientRect().width; }""")
    return True


def _canvas_is_blank(pg) -> bool:
    return pg.evaluate("""() => {
        const c = document.getElementById('pad');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i++) if (d[i] !== 255) return false;
        return true; }""")


def test_draw_a_one_then_a_zero_and_clear(page, live_server):
    pg = page
    _draw(pg, [(140, 40 + 10 * i) for i in range(21)])  # a vertical stroke: "1"
    assert _prediction(pg) == "1"
    assert pg.locator("#bars .bar").count() == 10 and _top_bar_fills_over_half(pg)
    assert pg.locator("#maps canvas").count() == 6  # C1's six feature maps
    seen = pg.evaluate("""() => { const d = document.getElementById('seen').getContext('2d')
        .getImageData(0, 0, 28, 28).data; let m = 0; for (let i = 0; i < d.length; i += 4)
        m = Math.max(m, d[i]); return m; }""")
    assert seen == 255  # the 28x28 input is drawn
    pg.screenshot(path=str(SHOTS / "lenet-serve-one.png"), full_page=True)

    pg.click("#clear")
    pg.wait_for_selector("body[data-state=cleared]")
    assert pg.locator("#prediction").inner_text().strip() == "–"
    assert _canvas_is_blank(pg) and pg.locator("#maps canvas").count() == 0
    assert pg.locator(".bar.top").count() == 0

    ring = [(140 + 60 * math.sin(t / 24 * 2 * math.pi), 140 - 95 * math.cos(t / 24 * 2 * math.pi))
            for t in range(26)]
    _draw(pg, ring)  # an ellipse: "0"
    assert _prediction(pg) == "0"
    pg.screenshot(path=str(SHOTS / "lenet-serve-zero.png"), full_page=True)
    # Nothing was fetched from anywhere but the app itself.
    assert pg.requested and all(u.startswith(live_server) for u in pg.requested), pg.requested


def test_docs_page_renders_offline(page, live_server):
    page.goto(live_server + "/docs")
    page.wait_for_selector(".op code:text-is(\"/api/predict\")")
    assert page.locator(".op").count() >= 3
    assert all(u.startswith(live_server) for u in page.requested)
