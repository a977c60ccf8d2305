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
  ``transform`` (:mod:`lenet.inference.serve.digits`); values rounded to
  :data:`~lenet.inference.serve.answers.DECIMALS` decimals and at most
  :data:`~lenet.inference.serve.answers.MAX_LAYER_VALUES` of them, so the answer is size-bounded
  (:data:`ACTIVATIONS_DOC`).
- ``POST /api/read``: a whole number (the page's number mode): the same inputs (JSON pixels of
  any size, with ``width`` and ``height``), limits and errors, options ``length`` and
  ``pattern``; read by the SDNN reader (:mod:`lenet.inference.serve.reading`, loaded on first
  use). Returns the reading (text, confidence, digits, per-column probabilities, the Viterbi
  path) and the normalized strip with its column centres, for drawing.
- ``GET /api/model``, ``GET /healthz``, ``GET /openapi.json``, and ``GET /docs``: a small
  self-contained page rendering the OpenAPI schema (Swagger UI would load from a CDN).

The pieces: :mod:`~lenet.inference.serve.limits` (what a request may cost),
:mod:`~lenet.inference.serve.inputs` (reading one), :mod:`~lenet.inference.serve.answers` (the
work, in a worker thread), :mod:`~lenet.inference.serve.security` (headers and the Host check),
:mod:`~lenet.inference.serve.server` (the socket and uvicorn); this module puts them together.

Limits: a body over 2 MB, an image over ``max_pixels``, or one whose decoding would hold over
``max_decode_bytes`` (both read from its header, before anything is decoded; see
:func:`lenet.inference.decoding.decode_cost`) is 413, a format lenet does not take (ICO, PSD:
:data:`lenet.inference.decoding.FORMATS` lists those it does), a non-image or an image mode
with no grayscale (LAB) 415, malformed JSON or a wrong pixel count 422, and every error has a
JSON body ``{"detail": ...}``.

Cost per request is bounded (:class:`~lenet.inference.serve.limits.Gate`): JSON parsing,
decoding and inference run in worker threads, so the event loop keeps answering; at most
``max_in_flight`` of them at once, and at most ``max_pixels`` image pixels and
``max_decode_bytes`` of decoding memory at once, so big images are decoded one after another.
At most ``max_queued`` requests are admitted at once (reading, waiting or running); more are
503 at once, and one that waits over ``queue_timeout`` for its turn is 503; both with
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

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from lenet.inference.decoding import MAX_PIXELS
from lenet.inference.predict import Predictor
from lenet.inference.serve.answers import DECIMALS, MAX_LAYER_VALUES, infer, infer_layers
from lenet.inference.serve.digits import LIMITS as TRANSFORM_LIMITS
from lenet.inference.serve.inputs import read_input
from lenet.inference.serve.limits import (
    MAX_BODY,
    MAX_DECODE_BYTES,
    ApiError,
    Gate,
    image_cost,
    json_error,
)
from lenet.inference.serve.reading import READ_DOC, LazyReader, read_number
from lenet.inference.serve.security import (
    LOCAL_HOSTS,
    STATIC,
    Guard,
    default_hosts,
    security_headers,
)
from lenet.inference.serve.server import listen, run_server, server_config

# What `lenet serve` and the tests take from here; the server's pieces live beside it.
__all__ = ["MAX_BODY", "STATIC", "create_app", "default_hosts", "listen", "run_server",
           "security_headers", "server_config"]
log = logging.getLogger("lenet.inference.serve")


# --------------------------------------------------------------------------- the app
def _add_error_handlers(app: FastAPI, secure: dict[str, str]) -> None:
    """Every error answers JSON ``{"detail": ...}``; an unexpected one is logged, then 500."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return json_error(exc.status, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return json_error(exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return json_error(422, json.loads(json.dumps(exc.errors(), default=str)))

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
        return json_error(500, "internal error (logged on the server)", secure)


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
    return {413: {"description": f"body over 2 MB, image over {max_pixels / 1e6:g} "
                                 "megapixels, or too large to decode within the memory limit"},
            415: {"description": "not an image, an image format not taken (ICO, PSD...), an "
                                 "unsupported image mode (LAB) or content type"},
            422: {"description": "malformed JSON, wrong pixel count, no ink, a bad transform"},
            503: {"description": "too many requests in progress (Retry-After)"}}


def create_app(weights: str | Path | Predictor, *, max_body: int = MAX_BODY,
               max_in_flight: int = 4, queue_timeout: float = 10.0,
               max_pixels: int = MAX_PIXELS, max_queued: int | None = None,
               max_decode_bytes: int = MAX_DECODE_BYTES,
               allowed_hosts: Iterable[str] = LOCAL_HOSTS, reader: Any = None) -> FastAPI:
    """The app; `allowed_hosts` are the Host names it answers for ("*": any); `reader`: the
    reader weights (or a :class:`~lenet.inference.read.reader.Reader`) for ``/api/read``,
    default the bundled default reader, loaded on the first request that reads a number."""
    predictor = weights if isinstance(weights, Predictor) else Predictor.load(weights)
    readers = LazyReader(reader)
    # No trailing-slash redirects: they would be built from the client's Host header.
    app = FastAPI(title="lenet", version="1", docs_url=None, redoc_url=None,
                  redirect_slashes=False,
                  description="Handwritten digit recognition with LeNet-5 "
                              f"({predictor.model_name}).")
    gate = Gate(max_in_flight, max_pixels, max_queued or 8 * max_in_flight, queue_timeout,
                max_decode_bytes)
    secure = security_headers()
    _add_error_handlers(app, secure)
    app.add_middleware(Guard, headers=secure, allowed=allowed_hosts)

    async def serve(request: Request, work: Any) -> dict[str, Any]:
        with gate.admit():
            kind, payload, fields = await read_input(request, max_body)
            cost = (await run_in_threadpool(image_cost, payload, max_pixels, max_decode_bytes)
                    if kind == "image" else (0, 0))
            async with gate.turn(cost):
                if await request.is_disconnected():  # gave up while waiting: skip the work
                    raise ClientDisconnect
                return await run_in_threadpool(work, predictor, kind, payload, fields)

    errors = _error_docs(max_pixels)

    @app.post("/api/predict", summary="Recognize one digit",
              description="Multipart upload (field `file`), a raw image/* body, or JSON "
                          '`{"pixels": [784 numbers 0-255]}` (white ink on black, row-major).',
              responses=errors)
    async def predict(request: Request) -> dict[str, Any]:
        return await serve(request, lambda p, kind, payload, _: infer(p, kind, payload))

    @app.post("/api/activations", summary="Recognize one digit and show every layer",
              description=ACTIVATIONS_DOC, responses={
                  **errors, 409: {"description": "the server runs an ONNX file (no layers)"}})
    async def activations(request: Request) -> dict[str, Any]:
        return await serve(request, infer_layers)

    @app.post("/api/read", summary="Read a whole number", description=READ_DOC,
              responses=errors)
    async def read(request: Request) -> dict[str, Any]:
        query = dict(request.query_params)
        return await serve(request, lambda _, kind, payload, fields: read_number(
            readers.get(), kind, payload, {**query, **fields}))

    @app.get("/api/model", summary="The loaded model")
    async def model_info() -> dict[str, Any]:
        return {"name": predictor.model_name, "accuracy": predictor.test_accuracy,
                **predictor.info()}

    _add_pages(app)
    return app

