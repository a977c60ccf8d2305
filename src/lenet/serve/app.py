"""The draw-a-digit web app and its JSON API (FastAPI).

- ``GET /``: the page (canvas, live prediction, probabilities, the 28x28 input, C1 feature maps);
  every asset is served from :mod:`lenet.serve`'s ``static`` folder, nothing from a CDN.
- ``POST /api/predict``: an uploaded image file (multipart field ``file``), a raw ``image/*`` body,
  or JSON ``{"pixels": [784 numbers 0-255]}`` (white ink on black, row-major). Returns
  ``{"digit", "label", "confidence", "probabilities", "preprocessed" (784 ints, row-major),
  "feature_maps"}``. Every input goes through the same MNIST preprocessing as `lenet predict`.
- ``GET /api/model``, ``GET /healthz``, ``GET /openapi.json``, and ``GET /docs``: a small
  self-contained page rendering the OpenAPI schema (Swagger UI would load from a CDN).

Limits: a body over 2 MB is 413, a non-image or an image mode with no grayscale (LAB) 415,
malformed JSON or a wrong pixel count 422, and every error has a JSON body ``{"detail": ...}``.
Decoding and inference run in the threadpool, at most ``max_in_flight`` at once; a request that
waits longer than ``queue_timeout`` is 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from lenet.predict import (
    ImageError,
    ImageTooLargeError,
    NoInkError,
    NotAnImageError,
    Predictor,
    UnsupportedImageError,
    preprocess_image,
    preprocess_pixels,
)

STATIC = Path(__file__).with_name("static")
MAX_BODY = 2 * 1024 * 1024
log = logging.getLogger("lenet.serve")


class ApiError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


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


async def _form_file(request: Request, body: bytes) -> bytes:
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
    return await upload.read()


def _pixels_from_json(body: bytes) -> list[Any]:
    try:
        doc = json.loads(body)
    except RecursionError:
        raise ApiError(422, "malformed JSON: nested too deeply") from None
    except ValueError as e:  # bad syntax or encoding, or an integer literal over 4300 digits
        raise ApiError(422, f"malformed JSON: {e}") from None
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


def _infer(predictor: Predictor, kind: str, payload: Any) -> dict[str, Any]:
    """Preprocess one input and run the network; every image problem is a 4xx ApiError."""
    try:
        digit = (preprocess_pixels(payload) if kind == "pixels"
                 else preprocess_image(payload, "upload"))
    except (NotAnImageError, UnsupportedImageError) as e:
        raise ApiError(415, str(e)) from None
    except ImageTooLargeError as e:
        raise ApiError(413, str(e)) from None
    except (NoInkError, ImageError) as e:
        raise ApiError(422, str(e)) from None
    except Exception as e:  # a decoder failure nobody foresaw: the client's file, not a 500
        log.warning("cannot process an upload", exc_info=e)
        raise ApiError(422, f"upload: cannot process this image ({type(e).__name__}: "
                            f"{e})") from None
    pred = predictor.predict(digit[None])[0]
    return {"digit": pred.index, "label": pred.label, "confidence": pred.confidence,
            "probabilities": pred.probabilities, "classes": predictor.classes,
            "preprocessed": digit.reshape(-1).tolist(),
            "feature_maps": _feature_maps(predictor, digit)}


async def _payload(request: Request, max_body: int) -> tuple[str, Any]:
    """The request's input by content type: ("pixels", list) or ("image", bytes)."""
    body = await _read_body(request, max_body)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return "pixels", _pixels_from_json(body)
    if ctype == "multipart/form-data":
        return "image", await _form_file(request, body)
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return "image", body
    raise ApiError(415, f"unsupported content type {ctype or '(none)'!r}; send "
                        "multipart/form-data, image/*, or application/json")


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers JSON ``{"detail": ...}``; an unexpected one is logged, then 500."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, json.loads(json.dumps(exc.errors(), default=str)))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return _error(500, "internal error (logged on the server)")


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


def create_app(weights: str | Path | Predictor, *, max_body: int = MAX_BODY,
               max_in_flight: int = 4, queue_timeout: float = 10.0) -> FastAPI:
    predictor = weights if isinstance(weights, Predictor) else Predictor.load(weights)
    app = FastAPI(title="lenet", version="1", docs_url=None, redoc_url=None,
                  description="Handwritten digit recognition with LeNet-5 "
                              f"({predictor.model_name}).")
    gate = asyncio.Semaphore(max_in_flight)
    _add_error_handlers(app)

    @app.post("/api/predict", summary="Recognize one digit",
              description="Multipart upload (field `file`), a raw image/* body, or JSON "
                          '`{"pixels": [784 numbers 0-255]}` (white ink on black, row-major).',
              responses={413: {"description": "body over 2 MB or image over 50 megapixels"},
                         415: {"description": "not an image, an unsupported image mode "
                                              "(LAB) or content type"},
                         422: {"description": "malformed JSON, wrong pixel count, no ink"},
                         503: {"description": "too many requests in flight"}})
    async def predict(request: Request) -> dict[str, Any]:
        kind, payload = await _payload(request, max_body)
        try:
            await asyncio.wait_for(gate.acquire(), queue_timeout)
        except asyncio.TimeoutError:
            raise ApiError(503, "server busy; retry shortly") from None
        try:
            return await run_in_threadpool(_infer, predictor, kind, payload)
        finally:
            gate.release()

    @app.get("/api/model", summary="The loaded model")
    async def model_info() -> dict[str, Any]:
        return {"name": predictor.model_name, "accuracy": predictor.test_accuracy,
                **predictor.info()}

    _add_pages(app)
    return app
