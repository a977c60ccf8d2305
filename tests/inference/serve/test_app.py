"""The JSON API: predictions from uploads and pixels, and every limit answered in JSON."""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from benchmarks.loadtest import png_bytes
from lenet.inference.serve.app import MAX_BODY as MAX_BODY_BYTES
from lenet.inference.serve.app import STATIC, create_app


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor), base_url="http://localhost",
                    raise_server_exceptions=False) as c:
        yield c


_png = png_bytes


def _json_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert detail
    return json.dumps(detail)


def test_health_model_and_docs(client, run_dir):
    from lenet.models import weights

    assert client.get("/healthz").json() == {"status": "ok"}
    m = client.get("/api/model").json()
    _, meta = weights.read(run_dir)
    assert m["name"] == "lenet5" and m["accuracy"] == meta.test_accuracy
    assert m["preprocessing"] == meta.preprocessing.to_dict() and len(m["classes"]) == 10
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/model", "/healthz"} <= set(spec["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/docs.js" in docs.text
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="pad" width="280" height="280"' in page.text


def test_page_and_assets_need_no_network(client):
    names = [p.name for p in STATIC.iterdir()]
    assert {"index.html", "app.js", "style.css", "docs.html", "docs.js"} <= set(names)
    for name in names:
        text = (STATIC / name).read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), name
        assert not re.search(r"(fetch\(|url\(|import )\s*[\"']?(https?:)?//", text), name
        assert client.get(f"/static/{name}").status_code == 200


