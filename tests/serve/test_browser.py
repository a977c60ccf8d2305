"""The draw-a-digit page in a real headless Chromium: draw with the mouse, read the answer."""

from __future__ import annotations

import base64
import itertools
import math

import httpx
import pytest
from PIL import Image

from tests.viz.chromium import chromium, requires_chromium

pytestmark = requires_chromium


@pytest.fixture(scope="module")
def page(live_server):
    with chromium() as browser:
        pg = browser.new_page(viewport={"width": 1100, "height": 720})
        pg.set_default_timeout(20_000)
        pg.requested = []
        pg.on("request", lambda req: pg.requested.append(req.url))
        # Anything the Content-Security-Policy blocks (an inline style or script, say) is kept.
        pg.add_init_script("window.cspViolations = []; document.addEventListener("
                           "'securitypolicyviolation', e => window.cspViolations.push("
                           "e.violatedDirective + ' ' + (e.blockedURI || 'inline')));")
        pg.goto(live_server + "/")
        pg.wait_for_selector("body[data-state=ready]")
        yield pg


def _polyline(*vertices: tuple[float, float], step: float = 10.0) -> list[tuple[float, float]]:
    """Points every `step` px along the segments joining the vertices (one pen stroke)."""
    points = [vertices[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(vertices):
        n = max(1, round(math.hypot(x1 - x0, y1 - y0) / step))
        points += [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(1, n + 1)]
    return points


def _draw(pg, points: list[tuple[float, float]]) -> None:
    box = pg.locator("#pad").bounding_box()
    x0, y0 = box["x"], box["y"]
    pg.mouse.move(x0 + points[0][0], y0 + points[0][1])
    pg.mouse.down()
    for x, y in points[1:]:
        pg.mouse.move(x0 + x, y0 + y, steps=2)
    pg.mouse.up()


def _shown_answer(pg, server: str, points: list[tuple[float, float]]) -> dict:
    """Draw one stroke and return the answer for the *finished* drawing, once the page shows it.

    While drawing, the page also sends debounced predictions of the half-drawn digit, and one of
    them can set data-state=predicted before the final one (sent on mouse-up) returns. So the
    finished canvas is sent to the API here as well, and the wait is for the page to show
    exactly that answer: its label and, pixel for pixel, its 28x28 input. The page drops
    answers to older requests once the mouse-up request is out, so it then stays.
    """
    _draw(pg, points)
    png = base64.b64decode(pg.evaluate(
        "() => document.getElementById('pad').toDataURL('image/png')").split(",", 1)[1])
    r = httpx.post(server + "/api/predict", files={"file": ("pad.png", png, "image/png")},
                   timeout=60)
    assert r.status_code == 200, r.text
    final = r.json()
    pg.wait_for_function("""([label, pixels]) => {
        if (document.body.dataset.state !== 'predicted') return false;
        if (document.getElementById('prediction').textContent.trim() !== label) return false;
        const d = document.getElementById('seen').getContext('2d')
            .getImageData(0, 0, 28, 28).data;
        for (let i = 0; i < 784; i++) if (d[4 * i] !== pixels[i]) return false;
        return true; }""", arg=[final["label"], final["preprocessed"]])
    return final


def _preview(pg) -> dict:
    """The page's 28x28 input canvas: its size, brightest pixel, and how many pixels are lit."""
    return pg.evaluate("""() => { const c = document.getElementById('seen');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let m = 0, lit = 0;
        for (let i = 0; i < d.length; i += 4) { m = Math.max(m, d[i]); if (d[i] > 0) lit++; }
        return {w: c.width, h: c.height, max: m, lit: lit}; }""")


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


def _clear(pg) -> None:
    pg.click("#clear")
    pg.wait_for_selector("body[data-state=cleared]")
    assert pg.locator("#prediction").inner_text().strip() == "–"
    assert _canvas_is_blank(pg) and pg.locator("#maps canvas").count() == 0
    assert pg.locator(".bar.top").count() == 0


_ONE = _polyline((140, 40), (140, 240))  # a vertical stroke
_SEVEN = _polyline((65, 55), (215, 55), (115, 240))  # the top bar, then down and to the left
_ZERO = [(140 + 60 * math.sin(t / 24 * 2 * math.pi), 140 - 95 * math.cos(t / 24 * 2 * math.pi))
         for t in range(26)]  # an ellipse, closed with a little overlap


@pytest.mark.parametrize("digit,stroke", [("1", _ONE), ("7", _SEVEN), ("0", _ZERO)])
def test_draw_a_digit_and_read_it(page, live_server, tmp_path, digit, stroke):
    pg = page
    _clear(pg)
    answer = _shown_answer(pg, live_server, stroke)
    assert answer["label"] == digit, (answer["label"], answer["confidence"])
    assert pg.locator("#prediction").inner_text().strip() == digit
    assert pg.locator("#bars .bar").count() == 10 and _top_bar_fills_over_half(pg)
    assert pg.locator(".bar.top").get_attribute("data-index") == str(answer["digit"])
    assert pg.locator("#maps canvas").count() == 6  # C1's six feature maps
    seen = _preview(pg)
    assert (seen["w"], seen["h"]) == (28, 28) and seen["max"] == 255
    assert seen["lit"] == sum(v > 0 for v in answer["preprocessed"]) >= 20  # the digit's ink
    shot = tmp_path / f"lenet-serve-{digit}.png"
    pg.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as im:
        assert im.width >= 1100 and im.height >= 700
    # Nothing was fetched from anywhere but the app itself.
    assert pg.requested and all(u.startswith(live_server) for u in pg.requested), pg.requested
    assert pg.evaluate("window.cspViolations") == []
    _clear(pg)


def test_docs_page_renders_offline(page, live_server):
    page.goto(live_server + "/docs")
    page.wait_for_selector(".op code:text-is(\"/api/predict\")")
    assert page.locator(".op").count() >= 3
    assert all(u.startswith(live_server) for u in page.requested)
    # The page's inline <style> is allowed by its hash in the Content-Security-Policy.
    assert page.evaluate("window.cspViolations") == []
    assert page.evaluate("getComputedStyle(document.querySelector('.op')).borderRadius") == "6px"
