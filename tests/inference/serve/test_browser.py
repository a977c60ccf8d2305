"""The draw-a-digit page in a real headless Chromium: draw with the mouse, read the answer and
every layer, distort the digit with the sliders, open, drop and paste image files."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import math

import httpx
import numpy as np
import pytest
from PIL import Image

from benchmarks.loadtest import png_bytes
from tests.chromium import chromium, requires_chromium
from tests.inference.serve.conftest import serving

pytestmark = requires_chromium


def _open(browser, url: str, init: str | None = None):
    """A page of the app, recording every request, console error and CSP violation."""
    pg = browser.new_page(viewport={"width": 1100, "height": 720})
    pg.set_default_timeout(20_000)
    pg.requested, pg.errors = [], []
    pg.on("request", lambda req: pg.requested.append(req.url))
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    # Anything the Content-Security-Policy blocks (an inline style or script, say) is kept.
    pg.add_init_script("window.cspViolations = []; document.addEventListener("
                       "'securitypolicyviolation', e => window.cspViolations.push("
                       "e.violatedDirective + ' ' + (e.blockedURI || 'inline')));")
    if init:
        pg.add_init_script(init)
    pg.goto(url + "/")
    pg.wait_for_selector("body[data-state=ready]")
    return pg


def _clean(pg, server: str) -> None:
    """Nothing fetched from anywhere but the app, no console error, no CSP violation."""
    assert pg.requested and all(u.startswith(server) for u in pg.requested), pg.requested
    assert pg.errors == [] and pg.evaluate("window.cspViolations") == [], pg.errors


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def page(browser, live_server):
    yield _open(browser, live_server)


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


def _shown_answer(pg, server: str, points: list[tuple[float, float]],
                  transform: dict | None = None) -> dict:
    """Draw one stroke and return the answer for the *finished* drawing, once the page shows it.

    While drawing, the page also sends debounced predictions of the half-drawn digit, and one of
    them can set data-state=predicted before the final one (sent on mouse-up) returns. So the
    finished canvas is sent to the API here as well, and the wait is for the page to show
    exactly that answer: its label and, pixel for pixel, its 28x28 input. The page drops
    answers to older requests once the mouse-up request is out, so it then stays.
    """
    if points:
        _draw(pg, points)
    png = base64.b64decode(pg.evaluate(
        "() => document.getElementById('pad').toDataURL('image/png')").split(",", 1)[1])
    r = httpx.post(server + "/api/activations", files={"file": ("pad.png", png, "image/png")},
                   data={"transform": json.dumps(transform or {})}, timeout=60)
    assert r.status_code == 200, r.text
    return _wait_shown(pg, r.json())


def _wait_shown(pg, final: dict) -> dict:
    """Wait until the page shows exactly this answer: its label and its 28x28 input."""
    pg.wait_for_function("""([label, pixels]) => {
        if (document.body.dataset.state !== 'predicted') return false;
        if (document.getElementById('prediction').textContent.trim() !== label) return false;
        const d = document.getElementById('seen').getContext('2d')
            .getImageData(0, 0, 28, 28).data;
        for (let i = 0; i < 784; i++) if (d[4 * i] !== pixels[i]) return false;
        return true; }""", arg=[final["label"], final["preprocessed"]])
    return final


_LAYER_PIXELS = """() => Array.from(document.querySelectorAll('#layers .layer')).map(el => ({
    name: el.dataset.name,
    min: (el.querySelector('.range .min') || {}).textContent,
    max: (el.querySelector('.range .max') || {}).textContent,
    maps: Array.from(el.querySelectorAll('canvas.map')).map(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const red = [];
        for (let i = 0; i < d.length; i += 4) red.push(d[i]);
        return red; }) }))"""


def _fixed(v: float) -> str:
    text = f"{v:.4f}"
    return "0.0000" if text == "-0.0000" else text  # JavaScript drops the sign of zero


def _layers_match(pg, answer: dict) -> None:
    """Every layer's panel is drawn, its pixels are its values from /api/activations scaled
    from the layer's min (black) to its max (white), and its min and max are shown."""
    shown = pg.evaluate(_LAYER_PIXELS)
    assert [s["name"] for s in shown] == [la["name"] for la in answer["layers"]]
    for s, layer in zip(shown, answer["layers"], strict=True):
        v = np.array(layer["values"], np.float64)
        lo, hi = float(v.min()), float(v.max())
        assert hi > lo, layer["name"]  # a real digit lights every layer up somewhere
        assert (s["min"], s["max"]) == (_fixed(lo), _fixed(hi)), layer["name"]
        got = np.concatenate([np.array(m, np.float64) for m in s["maps"]])[:v.size]
        assert got.size == v.size and got.max() == 255 and got.min() == 0, layer["name"]
        want = np.rint((v - lo) / (hi - lo) * 255)
        assert np.abs(got - want).max() <= 1, layer["name"]


