"""What one request may cost the server: the body's size, an image's pixels and the memory its
decoding will hold (both read from its header before anything is decoded), and a turn at the
work (:class:`Gate`); and the error every refusal is (:class:`ApiError`, answered as JSON
``{"detail": ...}``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from lenet.inference.decoding import ImageError, ImageTooLargeError, decode_cost

MAX_BODY = 2 * 1024 * 1024
# Bytes that the decodes running at once may hold together (by decode_cost's estimate, from the
# headers): one request over it is 413; big images are decoded one after another under it.
MAX_DECODE_BYTES = 200 * 1024 * 1024  # `lenet serve --max-decode-mb`
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


Cost = tuple[int, int]  # an image's (pixels, bytes its decoding may hold)


# --------------------------------------------------------------------------- admission
class Gate:
    """Admission to /api/predict's work, every piece of which runs in a worker thread.

    At most `queue` requests are admitted at once (reading their body, waiting or running);
    more are 503 at once, so the bodies held in memory stay under `queue` x the body limit. Of
    those, at most `slots` run at once, and their images hold at most `pixels` pixels and
    `memory` bytes (by :func:`~lenet.inference.decoding.decode_cost`) together, so that a few
    huge images are decoded one after another while small ones run side by side.
    Turns are first come, first served; one not given within `timeout` seconds is 503.
    Only ever used from the event loop's thread, so plain counters need no lock.
    """

    def __init__(self, slots: int, pixels: int, queue: int, timeout: float,
                 memory: int = MAX_DECODE_BYTES) -> None:
        self.slots, self.pixels, self.queue, self.timeout = slots, pixels, queue, timeout
        self.memory = memory
        self.admitted = self.running = self.decoding = self.holding = 0
        self._waiters: collections.deque[tuple[Cost, asyncio.Future[None]]] = (
            collections.deque())

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        if self.admitted >= self.queue:
            raise busy(f"{self.admitted} requests already in progress")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    def _fits(self, cost: Cost) -> bool:
        # A lone image always fits: the request-level caps (image_cost) already bound it.
        return self.running < self.slots and (self.running == 0 or (
            self.decoding + cost[0] <= self.pixels and self.holding + cost[1] <= self.memory))

    def _take(self, cost: Cost) -> None:
        self.running += 1
        self.decoding += cost[0]
        self.holding += cost[1]

    def _release(self, cost: Cost) -> None:
        self.running -= 1
        self.decoding -= cost[0]
        self.holding -= cost[1]
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            want, fut = self._waiters.popleft()
            if not fut.done():  # a cancelled waiter has already left
                self._take(want)
                fut.set_result(None)

    @contextlib.asynccontextmanager
    async def turn(self, cost: Cost = (0, 0)) -> AsyncIterator[None]:
        """A turn for work on an image of `cost` = (pixels, bytes to decode it); (0, 0) for
        anything else."""
        if not self._waiters and self._fits(cost):
            self._take(cost)
        else:
            entry = (cost, asyncio.get_running_loop().create_future())
            self._waiters.append(entry)
            try:
                await asyncio.wait_for(entry[1], self.timeout)
            except BaseException as e:  # timed out, or the server is shutting down
                if entry[1].done() and not entry[1].cancelled():
                    self._release(cost)  # the turn came just as the wait ended: pass it on
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
            self._release(cost)


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



def image_cost(data: bytes, max_pixels: int, max_bytes: int) -> Cost:
    """An image's (pixels, bytes its decoding may hold), from its header alone (nothing is
    decoded; a format lenet does not take is not even opened); over `max_pixels` or
    `max_bytes` is 413. (0, 0) when it is refused for another reason: the decode (as cheap,
    from the header) then says why, in the words `lenet predict` uses."""
    try:
        w, h, cost = decode_cost(data, "upload")
    except ImageTooLargeError as e:
        raise ApiError(413, str(e)) from None
    except (ImageError, MemoryError):
        return 0, 0
    if w * h > max_pixels:
        raise ApiError(413, f"upload: image is {w}x{h} = {w * h / 1e6:.1f} megapixels; the "
                            f"limit is {max_pixels / 1e6:g} megapixels (scale it down first)")
    if cost > max_bytes:
        raise ApiError(413, f"upload: image is {w}x{h}; decoding it would take about "
                            f"{cost >> 20} MB, and this server's limit is {max_bytes >> 20} MB "
                            "(scale it down, or send a baseline JPEG)")
    return w * h, cost
