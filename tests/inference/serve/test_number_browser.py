"""The page's number mode in a real headless Chromium: a number written with the mouse on the
wide pad is read, on the served page (POST /api/read) and on the static export (read.js and the
reader's forward pass in the page, no server), and the two agree with each other and with what
/api/read answers for the same drawing: the same strip, the same text, path and digits, the same
column probabilities to 1e-4; the columns are drawn as the paper's Figs. 25-26."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from lenet.models.sdnn import CLASSES
from tests.chromium import chromium, requires_chromium
from tests.inference.serve.conftest import serving
from tests.inference.serve.test_browser import _polyline
from tests.inference.serve.test_static_browser import static_files

pytestmark = requires_chromium

# Pen strokes of each digit in a unit box (x right, y down), drawn 80 x 150 px on the pad.
_DIGITS = {
    "1": [[(0.5, 0.0), (0.5, 1.0)]],
    "7": [[(0.0, 0.0), (1.0, 0.0), (0.35, 1.0)]],
    "0": [[(0.5 + 0.45 * np.sin(t / 24 * 2 * np.pi), 0.5 - 0.5 * np.cos(t / 24 * 2 * np.pi))
           for t in range(26)]],
    "4": [[(0.6, 0.0), (0.0, 0.65), (1.0, 0.65)], [(0.7, 0.25), (0.7, 1.0)]],
    "2": [[(0.05, 0.25), (0.2, 0.05), (0.5, 0.0), (0.8, 0.05), (0.95, 0.25), (0.9, 0.45),
           (0.0, 1.0), (1.0, 1.0)]],
}
NUMBER = "17042"


def _strokes(text: str, left: float = 150, top: float = 37, width: float = 80,
             height: float = 150, gap: float = 70) -> list[list[tuple[float, float]]]:
    """The pen strokes of `text` on the wide pad, in pad pixels."""
    out = []
    for i, char in enumerate(text):
        x0 = left + i * (width + gap)
        for stroke in _DIGITS[char]:
            out.append(_polyline(*[(x0 + u * width, top + v * height) for u, v in stroke],
                                 step=12.0))
    return out


def _write(pg, strokes) -> None:
    box = pg.locator("#wide").bounding_box()
    sx, sy = box["width"] / 1120, box["height"] / 224  # the pad's CSS size over its pixels
    for points in strokes:
        pg.mouse.move(box["x"] + points[0][0] * sx, box["y"] + points[0][1] * sy)
        pg.mouse.down()
        for x, y in points[1:]:
            pg.mouse.move(box["x"] + x * sx, box["y"] + y * sy)
        pg.mouse.up()


def _pad_png(pg) -> bytes:
    return base64.b64decode(pg.evaluate(
        "() => document.getElementById('wide').toDataURL('image/png')").split(",", 1)[1])


def _read_on_server(server: str, png: bytes, **options: str) -> dict:
    r = httpx.post(server + "/api/read", files={"file": ("pad.png", png, "image/png")},
                   data=options, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _wait_shown(pg, want: dict) -> dict:
    """Wait until the page shows exactly this reading (its text and its strip, pixel for
    pixel: not that of a half-written number), and return the page's own answer."""
    try:
        _wait_for(pg, want)
    except PlaywrightTimeout:
        got = pg.evaluate("() => window.lenetNumber")
        strip = got and got["strip"]
        pytest.fail(f"the page shows {got and got['text']!r} on a strip of width "
                    f"{strip and strip['width']}; /api/read: {want['text']!r} on one of width "
                    f"{want['strip']['width']}; same strip: "
                    f"{bool(strip) and strip['pixels'] == want['strip']['pixels']}")
    return pg.evaluate("() => window.lenetNumber")


def _wait_for(pg, want: dict) -> None:
    pg.wait_for_function("""([text, pixels]) => {
        const r = window.lenetNumber;
        if (document.body.dataset.number !== 'read' || !r || r.text !== text) return false;
        if (r.strip.pixels.length !== pixels.length) return false;
        for (let i = 0; i < pixels.length; i++) if (r.strip.pixels[i] !== pixels[i]) return false;
        return true; }""", arg=[want["text"], want["strip"]["pixels"]], timeout=10_000)