def _api(server: str, **kw) -> dict:
    r = httpx.post(server + "/api/activations", timeout=60, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def _pad_png(pg) -> bytes:
    return base64.b64decode(pg.evaluate(
        "() => document.getElementById('pad').toDataURL('image/png')").split(",", 1)[1])


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
    assert _canvas_is_blank(pg) and pg.locator("#layers .layer").count() == 0
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
    assert pg.locator(".layer[data-name=c1] canvas.map").count() == 6  # C1's six feature maps
    _layers_match(pg, answer)
    seen = _preview(pg)
    assert (seen["w"], seen["h"]) == (28, 28) and seen["max"] == 255
    assert seen["lit"] == sum(v > 0 for v in answer["preprocessed"]) >= 20  # the digit's ink
    shot = tmp_path / f"lenet-serve-{digit}.png"
    pg.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as im:
        assert im.width >= 1100 and im.height >= 700
    # Nothing was fetched from anywhere but the app itself.
    assert pg.requested and all(u.startswith(live_server) for u in pg.requested), pg.requested
    assert pg.evaluate("window.cspViolations") == [] and pg.errors == [], pg.errors
    _clear(pg)


def test_docs_page_renders_offline(browser, live_server):
    page = _open(browser, live_server)  # its own page: the others stay on the app
    page.goto(live_server + "/docs")
    page.wait_for_selector(".op code:text-is(\"/api/predict\")")
    page.wait_for_selector(".op code:text-is(\"/api/activations\")")
    assert page.locator(".op").count() >= 4
    # The page's inline <style> is allowed by its hash in the Content-Security-Policy.
    _clean(page, live_server)
    assert page.evaluate("getComputedStyle(document.querySelector('.op')).borderRadius") == "6px"
    page.close()


def test_hovering_or_focusing_a_unit_shows_what_it_reads(page, live_server):
    pg = page
    _clear(pg)
    answer = _shown_answer(pg, live_server, _SEVEN)
    c3 = next(la for la in answer["layers"] if la["name"] == "c3")
    canvas = pg.locator(".layer[data-name=c3] canvas.map").nth(2)
    box = canvas.bounding_box()
    canvas.hover(position={"x": box["width"] * 0.55, "y": box["height"] * 0.35})
    text = pg.locator("#readout").inner_text()
    row, col = 3, 5  # 10x10 map: 35 % down, 55 % across
    assert f"C3 map 2 (row {row}, column {col}) = {_fixed(c3['values'][200 + 10 * row + col])}" \
        in text, text
    assert "reads S2 maps 0, 1, 2, 3, 4, 5" in text and "window rows 3–7, columns 5–9" in text
    assert pg.locator(".layer[data-name=s2] .cell.src").count() == 6
    assert pg.locator(".layer[data-name=s2] .win:not([hidden])").count() == 6
    pg.locator(".layer[data-name=c5] canvas.map").hover(position={"x": 3, "y": 3})  # unit 0
    c5 = next(la for la in answer["layers"] if la["name"] == "c5")
    assert f"C5 unit 0 = {_fixed(c5['values'][0])} · reads every unit of S4" in \
        pg.locator("#readout").inner_text()
    assert pg.locator(".layer[data-name=s4].src").count() == 1
    pg.locator("#readout").hover()
    # The keyboard: a map takes the focus, the arrow keys move the unit.
    pg.locator(".layer[data-name=c1] .cell").first.focus()
    assert "C1 map 0 (row 14, column 14)" in pg.locator("#readout").inner_text()
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("ArrowUp")
    c1 = answer["layers"][1]["values"]
    assert f"C1 map 0 (row 13, column 15) = {_fixed(c1[13 * 28 + 15])} · reads Input map 0" in \
        pg.locator("#readout").inner_text()
    assert pg.locator(".layer[data-name=input] .cell.src").count() == 1
    _clear(pg)


_DISTORTIONS = [{"rotate": 90}, {"rotate": -90}, {"scale": 0.5}, {"shift_x": 8, "shift_y": 8},
                {"stroke": 2}, {"squeeze": 1.6}, {"shear": 0.6}, {"noise": 0.5}]


def test_sliders_change_the_answer_as_the_api_says(page, live_server, tmp_path):
    pg = page
    _clear(pg)
    plain = _shown_answer(pg, live_server, _SEVEN)
    png = _pad_png(pg)
    # The first distortion that changes this network's answer, as the API says.
    for t in _DISTORTIONS:
        moved = _api(live_server, files={"file": ("pad.png", png, "image/png")},
                     data={"transform": json.dumps(t)})
        if moved["label"] != plain["label"]:
            break
    else:
        pytest.fail(f"no distortion changes the answer {plain['label']}")
    for field, value in t.items():
        pg.fill(f"#t-{field}", str(value))
    _wait_shown(pg, moved)
    assert pg.locator("#prediction").inner_text().strip() == moved["label"] != plain["label"]
    _layers_match(pg, moved)
    pg.screenshot(path=str(tmp_path / "lenet-serve-slider.png"), full_page=True)
    pg.click("#reset")
    _wait_shown(pg, plain)
    _clear(pg)


def test_open_an_image_file_then_distort_it(page, live_server, mnist_test, tmp_path):
    pg = page
    _clear(pg)
    images, _ = mnist_test
    png = png_bytes(255 - images[0], "RGB", 84)  # a dark-on-light scan of a 7
    pg.set_input_files("#file", files=[{"name": "scan.png", "mimeType": "image/png",
                                        "buffer": png}])
    answer = _wait_shown(pg, _api(live_server, files={"file": ("scan.png", png, "image/png")}))
    _layers_match(pg, answer)
    names = pg.locator("#steps figcaption").all_inner_texts()
    assert names == [s["name"] for s in answer["steps"]] and len(names) == 4
    pg.screenshot(path=str(tmp_path / "lenet-serve-upload.png"), full_page=True)
    # The sliders now move the image's 28x28 digit, sent as it is.
    pg.fill("#t-rotate", "30")
    turned = _api(live_server, json={"pixels": answer["original"], "preprocess": False,
                                     "transform": {"rotate": 30}})
    _wait_shown(pg, turned)
    _layers_match(pg, turned)
    pg.click("#reset")
    _wait_shown(pg, answer)
    _clear(pg)


_SEND_FILE = """([b64, how]) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'digit.png', {type: 'image/png'}));
    if (how === 'drop') document.getElementById('pad').dispatchEvent(
        new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    else document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true,
                                                             cancelable: true}));
}"""


@pytest.mark.parametrize("how", ["drop", "paste"])
def test_drop_or_paste_an_image(page, live_server, mnist_test, how):
    pg = page
    _clear(pg)
    images, _ = mnist_test
    png = png_bytes(images[1])
    pg.evaluate(_SEND_FILE, [base64.b64encode(png).decode(), how])
    answer = _wait_shown(pg, _api(live_server, content=png,
                                  headers={"content-type": "image/png"}))
    assert pg.locator("#steps figure").count() == len(answer["steps"]) == 4
    _clean(pg, live_server)
    _clear(pg)


def test_camera_button_only_where_the_browser_offers_one(browser, live_server):
    pg = _open(browser, live_server)
    offered = pg.evaluate("() => !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)")
    assert pg.locator("#camera").is_visible() == offered
    assert pg.locator("#camera-box").is_hidden()
    pg.close()
    bare = _open(browser, live_server, init="Object.defineProperty(Navigator.prototype, "
                                            "'mediaDevices', {get: () => undefined});")
    assert bare.locator("#camera").is_hidden() and bare.locator("#file").count() == 1
    _clean(bare, live_server)
    bare.close()


@pytest.fixture(scope="module")
def other_servers(tmp_path_factory):
    """Pages for untrained lenet5-1998 and mlp weights (every layer, not accuracy)."""
    import torch

    from lenet.inference.predict import Predictor
    from lenet.models import create, weights
    from lenet.models.registry import get_spec

    root = tmp_path_factory.mktemp("browser-models")
    with contextlib.ExitStack() as stack:
        urls = {}
        for name in ("lenet5-1998", "mlp"):
            torch.manual_seed(0)
            meta = weights.WeightsMeta(name, get_spec(name).preprocessing, "mnist",
                                       [str(i) for i in range(10)])
            path = weights.save(root / f"{name}.safetensors", create(name), meta)
            urls[name] = stack.enter_context(serving(Predictor.load(path)))
        yield urls


def test_lenet5_1998_page_has_the_c3_table_and_rbf_distances(browser, other_servers, tmp_path):
    url = other_servers["lenet5-1998"]
    pg = _open(browser, url)
    answer = _shown_answer(pg, url, _ZERO)
    _layers_match(pg, answer)
    assert pg.locator(".layer[data-name=c3] table td.on").count() == 60  # Table I's links
    rbf = answer["rbf"]
    items = pg.locator("#rbf-distances li").all_inner_texts()
    assert items == [f"{d}: {_fixed(v)}" for d, v in enumerate(rbf["distances"])]
    assert pg.locator("#rbf-distances li.nearest").inner_text() == \
        f"{rbf['nearest']}: {_fixed(rbf['distances'][rbf['nearest']])}"
    f6 = pg.evaluate("""() => { const c = document.getElementById('f6-bitmap');
        return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width,
                c.height).data).filter((v, i) => i % 4 === 0)]; }""")
    assert f6[:2] == [7, 12]
    f6_values = np.array(answer["layers"][6]["values"])
    assert np.abs(np.array(f6[2]) - np.rint((f6_values + 1.7159) / 3.4318 * 255)).max() <= 1
    # C3 map 0 reads S2 maps 0, 1, 2 only (Table I), and its column lights up.
    pg.locator(".layer[data-name=c3] .cell").first.focus()
    assert "reads S2 maps 0, 1, 2," in pg.locator("#readout").inner_text()
    assert pg.locator(".layer[data-name=s2] .cell.src").count() == 3
    assert pg.locator(".layer[data-name=c3] td.hl").count() == 6
    pg.screenshot(path=str(tmp_path / "lenet-serve-1998.png"), full_page=True)
    _clean(pg, url)
    pg.close()


def test_mlp_page_draws_its_hidden_layers(browser, other_servers, tmp_path):
    url = other_servers["mlp"]
    pg = _open(browser, url)
    answer = _shown_answer(pg, url, _ONE)
    assert [la["kind"] for la in answer["layers"]] == ["input", "linear", "linear", "output"]
    _layers_match(pg, answer)
    pg.locator(".layer[data-kind=linear] canvas.map").first.hover(position={"x": 3, "y": 3})
    assert "reads every unit of Input" in pg.locator("#readout").inner_text()
    assert pg.locator(".layer[data-name=input].src").count() == 1
    assert pg.locator("#rbf").is_hidden()
    pg.screenshot(path=str(tmp_path / "lenet-serve-mlp.png"), full_page=True)
    _clean(pg, url)
    pg.close()
