"""Fuzzing the HTTP endpoints: whatever arrives, the answer is never a 5xx.

Random and mutated uploads, malformed multipart, huge and nested JSON, bad pixel values,
random content types and random headers (Range, Host, Content-Length...), through FastAPI's
TestClient. Every API answer must be JSON: a 200 with a digit 0-9, or a 4xx with an error
message; every error of any endpoint, page or static file is JSON too.
"""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from lenet.inference.serve.app import MAX_BODY, create_app

# Fuzz tests (make fuzz loops them with fresh seeds); the profile (tests/conftest.py) decides
# how many examples.
pytestmark = pytest.mark.fuzz
FUZZ = settings(deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example,
                                       HealthCheck.function_scoped_fixture])
PATHS = st.sampled_from(["/api/predict", "/api/activations"])


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor), base_url="http://localhost",
                    raise_server_exceptions=False) as c:
        yield c


def _check(r) -> dict:
    """The API's contract for any input: < 500, JSON, a digit or an error message."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    assert r.headers.get("content-type", "").startswith("application/json"), \
        (r.status_code, r.headers, r.text[:200])
    body = r.json()
    assert isinstance(body, dict), body
    if r.status_code == 200:
        assert len(body["probabilities"]) == 10, body
        # A digit, or "no digit" where a transform left no ink.
        assert body["digit"] in range(10) or (body["no_digit"] and body["label"] is None), body
        if "layers" in body:  # /api/activations: every layer, sized as its shape says
            for layer in body["layers"]:
                assert len(layer["values"]) == int(np.prod(layer["shape"])), layer["name"]
    else:
        assert 400 <= r.status_code < 500, r.status_code
        assert body.get("detail"), body
    return body


def _post(client, content: bytes, content_type: str | None, path: str = "/api/predict"):
    headers = {} if content_type is None else {"content-type": content_type}
    return client.post(path, content=content, headers=headers)


def _encode(arr: np.ndarray, mode: str, fmt: str) -> bytes | None:
    try:
        img = Image.fromarray(arr)
        if img.mode != mode:
            img = img.convert(mode)
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        return buf.getvalue()
    except (OSError, ValueError, KeyError, TypeError):
        return None  # this format cannot hold this mode


_DIGIT = np.zeros((28, 28), np.uint8)
_DIGIT[6:22, 12:16] = 255  # a plain "1"
_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM", "ICO")
_SAMPLES = {fmt: b for fmt in _FORMATS
            if (b := _encode(_DIGIT, "L" if fmt != "ICO" else "RGBA", fmt)) is not None}
_MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"GIF89a",
          b"GIF87a", b"\xff\xd8\xff\xe0", b"BM", b"II*\x00", b"MM\x00*",
          b"RIFF\x00\x00\x00\x00WEBP", b"P5\n28 28\n255\n", b"\x00\x00\x01\x00",
          b"%PDF-1.4", b"<svg", b"\x1f\x8b"]
_CTYPES = ["image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff", "image/webp",
           "application/octet-stream", "text/plain", "application/json", "", "image/",
           "multipart/form-data"]
_printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


# --------------------------------------------------------------------------- uploads
@FUZZ
@given(magic=st.sampled_from(_MAGIC), data=st.binary(max_size=2048),
       filename=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
       part_type=st.sampled_from(_CTYPES) | _printable,
       field=st.sampled_from(["file", "image", "upload", ""]), path=PATHS)
def test_fuzz_random_bytes_as_file_upload(client, magic, data, filename, part_type, field, path):
    r = client.post(path, files={field: (filename or "x", magic + data, part_type)})
    body = _check(r)
    if r.status_code != 200:
        assert r.status_code in (413, 415, 422), body


@FUZZ
@given(fmt=st.sampled_from(sorted(_SAMPLES)), raw=st.booleans(),
       cut=st.integers(0, 4096), flips=st.lists(
           st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=8), path=PATHS)
def test_fuzz_corrupted_real_images(client, fmt, raw, cut, flips, path):
    data = bytearray(_SAMPLES[fmt])
    for pos, byte in flips:
        data[pos % len(data)] = byte
    data = bytes(data[:max(1, cut)] if cut < len(data) else data)
    if raw:
        r = _post(client, data, "image/" + fmt.lower(), path)
    else:
        r = client.post(path, files={"file": (f"d.{fmt.lower()}", data, "image/png")})
    _check(r)


@FUZZ
@given(mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "F", "CMYK",
                             "PA", "La", "RGBa", "LAB", "YCbCr", "HSV"]),
       fmt=st.sampled_from(["PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG"]),
       pixels=st.one_of(
           arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40))),
           arrays(np.float32, st.tuples(st.integers(1, 24), st.integers(1, 24)),
                  elements=st.floats(width=32, allow_nan=True, allow_infinity=True)),
           arrays(np.int32, st.tuples(st.integers(1, 24), st.integers(1, 24)),
                  elements=st.integers(-(2**31), 2**31 - 1))))
@example(mode="LAB", fmt="TIFF", pixels=_DIGIT)  # decodes, but Pillow has no LAB -> grayscale
@example(mode="CMYK", fmt="JPEG", pixels=_DIGIT)
def test_fuzz_odd_modes_and_values(client, mode, fmt, pixels):
    if pixels.dtype == np.float32 and mode == "F":
        data = _encode(pixels, "F", "TIFF")  # float images survive only in TIFF
    elif pixels.dtype == np.int32 and mode in ("I", "I;16"):
        data = _encode(pixels, "I", fmt if fmt in ("PNG", "TIFF") else "TIFF")
    else:
        data = _encode(np.clip(pixels, 0, 255).astype(np.uint8), mode, fmt)
    assume(data is not None and len(data) <= MAX_BODY)
    r = client.post("/api/predict", files={"file": ("odd", data, "image/png")})
    body = _check(r)
    assert "digit" in body or body["detail"]
    if Image.open(io.BytesIO(data)).mode == "LAB":  # TIFF keeps LAB; it has no grayscale
        assert r.status_code == 415 and "unsupported image mode LAB" in body["detail"], body


_special = st.sampled_from([np.inf, -np.inf, 0.0, 255.0, 1e38, -1e38, 1e-38, 127.5])


@FUZZ
@given(pixels=arrays(np.float32, st.tuples(st.integers(1, 24), st.integers(1, 24)),
                     elements=st.floats(width=32, allow_nan=False) | _special),
       nan_at=st.none() | st.integers(0, 575))
def test_fuzz_float_images_with_infinities(client, pixels, nan_at):
    if nan_at is not None:
        pixels.flat[nan_at % pixels.size] = np.nan
    data = _encode(pixels, "F", "TIFF")
    assert data is not None
    r = client.post("/api/predict", files={"file": ("f.tiff", data, "image/tiff")})
    _check(r)
    if not np.isfinite(pixels).all():
        assert r.status_code == 422, r.text[:300]


# --------------------------------------------------------------------------- multipart
_boundary = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                  blacklist_characters='";\\'), min_size=1, max_size=70)


@FUZZ
@given(boundary=_boundary, declared=st.one_of(st.none(), st.just(True), _boundary),
       pieces=st.lists(st.one_of(
           st.sampled_from([b"--", b"\r\n", b"\r\n\r\n", b"--\r\n", b"\n",
                            b'Content-Disposition: form-data; name="file"; filename="a.png"',
                            b'Content-Disposition: form-data; name="file"',
                            b"Content-Disposition: attachment", b"Content-Type: image/png",
                            b'Content-Disposition: form-data; name="x"; filename*=utf-8\'\'%FF',
                            _SAMPLES["PNG"], b"just text"]),
           st.binary(max_size=64), st.just(b"BOUNDARY")), max_size=24), path=PATHS)
def test_fuzz_malformed_multipart(client, boundary, declared, pieces, path):
    body = b"".join(boundary.encode() if p == b"BOUNDARY" else p for p in pieces)
    ctype = "multipart/form-data"
    if declared is True:
        ctype += f"; boundary={boundary}"
    elif declared is not None:
        ctype += f'; boundary="{declared}"'
    r = _post(client, body, ctype, path)
    _check(r)
    assert r.status_code in (200, 413, 415, 422), r.text


@FUZZ
@given(files=st.integers(2, 4), fields=st.integers(0, 12))
def test_fuzz_too_many_parts(client, files, fields):
    parts = [("file", (f"{i}.png", _SAMPLES["PNG"], "image/png")) for i in range(files)]
    data = {f"f{i}": "x" for i in range(fields)}
    _check(client.post("/api/predict", files=parts, data=data))


# --------------------------------------------------------------------------- JSON
@FUZZ
@given(n=st.integers(0, 400_000), value=st.sampled_from(["0", "255", "1.5e2", "null", '"x"']),
       padding=st.integers(0, 2_200_000))
def test_fuzz_huge_json(client, n, value, padding):
    body = ('{"pad": "' + "a" * padding + '", "pixels": [' + ", ".join([value] * n)
            + "]}").encode()
    r = _post(client, body, "application/json")
    _check(r)
    if len(body) > MAX_BODY:
        assert r.status_code == 413
    else:
        assert r.status_code == 422  # wrong count, wrong type, or a blank digit


@FUZZ
@given(n=st.integers(0, 3000).filter(lambda n: n != 784), fill=st.integers(0, 255))
def test_fuzz_wrong_pixel_count(client, n, fill):
    r = client.post("/api/predict", json={"pixels": [fill] * n})
    assert str(n) in json.dumps(_check(r)["detail"]) and r.status_code == 422


_BAD_VALUES = ["NaN", "Infinity", "-Infinity", "-1", "-1e-9", "256", "255.0001", "1e400",
               "-1e400", "1e308", "1" + "0" * 30, "1" + "0" * 400, "1" + "0" * 5000,
               "-" + "9" * 400, '"5"', '"NaN"', "null", "true", "false", "[]", "[5]", "{}",
               '{"v": 1}']


@FUZZ
@given(bad=st.lists(st.tuples(st.integers(0, 783), st.sampled_from(_BAD_VALUES)),
                    min_size=1, max_size=10),
       base=st.sampled_from(["digit", "zeros"]))
def test_fuzz_bad_pixel_values(client, bad, base):
    pixels = [str(int(v)) for v in (_DIGIT.reshape(-1) if base == "digit" else [0] * 784)]
    for pos, token in bad:
        pixels[pos] = token
    r = _post(client, ('{"pixels": [' + ", ".join(pixels) + "]}").encode(), "application/json")
    _check(r)
    assert r.status_code == 422, r.text[:300]


_json_leaf = (st.none() | st.booleans() | st.integers() | st.text(max_size=20)
              | st.floats(allow_nan=True, allow_infinity=True))
_garbage = st.recursive(_json_leaf, lambda c: st.lists(c, max_size=6)
                        | st.dictionaries(st.text(max_size=8), c, max_size=6), max_leaves=40)


@FUZZ
@given(doc=_garbage, wrap=st.booleans(), path=PATHS)
def test_fuzz_nested_garbage_json(client, doc, wrap, path):
    r = _post(client, json.dumps({"pixels": doc} if wrap else doc).encode(), "application/json",
              path)
    _check(r)
    assert r.status_code == 422, r.text[:300]


@FUZZ
@given(depth=st.integers(1, 150_000), opener=st.sampled_from(["[", '{"pixels": ', '{"a": [']),
       closed=st.booleans())
def test_fuzz_deeply_nested_json(client, depth, opener, closed):
    closer = {"[": "]", '{"pixels": ': "}", '{"a": [': "]}"}[opener]
    body = opener * depth + "0" + (closer * depth if closed else "")
    assume(len(body) <= MAX_BODY)
    r = _post(client, body.encode(), "application/json")
    _check(r)
    assert r.status_code == 422


@FUZZ
@given(data=st.binary(max_size=1024),
       encoding=st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1"]))
def test_fuzz_random_bytes_as_json(client, data, encoding):
    for body in (data, json.dumps({"pixels": data.decode("latin-1")}).encode(encoding)):
        r = _post(client, body, "application/json")
        _check(r)
        assert r.status_code == 422


# --------------------------------------------------------------------------- content types
@FUZZ
@given(ctype=st.one_of(_printable, st.sampled_from(_CTYPES),
                       st.sampled_from(_CTYPES).map(lambda t: t + "; charset=utf-8"),
                       st.sampled_from(_CTYPES).map(str.upper)),
       body=st.sampled_from(["json", "png", "garbage", "empty"]), path=PATHS)
def test_fuzz_random_content_types(client, ctype, body, path):
    content = {"json": json.dumps({"pixels": _DIGIT.reshape(-1).tolist()}).encode(),
               "png": _SAMPLES["PNG"], "garbage": b"\x00\x01garbage\xff", "empty": b""}[body]
    r = _post(client, content, ctype, path)
    _check(r)
    main = ctype.split(";")[0].strip().lower()
    if main not in ("application/json", "multipart/form-data", "application/octet-stream") \
            and not main.startswith("image/"):
        assert r.status_code == 415, (ctype, r.text[:200])


# --------------------------------------------------------------------------- activations' options
_transform_value = (st.none() | st.booleans() | st.integers(-(10**30), 10**30)
                    | st.text(max_size=8) | st.floats(allow_nan=True, allow_infinity=True)
                    | st.lists(st.integers(), max_size=3))
_transform_key = st.sampled_from(["rotate", "scale", "shift_x", "shift_y", "squeeze", "shear",
                                  "stroke", "noise", "seed", "spin", ""]) | st.text(max_size=6)


@FUZZ
@given(transform=st.dictionaries(_transform_key, _transform_value, max_size=6) | _garbage,
       preprocess=st.sampled_from([True, False, None, 0, 1, "false", [], {}]),
       base=st.sampled_from(["digit", "zeros", "full"]))
def test_fuzz_random_transforms_and_options(client, transform, preprocess, base):
    pixels = {"digit": _DIGIT.reshape(-1).tolist(), "zeros": [0] * 784,
              "full": [255] * 784}[base]
    doc = {"pixels": pixels, "transform": transform}
    if preprocess is not None:
        doc["preprocess"] = preprocess
    r = _post(client, json.dumps(doc).encode(), "application/json", "/api/activations")
    body = _check(r)
    assert r.status_code in (200, 422), body
    if r.status_code == 200:
        assert len(body["preprocessed"]) == 784 and set(body["transform"]) >= {"rotate", "noise"}


@FUZZ
@given(rotate=st.floats(-180, 180), scale=st.floats(0.25, 4), shift=st.floats(-28, 28),
       squeeze=st.floats(0.25, 4), shear=st.floats(-2, 2), stroke=st.integers(-3, 3),
       noise=st.floats(0, 1), seed=st.integers(0, 2**31 - 1))
def test_fuzz_any_valid_transform_is_answered(client, rotate, scale, shift, squeeze, shear, stroke,
                                         noise, seed):
    t = {"rotate": rotate, "scale": scale, "shift_x": shift, "shift_y": -shift,
         "squeeze": squeeze, "shear": shear, "stroke": stroke, "noise": noise, "seed": seed}
    r = client.post("/api/activations",
                    files={"file": ("d.png", _SAMPLES["PNG"], "image/png")},
                    data={"transform": json.dumps(t)})
    body = _check(r)
    assert r.status_code == 200, body
    assert all(0 <= v <= 255 for v in body["preprocessed"])


@FUZZ
@given(text=st.text(max_size=200) | st.sampled_from(["", "null", "[]", "{}", '{"rotate": NaN}',
                                                     "1e999", '{"rotate": 1e999}']))
def test_fuzz_random_transform_fields_in_multipart(client, text):
    r = client.post("/api/activations", files={"file": ("d.png", _SAMPLES["PNG"], "image/png")},
                    data={"transform": text})
    _check(r)
    assert r.status_code in (200, 422), r.text[:300]


# --------------------------------------------------------------------------- headers, any path
_header_name = st.sampled_from(["range", "if-range", "host", "content-length",
                                "transfer-encoding", "content-type", "accept", "cookie",
                                "origin", "x-forwarded-for", "expect", "if-none-match",
                                "if-modified-since", "accept-encoding"]) | st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=":"),
    min_size=1, max_size=20)
_header_value = _printable | st.sampled_from(
    ["bytes=0-1", "bytes=999999999-", "bytes=5-2", "bytes=-0", "garbage", "items=0-1",
     "bytes=" + ",".join(["0-1"] * 200), "localhost", "evil.example", "0", "-1",
     "99999999999999999999", "chunked", "100-continue", "*/*"])


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
       path=st.sampled_from(["/", "/docs", "/static/app.js", "/static/nope.js", "/api/model",
                             "/healthz", "/api/predict", "/api/activations", "/openapi.json",
                             "/nope", "/static/../app.py", "/static/%2e%2e/app.py"]),
       headers=st.dictionaries(_header_name, _header_value, max_size=5),
       body=st.sampled_from([b"", b"x", _SAMPLES["PNG"], b'{"pixels": [0]}']))
def test_fuzz_random_headers_on_every_path(client, method, path, headers, body):
    """Any method, path and headers: never a 5xx; every error JSON with a detail; a Range
    header never changes a 200 into a partial answer."""
    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
    try:
        r = client.request(method, path, headers=headers, content=body or None)
    except httpx.HTTPError:  # a header the client itself refuses to send (e.g. a bad Host)
        return
    assert r.status_code < 500, (r.status_code, r.text[:300])
    assert r.status_code != 206 and "content-range" not in r.headers, r.headers
    if r.status_code >= 400 and method != "HEAD":
        assert r.headers.get("content-type", "").startswith("application/json"), \
            (r.status_code, r.headers, r.text[:200])
        assert r.json()["detail"], r.text[:200]