def _same_reading(mine: dict, theirs: dict) -> None:
    assert (mine["text"], mine["path"], mine["digits"] and [d["char"] for d in mine["digits"]]) \
        == (theirs["text"], theirs["path"], theirs["digits"] and
            [d["char"] for d in theirs["digits"]])
    assert [(d["x0"], d["x1"]) for d in mine["digits"]] == \
        [(d["x0"], d["x1"]) for d in theirs["digits"]]
    assert mine["centres"] == theirs["centres"] and mine["rejected"] == theirs["rejected"]
    assert abs(mine["confidence"] - theirs["confidence"]) <= 1e-4
    assert np.abs(np.array(mine["columns"]) - np.array(theirs["columns"])).max() <= 1e-4


def _figure_drawn(pg, reading: dict) -> None:
    """The columns figure: the strip 3-6x, a heatmap cell per column and class, the path."""
    size = pg.evaluate("() => { const c = document.getElementById('columns');"
                       " return [c.width, c.height]; }")
    k = (size[0] - 28) / reading["strip"]["width"]
    assert k in (3, 4, 5, 6) and size[1] > 28 * k + 12 * 11, (size, k)
    # The path's cells are outlined in the accent colour: some pixel of it is on the figure.
    assert pg.evaluate("""() => { const c = document.getElementById('columns');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) if (d[i] === 214 && d[i + 1] === 87) return true;
        return false; }""")
    shown = pg.locator("#number-text").inner_text().strip()
    assert shown == (reading["text"] or "(nothing)")
    # Pointing at the first column's cells says its top class, its probability and the path's.
    first = np.array(reading["columns"][0])
    pg.hover("#columns", position={"x": 28 + k * reading["centres"][0] + 1, "y": 5})
    top = CLASSES[int(first.argmax())]
    name = "none" if top == "none" else f"'{top}'"
    assert pg.locator("#columns-readout").inner_text().startswith(
        f"column 0 (centred at x = {reading['centres'][0]:g} px of the line): top {name} "
        f"{100 * first.max():.1f}%"), pg.locator("#columns-readout").inner_text()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _open(browser, url: str):
    pg = browser.new_page(viewport={"width": 1300, "height": 900})
    pg.set_default_timeout(20_000)
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.goto(url)
    pg.wait_for_selector("body[data-state=ready]")
    pg.click("#mode-number")
    assert pg.locator("#wide").is_visible() and pg.locator("#pad").is_hidden()
    return pg


def test_a_number_written_on_both_pages_is_read_alike(browser, predictor, reader_weights,
                                                      tmp_path):
    from lenet.inference.webexport import export_web

    strokes = _strokes(NUMBER)
    site_dir = export_web("lenet5", tmp_path / "site", reader=reader_weights)
    with serving(predictor, reader=reader_weights) as server, static_files(site_dir) as site:
        served = _open(browser, server + "/")
        _write(served, strokes)
        want = _read_on_server(server, _pad_png(served))
        on_server = _wait_shown(served, want)
        _same_reading(on_server, want)
        _figure_drawn(served, on_server)
        zipped = _read_on_server(server, _pad_png(served), pattern="zip")
        served.evaluate("() => { window.lenetNumber = null; }")  # wait for the new answer
        served.select_option("#pattern", "zip")  # read again, as a zip code: five digits
        _same_reading(_wait_shown(served, zipped), zipped)
        assert len(zipped["text"]) == 5

        static = _open(browser, site + "/index.html")
        assert static.locator("body").get_attribute("data-mode") == "static"
        requested: list[str] = []
        static.on("request", lambda req: requested.append(req.url))
        _write(static, strokes)
        png = _pad_png(static)
        assert png == _pad_png(served)  # the same strokes make the same drawing
        local = _wait_shown(static, want)
        _same_reading(local, want)
        _figure_drawn(static, local)
        static.evaluate("() => { window.lenetNumber = null; }")
        static.select_option("#pattern", "zip")
        _same_reading(_wait_shown(static, zipped), zipped)
        assert all(u.startswith(site + "/") and "/api/" not in u for u in requested), requested
        assert local["text"] == NUMBER, (local["text"], local["confidence"])

        # Clearing forgets the answer; a blank pad is not sent.
        static.click("#wide-clear")
        static.wait_for_selector("body[data-number=cleared]")
        assert static.locator("#number-text").inner_text().strip() == "–"
        assert served.errors == [] and static.errors == [], (served.errors, static.errors)
        served.close()
        static.close()
