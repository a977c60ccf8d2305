"""Running the app: :func:`listen` binds the port (a port in use is a one-line error), and
:func:`run_server` runs uvicorn's h11 protocol with a read deadline and lenet's own answer to a
request h11 cannot parse (:class:`DeadlineH11Protocol`).

:class:`DeadlineH11Protocol` subclasses uvicorn's ``H11Protocol``, which is not public API: it
overrides ``connection_made``, ``data_received``, ``on_response_complete``,
``connection_lost`` and ``send_400_response``, and reads ``conn``, ``loop`` and ``transport``.
Tested with uvicorn 0.55.0 and h11 0.16.0 (pyproject's upper bound on uvicorn keeps to the
minors tested; tests/reliability/test_serve.py checks every override on a real server)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from lenet.errors import ConfigError
from lenet.inference.serve.security import malformed_request, security_headers

READ_TIMEOUT = 30.0  # seconds for one request's headers and body to arrive
MAX_HEADER_BYTES = 16 * 1024  # h11's limit on the request line and headers: more is 400


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
    its connection, and its task, forever.) A request h11 cannot parse is answered as every
    lenet error is: a JSON 400 with `security` headers. :func:`server_config` sets both."""

    read_timeout: float = READ_TIMEOUT
    security: dict[str, str] = {}  # noqa: RUF012  (set once, by server_config, per subclass)
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

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own answers text/plain, without the app's security headers.
        headers, body = malformed_request(self.security)
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

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
                  log_level: str = "info") -> uvicorn.Config:
    """The uvicorn.Config that :func:`run_server` uses (h11 with the read deadline and JSON
    400s, no Server header, 5 s keep-alive, 10 s for requests under way to finish at shutdown), with
    lenet.inference.serve's log lines sent where uvicorn's go."""
    protocol = type("DeadlineH11", (DeadlineH11Protocol,),
                    {"read_timeout": read_timeout, "security": security_headers()})
    # ws="none": the app has no WebSocket routes, so an Upgrade request is answered as the
    # plain HTTP request it also is (with websockets installed, uvicorn would answer 403 itself).
    config = uvicorn.Config(app, http=protocol, ws="none", log_level=log_level,
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
    config = server_config(app, read_timeout=read_timeout, log_level=log_level)
    uvicorn.Server(config).run(sockets=[sock])
