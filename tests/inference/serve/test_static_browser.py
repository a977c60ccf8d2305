"""The page `lenet export --format web` writes, in a real headless Chromium, served by a plain
static file server: it answers what the real server's /api/activations answers for the same
drawing (the same 28x28 digit, the same answer, every layer to 1e-4), draws every layer, and
asks nothing of any server but its own files."""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.chromium import chromium, requires_chromium
from tests.inference.serve.conftest import serving
from tests.inference.serve.test_browser import _ONE, _SEVEN, _ZERO, _draw, _layers_match, _pad_png

pytestmark = requires_chromium


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # the test output stays readable
        pass


@contextlib.contextmanager
def static_files(folder: Path) -> Iterator[str]:
    """A plain static file server (python's http.server) for `folder` on 127.0.0.1."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=15)
    assert not thread.is_alive(), "the static file server did not stop within 15 s"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _weights(name: str, root: Path) -> str:
    """Bundled weights by name, or (mlp: none are bundled) untrained seeded weights."""
    if name != "mlp":
        return name
    import torch

    from lenet.models import create, weights
    from lenet.models.registry import get_spec

    torch.manual_seed(0)
    meta = weights.WeightsMeta(name, get_spec(name).preprocessing, "mnist",
                               [str(i) for i in range(10)])
    return str(weights.save(root / f"{name}.safetensors", create(name), meta))


# The page's own answer for what is on the pad now, computed by its own scripts.
_LOCAL_ANSWER = """() => {
    const pad = document.getElementById('pad');
    const data = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data;
    const d = LenetMnist.preprocess(LenetMnist.grayFromImage(data, pad.width, pad.height),
                                    pad.width, pad.height);
    return LenetForward.run(LenetForward.load(window.LENET_MODEL), d.digit); }"""

_SHOWN = """([label, pixels]) => {
    if (document.body.dataset.state !== 'predicted') return false;
    if (document.getElementById('prediction').textContent.trim() !== label) return false;
    const d = document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data;
    for (let i = 0; i < 784; i++) if (d[4 * i] !== pixels[i]) return false;
    return true; }"""


def _same_answer(local: dict, server: dict) -> None:
    """The same digit and answer; every layer (and the RBF distances) to 1e-4."""
    assert local["preprocessed"] == server["preprocessed"]
    assert (local["digit"], local["label"], local["unsure"], local["no_digit"]) == \
        (server["digit"], server["label"], server["unsure"], server["no_digit"])
    assert [la["name"] for la in local["layers"]] == [la["name"] for la in server["layers"]]
    for mine, theirs in zip(local["layers"], server["layers"], strict=True):
        assert (mine["kind"], mine["shape"], mine["reads"]) == \
            (theirs["kind"], theirs["shape"], theirs["reads"]), mine["name"]
        diff = np.abs(np.array(mine["values"]) - np.array(theirs["values"], np.float64))
        assert diff.max() <= 1e-4, (mine["name"], diff.max())
    assert np.abs(np.array(local["scores"]) - server["scores"]).max() <= 1e-4
    assert np.abs(np.array(local["probabilities"]) - server["probabilities"]).max() <= 1e-6
    if server.get("rbf"):
        assert local["rbf"]["nearest"] == server["rbf"]["nearest"]
        assert local["rbf"]["codes"] == server["rbf"]["codes"]
        assert np.abs(np.array(local["rbf"]["distances"]) - server["rbf"]["distances"]).max() \
            <= 1e-4
    else:
        assert local.get("rbf") is None


def _only_its_files(requested: list[str], site: str, folder: Path) -> None:
    """Every request went to the static server, for a file of the site; none to an API."""
    assert requested, "nothing was requested"
    for url in requested:
        assert url.startswith(site + "/") and "/api/" not in url, url
        path = url[len(site) + 1:].split("?")[0] or "index.html"
        assert (folder / path).is_file(), url


_READS_DIGITS = ("lenet5", "lenet5-1998", "lenet5-tanh")  # bundled, trained on MNIST
_THREE_DIGITS = ("lenet5", "lenet5-1998", "mlp")  # the others draw one (time)


@pytest.mark.parametrize("name", ["lenet5", "lenet5-1998", "lenet5-tanh", "lenet5-sigmoid",
                                  "mlp"])
def test_static_page_answers_as_the_server_does(browser, tmp_path, name):
    from lenet.inference.predict import Predictor
    from lenet.inference.webexport import export_web

    weights = _weights(name, tmp_path)
    site_dir = export_web(weights, tmp_path / "site")
    with static_files(site_dir) as site, serving(Predictor.load(weights)) as server:
        pg = browser.new_page(viewport={"width": 1100, "height": 720})
        pg.set_default_timeout(20_000)
        requested, errors = [], []
        pg.on("request", lambda req: requested.append(req.url))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(site + "/")
        pg.wait_for_selector("body[data-state=ready]")
        assert pg.locator("body").get_attribute("data-mode") == "static"
        assert pg.locator("footer[data-static-only]").is_visible()
        assert pg.locator("footer[data-server-only]").is_hidden()
        drawn = (("1", _ONE), ("7", _SEVEN), ("0", _ZERO))
        for digit, stroke in drawn if name in _THREE_DIGITS else drawn[1:2]:
            pg.click("#clear")
            pg.wait_for_selector("body[data-state=cleared]")
            _draw(pg, stroke)
            local = pg.evaluate(_LOCAL_ANSWER)
            pg.wait_for_function(_SHOWN, arg=[local["label"], local["preprocessed"]])
            r = httpx.post(server + "/api/activations", timeout=60,
                           files={"file": ("pad.png", _pad_png(pg), "image/png")})
            assert r.status_code == 200, r.text
            _same_answer(local, r.json())
            if name in _READS_DIGITS:  # trained on MNIST: the drawn digit is read right
                assert local["label"] == digit, (local["label"], local["confidence"])
            _layers_match(pg, local)
            if local.get("rbf"):
                assert pg.locator("#rbf-distances li").count() == 10
        pg.screenshot(path=str(tmp_path / f"lenet-static-{name}.png"), full_page=True)
        _only_its_files(requested, site, site_dir)
        assert errors == [], errors
        pg.close()


def test_static_page_opens_an_image_and_moves_the_sliders(browser, tmp_path, mnist_test):
    """An image file is preprocessed in the page (the server's digit, pixel for pixel); a
    slider without noise gives the server's distorted digit to within one gray level."""
    from benchmarks.loadtest import png_bytes
    from lenet.inference.webexport import export_web

    site_dir = export_web("lenet5", tmp_path / "site")
    images, _ = mnist_test
    png = png_bytes(255 - images[0], "RGB", 84)  # a dark-on-light scan of a 7
    with static_files(site_dir) as site, serving("lenet5") as server:
        pg = browser.new_page(viewport={"width": 1100, "height": 720})
        pg.set_default_timeout(20_000)
        pg.goto(site + "/")
        pg.wait_for_selector("body[data-state=ready]")
        want = httpx.post(server + "/api/activations", timeout=60,
                          files={"file": ("scan.png", png, "image/png")}).json()
        pg.set_input_files("#file", files=[{"name": "scan.png", "mimeType": "image/png",
                                            "buffer": png}])
        pg.wait_for_function(_SHOWN, arg=[want["label"], want["preprocessed"]])
        assert pg.locator("#steps figcaption").all_inner_texts() == \
            [s["name"] for s in want["steps"]]
        turned = httpx.post(server + "/api/activations", timeout=60, json={
            "pixels": want["original"], "preprocess": False,
            "transform": {"rotate": 30, "stroke": 1}}).json()
        pg.fill("#t-rotate", "30")
        pg.fill("#t-stroke", "1")
        pg.wait_for_function("""(want) => {
            const d = document.getElementById('seen').getContext('2d')
                .getImageData(0, 0, 28, 28).data;
            for (let i = 0; i < 784; i++) if (Math.abs(d[4 * i] - want[i]) > 1) return false;
            return document.body.dataset.state === 'predicted'; }""", arg=turned["preprocessed"])
        pg.close()


def test_static_page_opens_as_a_file_too(browser, tmp_path):
    """model.js is a script, not a fetch: the page works from file://, with no server at all."""
    from lenet.inference.webexport import export_web

    site_dir = export_web("lenet5", tmp_path / "site")
    pg = browser.new_page(viewport={"width": 1100, "height": 720})
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto((site_dir / "index.html").as_uri())
    pg.wait_for_selector("body[data-state=ready]")
    _draw(pg, _SEVEN)
    local = pg.evaluate(_LOCAL_ANSWER)
    pg.wait_for_function(_SHOWN, arg=[local["label"], local["preprocessed"]])
    assert local["label"] == "7" and errors == [], errors
    pg.close()
