"""POST /api/read: a number in (an upload, a raw image body, or JSON pixels of any size), the
reader's answer out, with what the page draws; every kind of junk is a 4xx with a JSON detail,
never a 5xx (a bounded list, then a hypothesis fuzz marked ``fuzz``)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from lenet.data.strings import compose
from lenet.inference.read.line import normalize
from lenet.inference.serve.app import MAX_BODY, create_app
from lenet.inference.serve.reading import MAX_STRIP_SHOWN
from lenet.models.sdnn import CLASSES, SDNN


@pytest.fixture(scope="module")
def client(predictor, reader_weights):
    with TestClient(create_app(predictor, reader=reader_weights), base_url="http://localhost",
                    raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def number(mnist_test) -> tuple[np.ndarray, str]:
    """A five-digit number composed of MNIST test digits at the paper's spacing."""
    images, labels = mnist_test
    picks = [3, 11, 25, 40, 61]
    strip, _ = compose([images[i] for i in picks], [2, 1, 3, 0])
    return strip, "".join(str(int(labels[i])) for i in picks)


def png_bytes(arr: np.ndarray, mode: str = "L") -> bytes:
    """`arr` (uint8, H x W) as a PNG of its own size, in `mode`."""
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def _error(r, status: int | tuple[int, ...]) -> str:
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["detail"]
    return json.dumps(r.json()["detail"])


