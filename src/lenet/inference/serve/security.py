"""What every response carries and every request must show: the security headers (a
Content-Security-Policy allowing only this origin, plus the static pages' own inline blocks by
hash), JSON error bodies, no Range requests, and the Host check that stops DNS rebinding
(:class:`Guard`); and the same for the errors h11 answers itself (:func:`malformed_request`)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from http import HTTPStatus
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lenet.inference.serve.limits import json_error

STATIC = Path(__file__).with_name("static")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")
MAX_ERROR_TEXT = 4096  # bytes of a non-JSON error body kept as its JSON "detail"


def inline_hashes(tag: str) -> str:
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
           f"script-src 'self' {inline_hashes('script')}".rstrip() + "; "
           f"style-src 'self' {inline_hashes('style')}".rstrip() + "; "
           "img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
           "form-action 'self'; frame-ancestors 'none'")
    return {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Cross-Origin-Resource-Policy": "same-origin"}


def host_name(header: str) -> str:
    """The name in a Host header, lowercase, without its port ("[::1]:80" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """The outermost layer: refuses a Host header the server does not answer for, adds the
    security headers to every response (the 500 handler adds them itself), and keeps every
    error body JSON.

    Range requests are not served: ``Range`` and ``If-Range`` are dropped from every request
    (RFC 9110 lets a server ignore them) and responses say ``Accept-Ranges: none``, so a GET
    always answers the whole file, 200, and a garbage ``Range`` header changes nothing (the
    page's files are small; ranges would add only ways to fail). An error response that is not
    JSON (one a library makes on its own) has its body made ``{"detail": ...}``."""

    def __init__(self, app: ASGIApp, headers: dict[str, str], allowed: Iterable[str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.headers.append((b"accept-ranges", b"none"))
        self.allowed = {h.lower() for h in allowed}
        self.any_host = "*" in self.allowed
        self.refusal = ("this server does not answer for the Host header in the request; it "
                        f"answers for: {', '.join(sorted(self.allowed))} (start `lenet serve` "
                        "with --allowed-host NAME to add a name)")

    def _host_ok(self, scope: Scope) -> bool:
        if self.any_host:
            return True
        host = next((v for k, v in scope["headers"] if k == b"host"), None)
        return host is not None and host_name(host.decode("latin-1")) in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                      if k not in (b"range", b"if-range")]}
        send_secured = _Secured(send, self.headers, scope["method"] == "HEAD")
        if not self._host_ok(scope):
            await json_error(400, self.refusal)(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)


class _Secured:
    """`send`, with the security headers added to the response, ``Accept-Ranges`` replaced, and
    a non-JSON error body (up to MAX_ERROR_TEXT bytes of it kept) sent as ``{"detail": ...}``."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]], head: bool) -> None:
        self.send, self.headers, self.head = send, headers, head
        self.held: Message | None = None  # an error's start, held until its body is read
        self.text = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*(h for h in message.get("headers", []) if h[0] != b"accept-ranges"),
                       *self.headers]
            message = {**message, "headers": headers}
            if message["status"] >= 400 and not self.head and not _is_json(headers):
                self.held = message
                return
        elif message["type"] == "http.response.body" and self.held is not None:
            self.text = (self.text + message.get("body", b""))[:MAX_ERROR_TEXT]
            if message.get("more_body", False):
                return
            await self._send_json(self.held)
            return
        await self.send(message)

    async def _send_json(self, start: Message) -> None:
        status = start["status"]
        detail = self.text.decode("utf-8", "replace").strip() or _phrase(status)
        body = json.dumps({"detail": detail}).encode()
        headers = [(k, v) for k, v in start["headers"]
                   if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]
        await self.send({**start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    return ctype.split(b";")[0].strip().lower() == b"application/json"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"error {status}"


def default_hosts(bound: str) -> list[str]:
    """The Host names served by default: this machine's loopback names, and the address the
    server is bound to unless that is a wildcard (0.0.0.0 is no name a client asks for)."""
    bound = bound.strip("[]").lower()
    return [*LOCAL_HOSTS, *([bound] if bound not in WILDCARD_ADDRESSES + LOCAL_HOSTS else [])]



def malformed_request(headers: dict[str, str]) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and body of the 400 that answers a request h11 cannot parse (a bad request
    line, headers over the limit, a conflicting Content-Length): JSON, as every lenet error,
    with the security headers, and the connection closed."""
    body = json.dumps({"detail": "malformed HTTP request (a bad request line or header, "
                                 "headers over the size limit, or a conflicting "
                                 "Content-Length); the connection is closed"}).encode()
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"), (b"accept-ranges", b"none"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items())], body
