"""What one request may cost the server: the body's size, an image's pixels (read from its
header before anything is decoded), and a turn at the work (:class:`Gate`); and the error every
refusal is (:class:`ApiError`, answered as JSON ``{"detail": ...}``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from PIL import Image

MAX_BODY = 2 * 1024 * 1024
RETRY_AFTER = "1"


class ApiError(Exception):
    """A refusal: its status, the ``detail`` its JSON body says, and any extra headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def json_error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def busy(why: str) -> ApiError:
    return ApiError(503, f"server busy ({why}); retry shortly", {"Retry-After": RETRY_AFTER})


# --------------------------------------------------------------------------- admission
class Gate:
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
            raise busy(f"{self.admitted} requests already in progress")
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
                    raise busy(f"no turn within {self.timeout:g} s") from None
                raise
        try:
            yield
        finally:
            self._release(pixels)


# --------------------------------------------------------------------------- reading requests
async def read_body(request: Request, limit: int) -> bytes:
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



def image_pixels(data: bytes, limit: int) -> int:
    """The image's pixel count from its header alone (nothing decoded yet); over `limit` is 413.

    0 when Pillow cannot read even the header: the decode then says what is wrong."""
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