def test_read_a_photo_of_a_number(client, number):
    strip, text = number
    photo = 255 - np.kron(strip, np.ones((3, 3), np.uint8))  # dark ink on paper, 3x larger
    png = png_bytes(photo, "RGB")
    r = client.post("/api/read", files={"file": ("n.png", png, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == text, (body["text"], body["confidence"])
    assert body["method"] == "sdnn" and 0 <= body["confidence"] <= 1
    assert [d["char"] for d in body["digits"]] == list(text)
    x0s = [d["x0"] for d in body["digits"]]
    assert x0s == sorted(x0s) and all(0 <= d["x0"] < d["x1"] <= photo.shape[1]
                                      for d in body["digits"])
    line = normalize(np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float64))
    assert body["strip"]["width"] == line.width and body["strip"]["height"] == 28
    assert np.array_equal(np.array(body["strip"]["pixels"]).reshape(28, -1), line.strip)
    columns = np.array(body["columns"])
    assert columns.shape == (SDNN().columns(line.width), 12)
    assert np.allclose(columns.sum(1), 1, atol=1e-3)
    assert len(body["path"]) == len(columns) == len(body["centres"])
    assert body["centres"][1] - body["centres"][0] == body["stride"] == 4
    assert body["classes"] == CLASSES and 0 <= body["reject"] <= 1
    assert body["rejected"] == (body["confidence"] < body["reject"])


def test_read_json_pixels_raw_bodies_and_options(client, number):
    strip, text = number
    doc = {"pixels": strip.reshape(-1).tolist(), "width": strip.shape[1], "height": 28}
    plain = client.post("/api/read", json=doc).json()
    assert plain["text"] == text and plain["strip"]["pixels"] == strip.reshape(-1).tolist()
    raw = client.post("/api/read?length=5", content=png_bytes(strip),
                      headers={"content-type": "image/png"})
    assert raw.status_code == 200 and raw.json()["text"] == text
    for options in ({"pattern": "zip"}, {"length": 5}, {"pattern": "d{5}", "length": 5}):
        body = client.post("/api/read", json={**doc, **options}).json()
        assert body["text"] == text, options
    # A constraint no reading of these columns fits: "" with confidence 0, not an error.
    assert client.post("/api/read", json={**doc, "pattern": "amount", "length": 2}).json()[
        "confidence"] == 0.0
    form = client.post("/api/read", files={"file": ("n.png", png_bytes(strip),
                                                    "image/png")}, data={"length": "3"})
    assert form.status_code == 200 and len(form.json()["text"]) == 3
    blank = client.post("/api/read", json={"pixels": [255] * 400, "width": 40, "height": 10})
    assert blank.status_code == 200
    assert (blank.json()["text"], blank.json()["columns"], blank.json()["strip"]["width"]) == \
        ("", None, 0)


def _big_image() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (8000, 6300), 1).save(buf, format="PNG")  # 50.4 megapixels, a small file
    return buf.getvalue()


def _two_lines() -> bytes:
    page = np.full((200, 300), 255, np.uint8)
    page[20:70, 30:270:40] = 0
    page[130:180, 30:270:40] = 0
    return png_bytes(page)


_PIXELS = '"pixels": [0, 255, 0, 255], "width": 2, "height": 2'
JUNK: list[tuple[str, bytes, str | None, int | tuple[int, ...]]] = [
    ("empty image", b"", "image/png", 415),
    ("png signature only", b"\x89PNG\r\n\x1a\n", "image/png", (415, 422)),
    ("not an image", b"%PDF-1.4 hello", "application/octet-stream", 415),
    ("text", b"17042", "text/plain", 415),
    ("no content type", b"{}", None, 415),
    ("json array", b"[]", "application/json", 422),
    ("json without pixels", b"{}", "application/json", 422),
    ("bad json", b'{"pixels": [', "application/json", 422),
    ("nested json", b"[" * 100_000 + b"]" * 100_000, "application/json", 422),
    ("huge integer", b'{"pixels": [1' + b"0" * 5000 + b'], "width": 1, "height": 1}',
     "application/json", 422),
    ("pixels not a list", b'{"pixels": "x", "width": 1, "height": 1}', "application/json", 422),
    ("wrong count", b'{"pixels": [1, 2, 3], "width": 2, "height": 2}', "application/json", 422),
    ("NaN", b'{"pixels": [NaN], "width": 1, "height": 1}', "application/json", 422),
    ("Infinity", b'{"pixels": [Infinity], "width": 1, "height": 1}', "application/json", 422),
    ("over 255", b'{"pixels": [256], "width": 1, "height": 1}', "application/json", 422),
    ("booleans", b'{"pixels": [true], "width": 1, "height": 1}', "application/json", 422),
    ("no width", b'{"pixels": [1]}', "application/json", 422),
    ("width 0", b'{"pixels": [], "width": 0, "height": 5}', "application/json", 422),
    ("width a string", b'{"pixels": [1], "width": "1", "height": 1}', "application/json", 422),
    ("length a word", b"{" + _PIXELS.encode() + b', "length": "five"}', "application/json",
     422),
    ("length negative", b"{" + _PIXELS.encode() + b', "length": -1}', "application/json", 422),
    ("length huge", b"{" + _PIXELS.encode() + b', "length": 1e300}', "application/json", 422),
    ("pattern a number", b"{" + _PIXELS.encode() + b', "pattern": 5}', "application/json", 422),
    ("pattern unreadable", b"{" + _PIXELS.encode() + b', "pattern": "d{"}', "application/json",
     422),
    ("pattern too long", b"{" + _PIXELS.encode() + b', "pattern": "' + b"d" * 200 + b'"}',
     "application/json", 422),
    ("pattern too costly", b"{" + _PIXELS.encode() + b', "length": 64, "pattern": "d{1,64}"}',
     "application/json", 422),
    ("pattern huge repeat", b"{" + _PIXELS.encode() + b', "pattern": "d{1000}d{1000}"}',
     "application/json", 422),
    ("two lines of writing", _two_lines(), "image/png", 422),
    ("50 megapixels", _big_image(), "image/png", 413),
    ("body over 2 MB", b"\x00" * (MAX_BODY + 1), "image/png", 413),
]


@pytest.mark.parametrize("what,body,ctype,status", JUNK, ids=[j[0] for j in JUNK])
def test_junk_is_4xx_never_5xx(client, what, body, ctype, status):
    headers = {} if ctype is None else {"content-type": ctype}
    _error(client.post("/api/read", content=body, headers=headers), status)


def test_junk_options_in_a_form_and_a_query(client, number):
    strip, _ = number
    png = png_bytes(strip)
    _error(client.post("/api/read", files={"file": ("n.png", png, "image/png")},
                       data={"pattern": "(\\d+)"}), 422)
    for length in ("1.5", "\u00b2", "1" * 5000, "-3"):  # "²": a digit to isdigit(), not to int()
        _error(client.post("/api/read", files={"file": ("n.png", png, "image/png")},
                           data={"length": length}), 422)
    _error(client.post("/api/read?length=999", content=png,
                       headers={"content-type": "image/png"}), 422)
    _error(client.post("/api/read", files={"nofile": (None, "x")}), 422)
    assert client.get("/api/read").status_code == 405


def test_a_line_too_long_to_draw_is_read_and_not_drawn(client, number):
    strip, _ = number
    long = np.tile(strip, (1, MAX_STRIP_SHOWN // strip.shape[1] + 1))  # read as it is
    r = client.post("/api/read", content=png_bytes(long),
                    headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.json()["strip"] is None and len(r.json()["columns"]) > MAX_STRIP_SHOWN // 4 - 10


def test_a_server_without_reader_weights_still_reads_digits(predictor, tmp_path, number):
    strip, _ = number
    app = create_app(predictor, reader=tmp_path / "absent.safetensors")
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as c:
        detail = _error(c.post("/api/read", json={"pixels": strip.reshape(-1).tolist(),
                                                  "width": strip.shape[1], "height": 28}), 503)
        assert "cannot read numbers" in detail and "absent.safetensors" in detail
        digit = c.post("/api/predict", json={"pixels": strip[:, 10:38].reshape(-1).tolist()})
        assert digit.status_code == 200


# --------------------------------------------------------------------------- fuzz
FUZZ = settings(deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
_scalar = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats()
           | st.text(max_size=20))
_value = st.recursive(_scalar, lambda s: st.lists(s, max_size=4)
                      | st.dictionaries(st.text(max_size=8), s, max_size=4), max_leaves=12)


@pytest.mark.fuzz
@FUZZ
@given(width=st.integers(-2, 70) | _scalar, height=st.integers(-2, 40) | _scalar,
       pixels=st.lists(st.integers(0, 255) | _scalar, max_size=600) | _value,
       length=_scalar, pattern=_scalar | st.sampled_from(["zip", "amount", "d+", "d{2,3}.d?"]),
       extra=st.dictionaries(st.text(max_size=8), _value, max_size=3))
def test_fuzz_json(client, width, height, pixels, length, pattern, extra):
    doc = {**extra, "pixels": pixels, "width": width, "height": height, "length": length,
           "pattern": pattern}
    r = client.post("/api/read", content=json.dumps(doc, allow_nan=True),
                    headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text[:300]
    assert r.status_code in (200, 422), r.text[:300]
    body = r.json()
    assert isinstance(body["text"], str) if r.status_code == 200 else body["detail"]


@pytest.mark.fuzz
@FUZZ
@given(data=st.binary(max_size=1024), prefix=st.sampled_from(
    [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff\xe0", b"BM", b"P5\n9 9\n255\n"]),
       fields=st.dictionaries(st.sampled_from(["length", "pattern", "file", "x"]),
                              st.text(max_size=12), max_size=3))
def test_fuzz_uploads(client, data, prefix, fields):
    r = client.post("/api/read", files={"file": ("x.png", prefix + data, "image/png")},
                    data=fields)
    assert r.status_code in (413, 415, 422) or r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("application/json")


@pytest.mark.fuzz
@FUZZ
@given(image=arrays(np.uint8, st.tuples(st.integers(1, 60), st.integers(1, 160)),
                    elements=st.sampled_from([0, 0, 0, 30, 128, 250, 255])),
       length=st.none() | st.integers(0, 12), pattern=st.none() | st.sampled_from(
           ["zip", "amount", "d+", "d{2,3}.d?", "1d*"]))
def test_fuzz_images_through_the_reader(client, image, length, pattern):
    """Any small image of any shape and polarity reaches the line normalization and the SDNN:
    a reading, or a 422 that says why (several lines, no ink left...)."""
    doc = {"pixels": image.reshape(-1).tolist(), "width": image.shape[1],
           "height": image.shape[0], "length": length, "pattern": pattern}
    r = client.post("/api/read", json=doc)
    assert r.status_code in (200, 422), r.text[:300]
    body = r.json()
    if r.status_code == 200:
        columns = 0 if body["columns"] is None else len(body["columns"])
        # The Viterbi path spans every column, or is empty when no string fits the constraint.
        assert len(body["path"]) == columns or (body["path"] == [] and body["confidence"] == 0)
        assert length is None or body["text"] == "" or len(body["text"]) == length
    else:
        assert body["detail"]
