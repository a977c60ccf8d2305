"""What every response carries and every request must show: the security headers (a
Content-Security-Policy allowing only this origin, plus the static pages' own inline blocks by
hash) and the Host check that stops DNS rebinding (:class:`Guard`)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lenet.inference.serve.limits import json_error

STATIC = Path(__file__).with_name("static")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")


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
        return host is not None and host_name(host.decode("latin-1")) in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        if not self._host_ok(scope):
            await json_error(400, self.refusal)(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)


def default_hosts(bound: str) -> list[str]:
    """The Host names served by default: this machine's loopback names, and the address the
    server is bound to unless that is a wildcard (0.0.0.0 is no name a client asks for)."""
    bound = bound.strip("[]").lower()
    return [*LOCAL_HOSTS, *([bound] if bound not in WILDCARD_ADDRESSES + LOCAL_HOSTS else [])]

