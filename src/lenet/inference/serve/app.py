"""The draw-a-digit web app and its JSON API (FastAPI), and the uvicorn server that runs it.

- ``GET /``: the page (draw, or open, drop, paste or photograph a digit; live prediction,
  probabilities, the 28x28 input and its preprocessing steps, sliders that distort the digit,
  and every layer of the network, each unit showing what it reads when pointed at or focused);
  every asset is served from :mod:`lenet.inference.serve`'s ``static`` folder, nothing from a CDN.
- ``POST /api/predict``: an uploaded image file (multipart field ``file``), a raw ``image/*`` body,
  or JSON ``{"pixels": [784 numbers 0-255]}`` (white ink on black, row-major). Returns
  ``{"digit", "label", "confidence", "probabilities", "preprocessed" (784 ints, row-major),
  "feature_maps"}``. Every input goes through the same MNIST preprocessing as `lenet predict`.
- ``POST /api/activations``: the same inputs, answers and limits, plus every layer's activations
  (:mod:`lenet.analysis.activations`), an upload's preprocessing steps, and an optional
  ``transform`` (:mod:`lenet.inference.serve.digits`); values rounded to :data:`DECIMALS` decimals
  and at
  most :data:`MAX_LAYER_VALUES` of them, so the answer is size-bounded (:data:`ACTIVATIONS_DOC`).
- ``GET /api/model``, ``GET /healthz``, ``GET /openapi.json``, and ``GET /docs``: a small
  self-contained page rendering the OpenAPI schema (Swagger UI would load from a CDN).

Limits: a body over 2 MB or an image over ``max_pixels`` (read from its header, before anything
is decoded) is 413, a non-image or an image mode with no grayscale (LAB) 415, malformed JSON or
a wrong pixel count 422, and every error has a JSON body ``{"detail": ...}``.

Cost per request is bounded (:class:`_Gate`): JSON parsing, decoding and inference run in worker
threads, so the event loop keeps answering; at most ``max_in_flight`` of them at once, and at most
``max_pixels`` image pixels being decoded at once, so big images are decoded one after another.
At most ``max_queued`` requests are admitted at once (reading, waiting or running); more are 503
at once, and one that waits over ``queue_timeout`` for its turn is 503; both with
``Retry-After``. A client that goes away mid-request is one INFO line in the log (and, if it
was waiting for its turn, its work is skipped).

Every response carries ``X-Content-Type-Options: nosniff``, a Content-Security-Policy allowing
only this origin (plus, by hash, the static pages' own inline blocks), ``X-Frame-Options: DENY``
and ``Referrer-Policy: no-referrer``. A request whose ``Host`` header is not one the server
answers for (``allowed_hosts``; by default localhost, 127.0.0.1 and ::1) is 400: this stops DNS
rebinding, and the Host header is never echoed (no trailing-slash redirects are made).

:func:`listen` binds the port (a port in use is a one-line error) and :func:`run_server` runs
uvicorn's h11 protocol with a read deadline: a request's headers and body must arrive within
``read_timeout`` seconds, or the connection is closed (uvicorn alone waits forever for a
half-sent request). Behind a reverse proxy, the proxy's own timeouts apply first.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import errno
import hashlib
import io
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import h11
import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from lenet.analysis.activations import layer_activations
from lenet.errors import ConfigError
from lenet.inference.predict import (
    MAX_PIXELS,
    ImageError,
    ImageTooLargeError,
    NoInkError,
    NotAnImageError,
    Predictor,
    UnsupportedImageError,
    preprocess_image,
    preprocess_pixels,
)
from lenet.inference.serve.digits import LIMITS as TRANSFORM_LIMITS
from lenet.inference.serve.digits import Transform, TransformError, upload_digit
from lenet.inference.serve.digits import apply as apply_transform

STATIC = Path(__file__).with_name("static")
MAX_BODY = 2 * 1024 * 1024
READ_TIMEOUT = 30.0  # seconds for one request's headers and body to arrive
MAX_HEADER_BYTES = 16 * 1024  # h11's limit on the request line and headers: more is 400
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")
RETRY_AFTER = "1"
DECIMALS = 4  # /api/activations rounds every layer value to this many decimals
MAX_LAYER_VALUES = 100_000  # layer values in one /api/activations answer; later layers: null
log = logging.getLogger("lenet.inference.serve")


class ApiError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _busy(why: str) -> ApiError:
    return ApiError(503, f"server busy ({why}); retry shortly", {"Retry-After": RETRY_AFTER})


# --------------------------------------------------------------------------- admission
class _Gate:
    """Admission to /api/predict's work, every piece of which runs in a worker thread.

    At most `queue` requests are admitted at once (reading their body, waiting or running);
    more are 503 at once, so the bodies held in memory stay under `queue` x the body limit. Of
    those, at most `slots` run at once, and their images hold at most `pixels` pixels together,
    so that a few huge images are decoded one after another while small ones run side by side.
    Turns are first come, first served; one not given within `timeout` seconds is 503.
    Only ever used from the event loop's thread, so plain counters need no lock.
    """

    def __init__(self, slots: int, pixels: int, queue: int, timeout: float) -> None:
        self.slots, self.pixels, self.queue, self.timeout = slots, pixels, queue, timeout
        self.admitted = self.running = self.decoding = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        if self.admitted >= self.queue:
            raise _busy(f"{self.admitted} requests already in progress")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    def _fits(self, pixels: int) -> bool:
        # A lone image always fits: the request-level pixel cap already bounds it.
        return self.running < self.slots and (
            self.decoding + pixels <= self.pixels or self.running == 0)

    def _take(self, pixels: int) -> None:
        self.running += 1
        self.decoding += pixels

    def _release(self, pixels: int) -> None:
        self.running -= 1
        self.decoding -= pixels
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            want, fut = self._waiters.popleft()
            if not fut.done():  # a cancelled waiter has already left
                self._take(want)
                fut.set_result(None)

    @contextlib.asynccontextmanager
    async def turn(self, pixels: int) -> AsyncIterator[None]:
        if not self._waiters and self._fits(pixels):
            self._take(pixels)
        else:
            entry = (pixels, asyncio.get_running_loop().create_future())
            self._waiters.append(entry)
            try:
                await asyncio.wait_for(entry[1], self.timeout)
            except BaseException as e:  # timed out, or the server is shutting down
                if entry[1].done() and not entry[1].cancelled():
                    self._release(pixels)  # the turn came just as the wait ended: pass it on
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(entry)
                    self._wake()  # it may have been the head: the ones behind may fit now
                if isinstance(e, asyncio.TimeoutError):
                    raise _busy(f"no turn within {self.timeout:g} s") from None
                raise
        try:
            yield
        finally:
            self._release(pixels)


# --------------------------------------------------------------------------- reading requests
async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
        if declared > limit:
            raise ApiError(413, f"request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _form_file(request: Request, body: bytes) -> tuple[bytes, dict[str, str]]:
    """The multipart body's file (field ``file``, else the first file) and its text fields."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except Exception as e:  # python-multipart raises several types for a malformed body
        raise ApiError(422, f"malformed multipart body: {e}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        upload = next((v for v in form.values() if not isinstance(v, str)), None)
    if upload is None:
        raise ApiError(422, "multipart body without a file; send the image in field 'file'")
    texts = {k: v for k, v in form.items() if isinstance(v, str)}
    return await upload.read(), texts


def _json_doc(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError(422, "malformed JSON: nested too deeply") from None
    except ValueError as e:  # bad syntax or encoding, or an integer literal over 4300 digits
        raise ApiError(422, f"malformed JSON: {e}") from None


def _pixels(doc: Any) -> list[Any]:
    """The 784 pixel values of a JSON request, checked."""
    if not isinstance(doc, dict) or "pixels" not in doc:
        raise ApiError(422, 'expected a JSON object {"pixels": [784 numbers 0-255]}')
    pixels = doc["pixels"]
    if not isinstance(pixels, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in pixels):
        raise ApiError(422, '"pixels" must be a flat list of numbers 0-255')
    if len(pixels) != 784:
        raise ApiError(422, f'"pixels" must hold 784 numbers (28x28, row-major), got {len(pixels)}')
    # Compared as Python numbers: NaN and Infinity fail, and an integer too big for a float
    # never reaches numpy (whose float conversion would raise OverflowError).
    if not all(0 <= v <= 255 for v in pixels):
        raise ApiError(422, '"pixels": pixel values must be numbers in 0..255 (no NaN or Infinity)')
    return pixels


def _pixels_from_json(body: bytes) -> list[Any]:
    return _pixels(_json_doc(body))


def _image_pixels(data: bytes, limit: int) -> int:
    """The image's pixel count from its header alone (nothing decoded yet); over `limit` is 413.

    0 when Pillow cannot read even the header: the decode then says what is wrong."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
    except Image.DecompressionBombError as e:
        raise ApiError(413, f"upload: image too large to decode safely ({e})") from None
    except Exception:  # not an image, a truncated header...: reported by the decode
        return 0
    if w * h > limit:
        raise ApiError(413, f"upload: image is {w}x{h} = {w * h / 1e6:.1f} megapixels; the "
                            f"limit is {limit / 1e6:g} megapixels (scale it down first)")
    return w * h


def _feature_maps(predictor: Predictor, digit: np.ndarray) -> dict[str, Any] | None:
    fm = predictor.first_conv_maps(digit)
    if fm is None:
        return None
    maps = fm["maps"]
    lo = maps.min(axis=(1, 2), keepdims=True)
    hi = maps.max(axis=(1, 2), keepdims=True)
    scaled = np.rint((maps - lo) / np.maximum(hi - lo, 1e-12) * 255.0).astype(int)
    return {"layer": fm["layer"], "shape": fm["shape"],
            "maps": [m.reshape(-1).tolist() for m in scaled]}


@contextlib.contextmanager
def _input_errors() -> Iterator[None]:
    """Every problem with an input image or pixels as the 4xx (or 503) it deserves."""
    try:
        yield
    except (NotAnImageError, UnsupportedImageError) as e:
        raise ApiError(415, str(e)) from None
    except ImageTooLargeError as e:
        raise ApiError(413, str(e)) from None
    except (NoInkError, ImageError) as e:
        raise ApiError(422, str(e)) from None
    except MemoryError:
        raise _busy("out of memory decoding this image") from None
    except ApiError:
        raise
    except Exception as e:  # a decoder failure nobody foresaw: the client's file, not a 500
        log.warning("cannot process an upload", exc_info=e)
        raise ApiError(422, f"upload: cannot process this image ({type(e).__name__}: "
                            f"{e})") from None


def _answer(predictor: Predictor, digit: np.ndarray) -> dict[str, Any]:
    pred = predictor.predict(digit[None])[0]
    return {"digit": pred.index, "label": pred.label, "confidence": pred.confidence,
            "probabilities": pred.probabilities, "classes": predictor.classes,
            "preprocessed": digit.reshape(-1).tolist()}


def _infer(predictor: Predictor, kind: str, payload: bytes) -> dict[str, Any]:
    """Parse or decode one input and run the network (in a worker thread); every problem with
    the input is a 4xx ApiError."""
    pixels = _pixels_from_json(payload) if kind == "json" else None
    with _input_errors():
        digit = (preprocess_pixels(pixels) if pixels is not None
                 else preprocess_image(payload, "upload"))
    return {**_answer(predictor, digit), "feature_maps": _feature_maps(predictor, digit)}


def _digit_for_layers(kind: str, payload: bytes, fields: dict[str, str]
                      ) -> tuple[np.ndarray, list[dict[str, Any]], Transform]:
    """/api/activations' input: (the MNIST-style 28x28 digit, pictures of an upload's
    preprocessing steps, the transform to apply). Cheap checks first, decoding last."""
    steps: list[dict[str, Any]] = []
    doc = _json_doc(payload) if kind == "json" else None
    pixels = _pixels(doc) if kind == "json" else None
    if isinstance(doc, dict):
        preprocess, spec = doc.get("preprocess", True), doc.get("transform")
        if not isinstance(preprocess, bool):
            raise ApiError(422, '"preprocess" must be true or false')
    else:
        preprocess, spec = True, (_json_doc(fields["transform"]) if "transform" in fields
                                  else None)
    try:
        transform = Transform.parse(spec)
    except TransformError as e:
        raise ApiError(422, str(e)) from None
    with _input_errors():
        if pixels is None:
            digit, steps = upload_digit(payload, "upload")
        elif preprocess:
            digit = preprocess_pixels(pixels)
        else:  # already an MNIST-style digit: the network sees it as it is
            digit = np.rint(np.asarray(pixels, np.float64)).astype(np.uint8).reshape(28, 28)
    return digit, steps, transform


def _infer_layers(predictor: Predictor, kind: str, payload: bytes, fields: dict[str, str]
                  ) -> dict[str, Any]:
    """The answer and every layer's activations for one input (in a worker thread)."""
    import torch

    if predictor.model is None:
        raise ApiError(409, "this server runs an ONNX file; every layer's activations need "
                            "the safetensors weights (serve a run dir or .safetensors file)")
    digit, steps, transform = _digit_for_layers(kind, payload, fields)
    seen = apply_transform(digit, transform)
    x = predictor.preprocessing(torch.from_numpy(seen[None].copy()))
    acts = layer_activations(predictor.model, x)
    return {**_answer(predictor, seen), "model": predictor.model_name,
            "original": digit.reshape(-1).tolist(), "transform": transform.to_dict(),
            "steps": steps, **acts.to_dict(DECIMALS, MAX_LAYER_VALUES)}


async def _payload(request: Request, max_body: int) -> tuple[str, bytes, dict[str, str]]:
    """The request's input by content type: ("json", body, {}) or ("image", file bytes, the
    multipart body's text fields)."""
    body = await _read_body(request, max_body)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return "json", body, {}
    if ctype == "multipart/form-data":
        return "image", *await _form_file(request, body)
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return "image", body, {}
    raise ApiError(415, f"unsupported content type {ctype or '(none)'!r}; send "
                        "multipart/form-data, image/*, or application/json")


# --------------------------------------------------------------------------- every response
def _inline_hashes(tag: str) -> str:
    """CSP sources ('sha256-...') for the static pages' inline <tag> blocks, so that the policy
    allows this origin's files plus exactly those blocks and nothing else inline."""
    found = set()
    for page in sorted(STATIC.glob("*.html")):
        for block in re.findall(rf"<{tag}>(.*?)</{tag}>", page.read_text(), re.S):
            digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
            found.add(f"'sha256-{digest}'")
    return " ".join(sorted(found))


def security_headers() -> dict[str, str]:
    csp = ("default-src 'self'; "
           f"script-src 'self' {_inline_hashes('script')}".rstrip() + "; "
           f"style-src 'self' {_inline_hashes('style')}".rstrip() + "; "
           "img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
           "form-action 'self'; frame-ancestors 'none'")
    return {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Cross-Origin-Resource-Policy": "same-origin"}


def _host_name(header: str) -> str:
    """The name in a Host header, lowercase, without its port ("[::1]:80" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Guard:
    """The outermost layer: refuses a Host header the server does not answer for, and adds the
    security headers to every response (the 500 handler adds them itself)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str], allowed: Iterable[str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.allowed = {h.lower() for h in allowed}
        self.any_host = "*" in self.allowed
        self.refusal = ("this server does not answer for the Host header in the request; it "
                        f"answers for: {', '.join(sorted(self.allowed))} (start `lenet serve` "
                        "with --allowed-host NAME to add a name)")

    def _host_ok(self, scope: Scope) -> bool:
        if self.any_host:
            return True
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        return host is not None and _host_name(host.decode("latin-1")) in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        if not self._host_ok(scope):
            await _error(400, self.refusal)(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)


def default_hosts(bound: str) -> list[str]:
    """The Host names served by default: this machine's loopback names, and the address the
    server is bound to unless that is a wildcard (0.0.0.0 is no name a client asks for)."""
    bound = bound.strip("[]").lower()
    return [*LOCAL_HOSTS, *([bound] if bound not in WILDCARD_ADDRESSES + LOCAL_HOSTS else [])]


# --------------------------------------------------------------------------- the app
def _add_error_handlers(app: FastAPI, secure: dict[str, str]) -> None:
    """Every error answers JSON ``{"detail": ...}``; an unexpected one is logged, then 500."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, json.loads(json.dumps(exc.errors(), default=str)))

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> Response:
        # Routine (a closed tab, a cancelled upload, a client's timeout, the read deadline):
        # one line, no traceback.
        who = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        log.info("%s closed the connection before the answer to %s %s", who, request.method,
                 request.url.path)
        return Response(status_code=400)  # nobody is left to read it

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return _error(500, "internal error (logged on the server)", secure)


def _add_pages(app: FastAPI) -> None:
    """Liveness, the page, the API docs page and their static assets."""

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


ACTIVATIONS_DOC = (
    "The same inputs as /api/predict (multipart field `file`, a raw image/* body, or JSON "
    '`{"pixels": [784 numbers 0-255]}`), the same preprocessing and limits, plus two options. '
    '`"preprocess": false` (JSON only) feeds the 784 pixels to the network as they are, for a '
    'digit that is already MNIST-style. `"transform"` (a JSON object; in a multipart body the '
    "text field `transform`) distorts the MNIST-style digit before the network sees it: "
    + "; ".join(f"`{k}` {lo:g}..{hi:g} ({what})" for k, (lo, hi, what) in TRANSFORM_LIMITS.items())
    + ". Applied on the server in this order: stroke width (3x3 dilation/erosion per pixel), "
    "one affine map about the centre (bilinear), seeded Gaussian noise. Answers what "
    "/api/predict answers (`preprocessed` is the digit the network saw, after the transform), "
    "and `original` (the digit before the transform), `transform`, `steps` (pictures of an "
    "upload's preprocessing: name, width, height, pixels), `layers` (the input as the network "
    "sees it, then every layer in order: name, kind conv/pool/linear/rbf/output, shape, values "
    "flat row-major, and `reads`: how a unit reads the previous layer, with a conv's "
    "connection `table`), `scores` (the raw output), and for an RBF-output model (lenet5-1998) "
    "`rbf`: the codes (10 x 84, a 12 x 7 bitmap each), the Euclidean `distances` of the layer "
    f"below to each, and the `nearest`. Size bound: values are rounded to {DECIMALS} decimals and "
    f"at most {MAX_LAYER_VALUES:,} layer values are sent (later layers come with `values: null`, "
    "`omitted: true`), so an answer stays under 2 MB; the registered models need at most "
    "about 9,200 values (under 150 KB).")


def _error_docs(max_pixels: int) -> dict[int | str, dict[str, Any]]:
    return {413: {"description": f"body over 2 MB or image over {max_pixels / 1e6:g} "
                                 "megapixels"},
            415: {"description": "not an image, an unsupported image mode (LAB) or content "
                                 "type"},
            422: {"description": "malformed JSON, wrong pixel count, no ink, a bad transform"},
            503: {"description": "too many requests in progress (Retry-After)"}}


def create_app(weights: str | Path | Predictor, *, max_body: int = MAX_BODY,
               max_in_flight: int = 4, queue_timeout: float = 10.0,
               max_pixels: int = MAX_PIXELS, max_queued: int | None = None,
               allowed_hosts: Iterable[str] = LOCAL_HOSTS) -> FastAPI:
    """The app; `allowed_hosts` are the Host names it answers for ("*": any)."""
    predictor = weights if isinstance(weights, Predictor) else Predictor.load(weights)
    # No trailing-slash redirects: they would be built from the client's Host header.
    app = FastAPI(title="lenet", version="1", docs_url=None, redoc_url=None,
                  redirect_slashes=False,
                  description="Handwritten digit recognition with LeNet-5 "
                              f"({predictor.model_name}).")
    gate = _Gate(max_in_flight, max_pixels, max_queued or 8 * max_in_flight, queue_timeout)
    secure = security_headers()
    _add_error_handlers(app, secure)
    app.add_middleware(_Guard, headers=secure, allowed=allowed_hosts)

    async def serve(request: Request, work: Any) -> dict[str, Any]:
        with gate.admit():
            kind, payload, fields = await _payload(request, max_body)
            pixels = (await run_in_threadpool(_image_pixels, payload, max_pixels)
                      if kind == "image" else 0)
            async with gate.turn(pixels):
                if await request.is_disconnected():  # gave up while waiting: skip the work
                    raise ClientDisconnect
                return await run_in_threadpool(work, predictor, kind, payload, fields)

    errors = _error_docs(max_pixels)

    @app.post("/api/predict", summary="Recognize one digit",
              description="Multipart upload (field `file`), a raw image/* body, or JSON "
                          '`{"pixels": [784 numbers 0-255]}` (white ink on black, row-major).',
              responses=errors)
    async def predict(request: Request) -> dict[str, Any]:
        return await serve(request, lambda p, kind, payload, _: _infer(p, kind, payload))

    @app.post("/api/activations", summary="Recognize one digit and show every layer",
              description=ACTIVATIONS_DOC, responses={
                  **errors, 409: {"description": "the server runs an ONNX file (no layers)"}})
    async def activations(request: Request) -> dict[str, Any]:
        return await serve(request, _infer_layers)

    @app.get("/api/model", summary="The loaded model")
    async def model_info() -> dict[str, Any]:
        return {"name": predictor.model_name, "accuracy": predictor.test_accuracy,
                **predictor.info()}

    _add_pages(app)
    return app


# --------------------------------------------------------------------------- the server
def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (0: a free port). A port in use, or an address this
    machine does not have, is a ConfigError, raised before anything says "serving"."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: not an address of this machine ({e.strerror}); "
                          "use 127.0.0.1, or 0.0.0.0 for every interface") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restart need not wait for the old connections' TIME_WAIT. Linux
        # still refuses a port that another socket is listening on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is in use; choose another with "
                              "--port") from None
        raise ConfigError(f"cannot listen on {host} port {port}: {e.strerror or e}") from None
    return sock


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a read deadline: each request's headers and body must arrive
    within `read_timeout` seconds of the connection opening or of the previous response, else
    the connection is closed. (uvicorn has no header timeout: a half-sent request would hold
    its connection, and its task, forever.) :func:`run_server` sets `read_timeout`."""

    read_timeout: float = READ_TIMEOUT
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watch()
        super().connection_lost(exc)

    def _reading(self) -> bool:
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

    def _watch(self) -> None:
        if not self._reading():
            self._stop_watch()
        elif self._deadline is None:
            self._deadline = self.loop.call_later(self.read_timeout, self._expire)

    def _stop_watch(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._reading() and not self.transport.is_closing():
            self.transport.close()  # a request under way then logs one line (_gone)


def server_config(app: ASGIApp, *, read_timeout: float = READ_TIMEOUT,
                  log_level: str = "info") -> Any:
    """The uvicorn.Config that :func:`run_server` uses (h11 with the read deadline, no Server
    header, 5 s keep-alive, 10 s for requests under way to finish at shutdown), with
    lenet.inference.serve's log lines sent where uvicorn's go."""
    import uvicorn

    protocol = type("DeadlineH11", (DeadlineH11Protocol,), {"read_timeout": read_timeout})
    config = uvicorn.Config(app, http=protocol, log_level=log_level,
                            server_header=False, timeout_keep_alive=5,
                            timeout_graceful_shutdown=10,
                            h11_max_incomplete_event_size=MAX_HEADER_BYTES)
    # uvicorn has just configured its loggers (the constructor does).
    ours, theirs = logging.getLogger("lenet.inference.serve"), logging.getLogger("uvicorn")
    ours.handlers, ours.propagate = list(theirs.handlers), False
    ours.setLevel(logging.getLogger("uvicorn.error").getEffectiveLevel())
    return config


def run_server(app: ASGIApp, sock: socket.socket, *, read_timeout: float = READ_TIMEOUT,
               log_level: str = "info") -> None:
    """Serve `app` on the listening `sock` until SIGINT or SIGTERM."""
    import uvicorn

    config = server_config(app, read_timeout=read_timeout, log_level=log_level)
    uvicorn.Server(config).run(sockets=[sock])