def test_predict_uploaded_dark_on_light_digits(client, mnist_test):
    images, labels = mnist_test
    correct = 0
    for i in range(20):
        r = client.post("/api/predict",
                        files={"file": (f"{i}.png", _png(255 - images[i], "RGB", 84),
                                        "image/png")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert abs(sum(body["probabilities"]) - 1) < 1e-6 and len(body["probabilities"]) == 10
        assert body["digit"] == int(np.argmax(body["probabilities"]))
        assert len(body["preprocessed"]) == 784 and max(body["preprocessed"]) == 255
        fm = body["feature_maps"]
        assert fm["layer"] == "c1" and fm["shape"] == [6, 28, 28] and len(fm["maps"]) == 6
        correct += body["digit"] == labels[i]
    assert correct >= 17


def test_predict_pixels_and_raw_body_match_the_model(client, predictor, mnist_test):
    images, _ = mnist_test
    for i in range(5):
        r = client.post("/api/predict", json={"pixels": images[i].reshape(-1).tolist()})
        assert r.status_code == 200, r.text
        body = r.json()
        digit = np.array(body["preprocessed"], np.uint8).reshape(1, 28, 28)
        expected = predictor.predict(digit)[0]
        assert body["digit"] == expected.index
        assert np.allclose(body["probabilities"], expected.probabilities, atol=1e-6)
        raw = client.post("/api/predict", content=_png(images[i]),
                          headers={"content-type": "image/png"})
        assert raw.status_code == 200 and raw.json()["preprocessed"] == body["preprocessed"]


def test_body_over_2mb_is_413(client):
    big = b"\x00" * (2 * 1024 * 1024 + 1)
    assert "limit" in _json_error(
        client.post("/api/predict", files={"file": ("big.png", big, "image/png")}), 413)

    def chunks():  # no Content-Length: the streamed size is what counts
        for _ in range(3):
            yield b"\x00" * (1024 * 1024)

    assert "limit" in _json_error(client.post(
        "/api/predict", content=chunks(), headers={"content-type": "image/png"}), 413)


def test_image_over_50_megapixels_is_413(client):
    buf = io.BytesIO()
    Image.new("1", (8000, 6300), 1).save(buf, format="PNG")
    assert len(buf.getvalue()) < 2 * 1024 * 1024
    assert "megapixels" in _json_error(client.post(
        "/api/predict", files={"file": ("huge.png", buf.getvalue(), "image/png")}), 413)


def test_non_image_is_415(client):
    assert "not an image" in _json_error(client.post(
        "/api/predict", files={"file": ("a.png", b"just text", "image/png")}), 415)
    assert "content type" in _json_error(client.post(
        "/api/predict", content=b"hello", headers={"content-type": "text/plain"}), 415)


def _lab_tiff() -> bytes:
    arr = np.full((40, 40, 3), 255, np.uint8)
    arr[8:32, 18:22] = 0  # a dark "1"
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").convert("LAB").save(buf, format="TIFF")
    return buf.getvalue()


def test_an_image_mode_without_grayscale_is_415(client):
    lab = _lab_tiff()
    assert Image.open(io.BytesIO(lab)).mode == "LAB"
    for r in (client.post("/api/predict", files={"file": ("lab.tif", lab, "image/tiff")}),
              client.post("/api/predict", content=lab, headers={"content-type": "image/tiff"})):
        assert "unsupported image mode LAB" in _json_error(r, 415)
    # The modes Pillow does convert are still answered.
    for mode in ("CMYK", "YCbCr"):
        buf = io.BytesIO()
        Image.open(io.BytesIO(lab)).convert("RGB").convert(mode).save(buf, format="TIFF")
        r = client.post("/api/predict", files={"file": (f"{mode}.tif", buf.getvalue(),
                                                        "image/tiff")})
        assert r.status_code == 200 and r.json()["digit"] in range(10), (mode, r.text)


def test_an_unforeseen_decoder_failure_is_422_not_500(client, monkeypatch):
    import lenet.inference.preprocess as P

    def boom(img, name="image"):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(P, "to_grayscale", boom)
    r = client.post("/api/predict", files={"file": ("d.png", _png(np.eye(28, dtype=np.uint8)
                                                                  * 255), "image/png")})
    assert "cannot process this image (RuntimeError: decoder exploded)" in _json_error(r, 422)


@pytest.mark.parametrize("body,needle", [
    (b"{not json", "malformed JSON"),
    (b"[1, 2, 3]", "pixels"),
    (json.dumps({"pixels": [0] * 783}).encode(), "784"),
    (json.dumps({"pixels": [[0] * 28] * 28}).encode(), "flat list"),
    (json.dumps({"pixels": ["a"] * 784}).encode(), "flat list"),
    (json.dumps({"pixels": [999] * 784}).encode(), "0..255"),
    (json.dumps({"pixels": [0] * 784}).encode(), "no ink"),
])
def test_bad_json_is_422(client, body, needle):
    r = client.post("/api/predict", content=body, headers={"content-type": "application/json"})
    assert needle in _json_error(r, 422)


def test_bad_multipart_and_blank_image_are_422(client):
    no_file = (b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n")
    r = client.post("/api/predict", content=no_file,
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert "file" in _json_error(r, 422)
    blank = _png(np.full((40, 40), 255, np.uint8))
    assert "no ink" in _json_error(client.post(
        "/api/predict", files={"file": ("blank.png", blank, "image/png")}), 422)


def test_unknown_route_and_method_are_json(client):
    _json_error(client.get("/nope"), 404)
    _json_error(client.get("/api/predict"), 405)


class _SlowPredictor:
    """Wraps the real predictor; each inference takes `delay` seconds, or, given `release`,
    blocks until that event is set; the inferences running at once are counted."""

    def __init__(self, inner, delay: float, release: threading.Event | None = None) -> None:
        self.inner, self.delay, self.release = inner, delay, release
        self.running = self.peak = self.calls = 0
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict_digits(self, digits):  # what the server calls (MNIST-style uint8 digits)
        with self.lock:
            self.running += 1
            self.calls += 1
            self.peak = max(self.peak, self.running)
        try:
            if self.release is not None:
                assert self.release.wait(60), "the test never released the inference"
            else:
                time.sleep(self.delay)
            return self.inner.predict_digits(digits)
        finally:
            with self.lock:
                self.running -= 1


def _slow_app(predictor, delay, release=None, **kw):
    from lenet.inference.predict import Predictor

    slow = _SlowPredictor(predictor, delay, release)
    p = Predictor(predictor.model_name, predictor.classes, predictor.preprocessing,
                  predictor.test_accuracy, predictor.dataset, model=predictor.model)
    p.predict_digits = slow.predict_digits  # type: ignore[method-assign]
    return create_app(p, **kw), slow


def test_inference_is_off_the_event_loop_and_bounded(predictor, mnist_test):
    images, _ = mnist_test
    release = threading.Event()  # inference blocks until the test lets it go
    app, slow = _slow_app(predictor, 0.0, release, max_in_flight=2, queue_timeout=60)
    payload = {"pixels": images[0].reshape(-1).tolist()}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as ac:
            posts = [asyncio.create_task(ac.post("/api/predict", json=payload))
                     for _ in range(6)]
            try:
                async def two_running() -> None:
                    while slow.running < 2:
                        await asyncio.sleep(0.01)

                await asyncio.wait_for(two_running(), timeout=30)
                # Both inference slots are taken and blocked: /healthz must still answer.
                health = await asyncio.wait_for(ac.get("/healthz"), timeout=30)
                busy = slow.running
            finally:
                release.set()
            done = await asyncio.wait_for(asyncio.gather(*posts), timeout=60)
            return health, busy, done

    health, busy, done = asyncio.run(scenario())
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert busy == 2  # it answered while both inferences were still in flight
    assert [r.status_code for r in done] == [200] * 6
    assert slow.peak == 2  # never more than max_in_flight at once


def test_waiting_too_long_is_503(predictor, mnist_test):
    images, _ = mnist_test
    app, _ = _slow_app(predictor, 1.0, max_in_flight=1, queue_timeout=0.2)
    payload = {"pixels": images[0].reshape(-1).tolist()}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as ac:
            return await asyncio.wait_for(asyncio.gather(
                *(ac.post("/api/predict", json=payload) for _ in range(2))), timeout=30)

    answers = sorted(asyncio.run(scenario()), key=lambda r: r.status_code)
    assert [r.status_code for r in answers] == [200, 503]
    assert answers[1].headers["retry-after"] == "1" and "busy" in answers[1].json()["detail"]


async def _wait_until(check, timeout: float = 30.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)

async def _two_posts(app, slow, release: threading.Event, png: bytes):
    """Two PNG posts at once to `app`, whose predictor `slow` waits for `release`: how many
    ran at once (read after the second had time to start, were it let), and both answers."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as ac:
        posts = [asyncio.create_task(ac.post("/api/predict", content=png,
                                             headers={"content-type": "image/png"}))
                 for _ in range(2)]
        try:
            await _wait_until(lambda: slow.running == 1)
            await asyncio.sleep(0.3)  # time enough for the second to start, were it let
            running = slow.running
        finally:
            release.set()
        return running, await asyncio.wait_for(asyncio.gather(*posts), 60)


def test_a_full_queue_is_503_at_once(predictor, mnist_test):
    images, _ = mnist_test
    release = threading.Event()
    app, slow = _slow_app(predictor, 0.0, release, max_in_flight=1, max_queued=2,
                          queue_timeout=60)
    payload = {"pixels": images[0].reshape(-1).tolist()}

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as ac:
            first = [asyncio.create_task(ac.post("/api/predict", json=payload))
                     for _ in range(2)]  # one running, one waiting for its turn
            try:
                await _wait_until(lambda: slow.running == 1)
                await asyncio.sleep(0.2)
                t0 = time.monotonic()
                third = await asyncio.wait_for(ac.post("/api/predict", json=payload), 30)
                waited = time.monotonic() - t0
            finally:
                release.set()
            return third, waited, await asyncio.wait_for(asyncio.gather(*first), 60)

    third, waited, first = asyncio.run(scenario())
    assert third.status_code == 503 and third.headers["retry-after"] == "1", third.text
    assert "2 requests already in progress" in third.json()["detail"]
    assert waited < 5  # refused at once, not after queue_timeout
    assert [r.status_code for r in first] == [200, 200]


def test_no_work_for_a_client_that_left_while_waiting(predictor, mnist_test):
    images, _ = mnist_test
    release = threading.Event()
    app, slow = _slow_app(predictor, 0.0, release, max_in_flight=1, queue_timeout=60)
    body = json.dumps({"pixels": images[0].reshape(-1).tolist()}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/api/predict", "root_path": "",
             "raw_path": b"/api/predict", "query_string": b"", "server": ("localhost", 80),
             "client": ("127.0.0.1", 50000),
             "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:  # the whole body, then the client is gone
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as ac:
            first = asyncio.create_task(ac.post("/api/predict", content=body,
                                                headers={"content-type": "application/json"}))
            try:
                await _wait_until(lambda: slow.running == 1)
                gone = asyncio.create_task(app(scope, receive, send))
                await asyncio.sleep(0.3)  # it has read its body and waits for the only slot
            finally:
                release.set()
            await asyncio.wait_for(gone, 30)
            return await asyncio.wait_for(first, 30)

    assert asyncio.run(scenario()).status_code == 200
    assert slow.calls == 1  # the second request never reached the network
    assert sent and sent[0]["status"] == 400  # answered to nobody, and quietly


def test_big_images_are_decoded_one_at_a_time(predictor):
    """Two images whose pixels together exceed the budget (max_pixels) take turns, even with
    free inference slots; once the first is done the second runs."""
    release = threading.Event()
    app, slow = _slow_app(predictor, 0.0, release, max_in_flight=4, max_pixels=100_000,
                          queue_timeout=60)
    digit = np.zeros((300, 300), np.uint8)
    digit[60:240, 130:170] = 255  # 90,000 pixels: two of them are over the budget
    png = _png(digit)

    running, done = asyncio.run(_two_posts(app, slow, release, png))
    assert running == 1 and slow.peak == 1
    assert [r.status_code for r in done] == [200, 200]


def test_pixel_cap_is_read_from_the_header_before_decoding(predictor, monkeypatch):
    import lenet.inference.serve.answers as A

    def never(*a, **kw):
        raise AssertionError("an image over the pixel cap was decoded")

    monkeypatch.setattr(A, "preprocess_image", never)
    with TestClient(create_app(predictor, max_pixels=10_000), base_url="http://localhost",
                    raise_server_exceptions=False) as c:
        r = c.post("/api/predict", content=_png(np.full((200, 200), 255, np.uint8)),
                   headers={"content-type": "image/png"})
    assert "200x200 = 0.0 megapixels; the limit is 0.01 megapixels" in _json_error(r, 413)


SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
            "referrer-policy": "no-referrer"}


def _secured(r: httpx.Response) -> httpx.Response:
    for name, value in SECURITY.items():
        assert r.headers.get(name) == value, (r.request.url, name, r.headers)
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp, csp
    return r


def test_security_headers_on_every_response(client, predictor, monkeypatch):
    assert _secured(client.get("/")).status_code == 200
    assert _secured(client.get("/docs")).status_code == 200
    assert _secured(client.get("/static/app.js")).status_code == 200
    assert _secured(client.get("/api/model")).status_code == 200
    assert _secured(client.get("/openapi.json")).status_code == 200
    assert _secured(client.get("/nope")).status_code == 404
    assert _secured(client.get("/api/predict")).status_code == 405
    assert _secured(client.post("/api/predict", content=b"x",
                                headers={"content-type": "text/plain"})).status_code == 415
    assert _secured(client.get("/", headers={"host": "evil.example"})).status_code == 400
    monkeypatch.setattr(predictor, "info", lambda: 1 / 0)  # a bug: the 500 is secured too
    with TestClient(create_app(predictor), base_url="http://localhost",
                    raise_server_exceptions=False) as c:
        assert _json_error(_secured(c.get("/api/model")), 500) == \
            '"internal error (logged on the server)"'


def test_inline_blocks_are_allowed_by_hash_only(client):
    csp = client.get("/").headers["content-security-policy"]
    style = re.search(r"style-src ([^;]*)", csp).group(1).split()
    script = re.search(r"script-src ([^;]*)", csp).group(1).split()
    assert script == ["'self'"]  # the pages have no inline script
    inline = re.findall(r"<style>(.*?)</style>", (STATIC / "docs.html").read_text(), re.S)
    assert style[0] == "'self'" and len(style) == 1 + len(inline)
    assert all(s.startswith("'sha256-") for s in style[1:])


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8000", "127.0.0.1", "127.0.0.1:80",
                                  "[::1]", "[::1]:8000"])
def test_local_host_names_are_answered(client, host):
    assert client.get("/healthz", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example",
                                  "localhost.", "[::2]:80", ""])
def test_other_host_names_are_refused_without_echo(client, host):
    r = client.get("/", headers={"host": host})
    detail = _json_error(r, 400)
    assert "--allowed-host" in detail and "location" not in r.headers
    assert "evil" not in detail and "::2" not in detail and "localhost." not in detail


def test_allowed_hosts_are_configurable(predictor):
    app = create_app(predictor, allowed_hosts=["digits.example"])
    with TestClient(app, base_url="http://digits.example") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"host": "localhost"}).status_code == 400
    with TestClient(create_app(predictor, allowed_hosts=["*"]), base_url="http://any") as c:
        assert c.get("/healthz").status_code == 200


def test_default_hosts_add_the_bound_address_but_no_wildcard():
    from lenet.inference.serve.app import default_hosts

    assert default_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "::1"]
    assert default_hosts("0.0.0.0") == default_hosts("::") == default_hosts("127.0.0.1")
    assert default_hosts("192.168.1.5")[-1] == "192.168.1.5"
    assert default_hosts("[fe80::1]")[-1] == "fe80::1"


def test_no_redirect_echoes_the_host(client):
    for path in ("/docs/", "/static", "/api/model/"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 404 and "location" not in r.headers, (path, r.headers)


def test_listen_refuses_a_port_in_use():
    from lenet.errors import ConfigError
    from lenet.inference.serve.app import listen

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError) as e:
            listen("127.0.0.1", port)
    assert str(e.value) == f"port {port} on 127.0.0.1 is in use; choose another with --port"
    sock = listen("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()
    with pytest.raises(ConfigError, match=r"--host no-such-host\.invalid"):
        listen("no-such-host.invalid", 0)


def test_real_uvicorn_server(live_server, mnist_test):
    images, labels = mnist_test
    with httpx.Client(base_url=live_server, timeout=30) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        r = c.post("/api/predict", files={"file": ("d.png", _png(255 - images[0], "RGB", 84),
                                                   "image/png")})
        assert r.status_code == 200 and r.json()["digit"] == labels[0]
        big = c.post("/api/predict", content=b"\x00" * (3 * 1024 * 1024),
                     headers={"content-type": "image/png"})
        assert big.status_code == 413 and "limit" in big.json()["detail"]


# --------------------------------------------------------------------------- /api/activations
_LENET5_LAYERS = [("input", "input", [1, 28, 28]), ("c1", "conv", [6, 28, 28]),
                  ("s2", "pool", [6, 14, 14]), ("c3", "conv", [16, 10, 10]),
                  ("s4", "pool", [16, 5, 5]), ("c5", "linear", [120]), ("f6", "linear", [84]),
                  ("output", "output", [10])]


def _layers(body: dict) -> list[tuple]:
    return [(la["name"], la["kind"], la["shape"]) for la in body["layers"]]


def _by_hand_lenet5(model, x):
    """lenet5's layers computed without hooks: each one's activated output."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        c1 = F.relu(model.c1(x))
        s2 = F.max_pool2d(c1, 2)
        c3 = F.relu(model.c3(s2))
        s4 = F.max_pool2d(c3, 2)
        c5 = F.relu(model.c5(s4.flatten(1)))
        f6 = F.relu(model.f6(c5))
        return [x, c1, s2, c3, s4, c5, f6, model.output(f6)]


def test_activations_match_the_model_run_directly(client, predictor, mnist_test):
    import torch

    images, _ = mnist_test
    r = client.post("/api/activations", json={"pixels": images[3].reshape(-1).tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert _layers(body) == _LENET5_LAYERS and body["model"] == "lenet5"
    # The same answer as /api/predict for the same input.
    plain = client.post("/api/predict", json={"pixels": images[3].reshape(-1).tolist()}).json()
    for key in ("digit", "label", "probabilities", "preprocessed", "classes"):
        assert body[key] == plain[key], key
    assert body["original"] == body["preprocessed"] and body["steps"] == []
    digit = np.array(body["preprocessed"], np.uint8).reshape(1, 28, 28)
    x = predictor.preprocessing(torch.from_numpy(digit))
    for layer, want in zip(body["layers"], _by_hand_lenet5(predictor.model, x), strict=True):
        got = np.array(layer["values"]).reshape(layer["shape"])
        assert np.abs(got - want[0].numpy()).max() <= 1e-4, layer["name"]
        assert layer["omitted"] is False
    assert np.abs(np.array(body["scores"]) - predictor.scores(digit)[0]).max() <= 1e-4
    assert body["layers"][1]["reads"]["table"] == [[0]] * 6 and "rbf" not in body
    assert len(r.content) < 150_000


@pytest.fixture(scope="module")
def other_models(tmp_path_factory):
    """Untrained lenet5-1998 and mlp weights (shapes and wiring, not accuracy)."""
    import torch

    from lenet.models import create, weights
    from lenet.models.registry import get_spec

    root = tmp_path_factory.mktemp("other-models")
    paths = {}
    for name in ("lenet5-1998", "mlp"):
        torch.manual_seed(0)
        meta = weights.WeightsMeta(name, get_spec(name).preprocessing, "mnist",
                                   [str(i) for i in range(10)])
        paths[name] = weights.save(root / f"{name}.safetensors", create(name), meta)
    return paths


def _activations_of(path, pixels: list[int]) -> tuple[dict, object]:
    from lenet.inference.predict import Predictor

    p = Predictor.load(path)
    with TestClient(create_app(p), base_url="http://localhost") as c:
        r = c.post("/api/activations", json={"pixels": pixels})
    assert r.status_code == 200, r.text
    return r.json(), p


def test_activations_of_lenet5_1998_with_c3_table_and_rbf(other_models, mnist_test):
    import torch

    from lenet.models.lenet1998 import C3_TABLE, rbf_codes, squash

    images, _ = mnist_test
    body, p = _activations_of(other_models["lenet5-1998"], images[0].reshape(-1).tolist())
    assert _layers(body) == [("input", "input", [1, 32, 32]), ("c1", "conv", [6, 28, 28]),
                             ("s2", "pool", [6, 14, 14]), ("c3", "conv", [16, 10, 10]),
                             ("s4", "pool", [16, 5, 5]), ("c5", "conv", [120, 1, 1]),
                             ("f6", "linear", [84]), ("output", "rbf", [10])]
    c3 = body["layers"][3]["reads"]
    assert c3["sparse"] is True and c3["table"] == [sorted(t) for t in C3_TABLE]
    m = p.model
    x = p.preprocessing(torch.tensor(body["preprocessed"], dtype=torch.uint8).reshape(1, 28, 28))
    with torch.no_grad():
        s2 = squash(m.s2(squash(m.c1(x))))
        c5 = squash(m.c5(squash(m.s4(squash(m.c3(s2))))))
        f6 = squash(m.f6(c5.flatten(1)))
    assert np.abs(np.array(body["layers"][6]["values"]) - f6[0].numpy()).max() <= 1e-4
    rbf = body["rbf"]
    assert rbf["shape"] == [12, 7] and rbf["codes"] == rbf_codes().tolist()
    want = (f6[0] - rbf_codes()).square().sum(1).sqrt().numpy()
    assert np.abs(np.array(rbf["distances"]) - want).max() <= 1e-4
    assert rbf["nearest"] == int(want.argmin()) == body["digit"] and rbf["features"] == "f6"


def test_activations_of_an_mlp(other_models, mnist_test):
    import torch

    images, _ = mnist_test
    body, p = _activations_of(other_models["mlp"], images[1].reshape(-1).tolist())
    assert [(k, s) for _, k, s in _layers(body)] == [
        ("input", [1, 28, 28]), ("linear", [300]), ("linear", [100]), ("output", [10])]
    x = p.preprocessing(torch.tensor(body["preprocessed"], dtype=torch.uint8).reshape(1, 28, 28))
    with torch.no_grad():
        h1 = torch.relu(p.model.net[1](x.flatten(1)))
    assert np.abs(np.array(body["layers"][1]["values"]) - h1[0].numpy()).max() <= 1e-4
    assert body["layers"][1]["reads"] == {"type": "dense"} and "rbf" not in body


def test_activations_transform_upload_steps_and_raw_pixels(client, mnist_test):
    from lenet.inference.preprocess import preprocess_image
    from lenet.inference.serve.digits import Transform, apply

    images, _ = mnist_test
    png = _png(255 - images[5], "RGB", 84)
    t = {"rotate": 20, "shift_x": 2, "stroke": 1}
    r = client.post("/api/activations", files={"file": ("d.png", png, "image/png")},
                    data={"transform": json.dumps(t)})
    assert r.status_code == 200, r.text
    body = r.json()
    original = np.array(body["original"], np.uint8).reshape(28, 28)
    assert np.array_equal(original, preprocess_image(png))  # exactly like `lenet predict`
    assert body["preprocessed"] == apply(original, Transform.parse(t)).reshape(-1).tolist()
    assert body["transform"] == Transform.parse(t).to_dict()
    assert body["steps"][0]["name"] == "grayscale" and len(body["steps"]) == 4
    # The network input is the transformed digit, as the model's preprocessing makes it.
    assert body["layers"][0]["values"][:3] == [-1.0, -1.0, -1.0]
    # "preprocess": false feeds the pixels as they are (here: the transformed digit again).
    again = client.post("/api/activations", json={"pixels": body["preprocessed"],
                                                  "preprocess": False}).json()
    assert again["original"] == again["preprocessed"] == body["preprocessed"]
    assert again["layers"] == body["layers"] and again["digit"] == body["digit"]
    raw = client.post("/api/activations", content=png, headers={"content-type": "image/png"})
    assert raw.status_code == 200 and raw.json()["original"] == body["original"]


@pytest.mark.parametrize("kwargs,status,needle", [
    ({"content": b"\x00" * (MAX_BODY_BYTES + 1), "headers": {"content-type": "image/png"}},
     413, "limit"),
    ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "content type"),
    ({"files": {"file": ("x.png", b"not an image", "image/png")}}, 415, "not an image"),
    ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 422, "malformed"),
    ({"json": {"pixels": [0] * 783}}, 422, "784"),
    ({"json": {"pixels": [0] * 784}}, 422, "no ink"),
    ({"json": {"pixels": [255] * 784, "preprocess": "no"}}, 422, "preprocess"),
    ({"json": {"pixels": [0] * 784, "transform": {"spin": 1}}}, 422, "unknown field"),
    ({"json": {"pixels": [0] * 784, "transform": {"rotate": 1000}}}, 422, "-180..180"),
    ({"files": {"file": ("d.png", _png(np.eye(28, dtype=np.uint8) * 255), "image/png")},
      "data": {"transform": "{bad json"}}, 422, "malformed JSON"),
    ({"files": {"file": ("d.png", _png(np.eye(28, dtype=np.uint8) * 255), "image/png")},
      "data": {"transform": "[1]"}}, 422, "must be an object"),
])
def test_activations_bad_input_is_4xx(client, kwargs, status, needle):
    assert needle in _json_error(client.post("/api/activations", **kwargs), status)


def test_activations_are_documented_with_their_size_bound(client):
    op = client.get("/openapi.json").json()["paths"]["/api/activations"]["post"]
    assert {"413", "415", "422", "503"} <= set(op["responses"])
    for needle in ("4 decimals", "100,000", "2 MB", "transform", "rotate", "rbf", "table"):
        assert needle in op["description"], needle


def test_activations_need_torch_weights(predictor):
    from lenet.inference.predict import Predictor

    onnx_like = Predictor(predictor.model_name, predictor.classes, predictor.preprocessing,
                          None, "mnist", backend="onnxruntime", model=None)
    with TestClient(create_app(onnx_like), base_url="http://localhost") as c:
        r = c.post("/api/activations", json={"pixels": [255] * 784})
    assert "safetensors" in _json_error(r, 409)


# --------------------------------------------------------------------------- issue 32
def test_images_over_the_memory_budget_take_turns_and_one_over_it_alone_is_413(predictor):
    """Decodes are budgeted by the memory their headers say they will take (decode_cost):
    two that together exceed max_decode_bytes take turns; one alone over it is 413."""
    from lenet.inference.decoding import decode_cost

    digit = np.zeros((300, 300), np.uint8)
    digit[60:240, 130:170] = 255
    png = _png(digit)
    cost = decode_cost(png).bytes
    release = threading.Event()
    app, slow = _slow_app(predictor, 0.0, release, max_in_flight=4, queue_timeout=60,
                          max_decode_bytes=cost * 3 // 2)

    running, done = asyncio.run(_two_posts(app, slow, release, png))
    assert running == 1 and slow.peak == 1
    assert [r.status_code for r in done] == [200, 200]
    with TestClient(create_app(predictor, max_decode_bytes=cost - 1),
                    base_url="http://localhost") as c:
        r = c.post("/api/predict", content=png, headers={"content-type": "image/png"})
    assert "decoding it would take about" in _json_error(r, 413)


def test_formats_lenet_does_not_take_are_415_unopened(client):
    from tests.reliability import bombs

    r = client.post("/api/predict", content=bombs.ico(bombs.png(12000, 12000)),
                    headers={"content-type": "image/x-icon"})
    assert "upload: ICO images are not accepted" in _json_error(r, 415)


def test_range_requests_are_not_served(client):
    whole = client.get("/static/app.js")
    assert whole.headers["accept-ranges"] == "none"
    for value in ("bytes=0-9", "garbage", "bytes=99999999-", "bytes=9-2"):
        r = client.get("/static/app.js", headers={"range": value})
        assert r.status_code == 200 and r.content == whole.content, (value, r.status_code)
        assert "content-range" not in r.headers


def test_an_error_a_library_answers_in_text_is_made_json():
    """Guard turns any non-JSON error body (as a library's own PlainTextResponse) into
    {"detail": ...}, keeping the status and adding the security headers."""
    from starlette.responses import PlainTextResponse

    from lenet.inference.serve.security import Guard, security_headers

    async def plain(scope, receive, send):
        status = 416 if scope["path"] == "/empty" else 400
        await PlainTextResponse("" if status == 416 else "Malformed range header.",
                                status_code=status)(scope, receive, send)

    # Not entered with `with`: that would run a lifespan this bare app does not answer.
    c = TestClient(Guard(plain, security_headers(), ["localhost"]), base_url="http://localhost")
    assert c.get("/x").json() == {"detail": "Malformed range header."}
    r = c.get("/empty")
    assert r.status_code == 416 and r.json() == {"detail": "Requested Range Not Satisfiable"}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-length"] == str(len(r.content))
