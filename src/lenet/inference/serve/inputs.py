"""A request's input by its content type (a multipart upload, a raw image, or JSON pixels),
checked, and every problem with it as the 4xx it deserves."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import Request

from lenet.inference.decoding import (
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    UnsupportedImageError,
)
from lenet.inference.preprocess import NoInkError
from lenet.inference.serve.limits import ApiError, busy, read_body

log = logging.getLogger("lenet.inference.serve")


async def read_input(request: Request, max_body: int) -> tuple[str, bytes, dict[str, str]]:
    """The request's input by content type: ("json", body, {}) or ("image", file bytes, the
    multipart body's text fields)."""
    body = await read_body(request, max_body)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return "json", body, {}
    if ctype == "multipart/form-data":
        return "image", *await form_file(request, body)
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return "image", body, {}
    raise ApiError(415, f"unsupported content type {ctype or '(none)'!r}; send "
                        "multipart/form-data, image/*, or application/json")


async def form_file(request: Request, body: bytes) -> tuple[bytes, dict[str, str]]:
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


def json_doc(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError(422, "malformed JSON: nested too deeply") from None
    except ValueError as e:  # bad syntax or encoding, or an integer literal over 4300 digits
        raise ApiError(422, f"malformed JSON: {e}") from None


def checked_pixels(doc: Any) -> list[Any]:
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


def pixels_from_json(body: bytes) -> list[Any]:
    return checked_pixels(json_doc(body))


@contextlib.contextmanager
def input_errors() -> Iterator[None]:
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
        raise busy("out of memory decoding this image") from None
    except ApiError:
        raise
    except Exception as e:  # a decoder failure nobody foresaw: the client's file, not a 500
        log.warning("cannot process an upload", exc_info=e)
        raise ApiError(422, f"upload: cannot process this image ({type(e).__name__}: "
                            f"{e})") from None

