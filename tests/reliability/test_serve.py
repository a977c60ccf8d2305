"""`lenet serve` as a real process under unlucky and hostile clients, over real sockets on
127.0.0.1: aborted uploads, half-sent requests, foreign Host headers, a port already taken, and
three huge images at once. Every wait is bounded."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import threading
import time

import httpx
import pytest

from benchmarks import loadtest
from tests.commands.cli import lenet
from tests.reliability import bombs

READ_TIMEOUT = 2.0  # the server's --read-timeout here, so that the deadline tests are short


@pytest.fixture(scope="module")
def server(run_dir):
    srv = loadtest.start_server(run_dir, startup_timeout=120,
                                extra_args=["--read-timeout", str(READ_TIMEOUT)])
    try:
        yield srv
    finally:
        code = loadtest.stop_server(srv, timeout=20, keep_log=True)
        log = srv.log_text()
        srv.log_path.unlink(missing_ok=True)
        assert code is not None, "lenet serve did not exit after SIGTERM and SIGKILL"
        assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]


def _log_lines(server: loadtest.Server) -> list[str]:
    return server.log_text().splitlines()


def _wait_for_lines(server: loadtest.Server, start: int, pattern: str, count: int,
                    timeout: float = 15.0) -> list[str]:
    """The log lines after the first `start`, once `count` of them match `pattern`."""
    deadline = time.monotonic() + timeout
    while True:
        new = _log_lines(server)[start:]
        if sum(bool(re.search(pattern, line)) for line in new) >= count:
            return new
        assert time.monotonic() < deadline, f"no {count} lines {pattern!r} in: {new}"
        time.sleep(0.1)


def _half_upload(port: int) -> socket.socket:
    """A connection that has sent the headers and half of a multipart PNG upload."""
    part = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
            b"Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n" + b"\x00" * 30_000)
    head = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {2 * len(part)}\r\n\r\n").encode()
    sock = socket.create_connection((loadtest.HOST, port), timeout=15)
    sock.sendall(head + part)
    return sock


def test_aborted_uploads_are_one_short_line_each(server):
    start = len(_log_lines(server))
    for _ in range(3):
        sock = _half_upload(server.port)
        time.sleep(0.2)  # the server is now waiting for the rest of the body
        sock.close()
    new = _wait_for_lines(server, start,
                          "closed the connection before the answer to POST /api/predict", 3)
    time.sleep(0.5)  # anything else it would log about them comes now
    new = _log_lines(server)[start:]
    assert len(new) == 3, new  # was 318 lines (errors and tracebacks) before
    assert all(len(line) < 120 for line in new), new


def _closed_by_server_within(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes `sock` (read returns EOF), asserted under `limit`."""
    t0 = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        raise AssertionError(f"the server kept a half-sent request open over {limit} s") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def test_half_sent_requests_are_closed_after_the_read_timeout(server):
    start = len(_log_lines(server))
    silent = socket.create_connection((loadtest.HOST, server.port), timeout=15)
    headers = socket.create_connection((loadtest.HOST, server.port), timeout=15)
    headers.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    body = _half_upload(server.port)
    with silent, headers, body:
        for sock in (silent, headers, body):
            waited = _closed_by_server_within(sock, READ_TIMEOUT + 10)
            assert waited < READ_TIMEOUT + 10
    # Only the request that reached the app is logged, in one line; the others are just closed.
    new = _wait_for_lines(server, start, "closed the connection before the answer", 1)
    assert len(new) == 1, new
    with httpx.Client(base_url=server.url, timeout=30) as c:  # and it still serves
        assert c.get("/healthz").json() == {"status": "ok"}


def test_security_headers_and_host_check_over_http(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for r in (c.get("/"), c.get("/static/style.css"), c.get("/nope"),
                  c.post("/api/predict", content=b"x", headers={"content-type": "text/plain"})):
            assert r.headers["x-content-type-options"] == "nosniff", r.request.url
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert r.headers["content-security-policy"].startswith("default-src 'self';")
            assert "server" not in r.headers  # no "uvicorn" banner
        evil = c.get("/docs/", headers={"host": "evil.example"}, follow_redirects=False)
        assert evil.status_code == 400 and "location" not in evil.headers
        assert "evil" not in evil.text and "--allowed-host" in evil.json()["detail"]
        assert c.get("/docs/", follow_redirects=False).status_code == 404  # no redirect
        assert c.get("/healthz", headers={"host": f"localhost:{server.port}"}).status_code == 200


def test_a_port_in_use_is_one_line_and_exit_2(run_dir):
    with socket.socket() as holder:
        holder.bind((loadtest.HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = lenet("serve", str(run_dir), "--port", str(port), check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"lenet: error: port {port} on 127.0.0.1 is in use; choose another with --port"]
    assert "serving on" not in proc.stdout


def _vm_hwm_mb(pid: int) -> float:
    """Peak resident memory of process `pid` so far, in MB (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def _reset_peak(pid: int) -> None:
    """Reset process `pid`'s VmHWM to its present size (Linux 4.0+), so that what an earlier
    test's requests raised it to does not hide what this one's do."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


@pytest.fixture(scope="module")
def huge_images() -> dict[str, bytes]:
    """A dark "1" on white in a 7000x7000 RGB image (49 megapixels, under the 50 MP cap), as
    a PNG (160 KB) and a JPEG (800 KB): both far under the 2 MB body limit."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (7000, 7000), "white")
    ImageDraw.Draw(img).rectangle((3300, 1000, 3700, 6000), fill="black")
    out = {}
    for fmt, options in (("PNG", {"compress_level": 6}), ("JPEG", {"quality": 90})):
        buf = io.BytesIO()
        img.save(buf, format=fmt, **options)
        out[fmt] = buf.getvalue()
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_three_huge_images_at_once_stay_within_300_mb(server, huge_images, fmt):
    data = huge_images[fmt]
    assert len(data) < loadtest.MAX_BODY
    with httpx.Client(base_url=server.url, timeout=60) as c:  # warm: first-request allocations
        assert c.post("/api/predict", content=loadtest.png_bytes(_small_one()),
                      headers={"content-type": "image/png"}).status_code == 200
    before = _vm_hwm_mb(server.pid)
    answers: list[httpx.Response | Exception] = []

    def post() -> None:
        try:
            answers.append(httpx.post(server.url + "/api/predict", timeout=90,
                                      files={"file": ("big", data, "application/octet-stream")}))
        except httpx.HTTPError as e:
            answers.append(e)

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    growth = _vm_hwm_mb(server.pid) - before
    assert all(isinstance(r, httpx.Response) for r in answers), answers
    # Answered (a digit) or refused (413: too big to decode at full size; 503: no turn in
    # time), never a crash; and the server's peak memory grew by at most 300 MB.
    for r in answers:
        assert r.status_code in (200, 413, 503), r.text[:300]
        assert r.json()["digit"] in range(10) if r.status_code == 200 else r.json()["detail"]
    assert len(answers) == 3 and growth <= 300, (
        f"peak RSS grew by {growth:.0f} MB", [r.status_code for r in answers])


def _small_one():
    import numpy as np

    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    return digit


def test_the_command_wires_allowed_hosts_and_checks_its_flags(run_dir, monkeypatch, capsys):
    """`lenet serve --allowed-host NAME` answers NAME besides the local names; the server
    itself is not started here (run_server is replaced), the socket is bound and closed."""
    from fastapi.testclient import TestClient

    import lenet.inference.serve.app as A
    from lenet import cli

    served = {}
    monkeypatch.setattr(A, "run_server", lambda app, sock, **kw: served.update(
        app=app, port=sock.getsockname()[1], **kw))
    assert cli.main(["serve", str(run_dir), "--port", "0", "--allowed-host", "digits.example",
                     "--read-timeout", "7"]) == 0
    assert served["read_timeout"] == 7.0 and served["port"] > 0
    assert capsys.readouterr().out == f"lenet: serving on http://127.0.0.1:{served['port']}/ " \
                                      "(Ctrl-C to stop)\n"
    with TestClient(served["app"]) as c:
        for host, status in (("digits.example", 200), ("localhost:8000", 200),
                             ("127.0.0.1", 200), ("other.example", 400)):
            assert c.get("/healthz", headers={"host": host}).status_code == status, host
    assert cli.main(["serve", str(run_dir), "--read-timeout", "0"]) == 2
    assert capsys.readouterr().err.strip() == \
        "lenet: error: --read-timeout 0: expected a number of seconds above 0"
    assert cli.main(["serve", str(run_dir), "--max-decode-mb", "8"]) == 2
    assert capsys.readouterr().err.strip() == \
        "lenet: error: --max-decode-mb 8: expected at least 16"


# --------------------------------------------------------------------------- issue 32: bombs
def _post_all(url: str, bodies: list[bytes]) -> list[httpx.Response | Exception]:
    """Each body POSTed as a raw image to /api/predict, all at once (one thread each)."""
    answers: list[httpx.Response | Exception] = []

    def post(body: bytes) -> None:
        try:
            answers.append(httpx.post(url + "/api/predict", content=body, timeout=90,
                                      headers={"content-type": "application/octet-stream"}))
        except httpx.HTTPError as e:
            answers.append(e)

    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert not any(t.is_alive() for t in threads), "a request got no answer within 100 s"
    return answers


@pytest.mark.timeout(180)
def test_six_ico_tiff_gif_bombs_at_once_stay_within_300_mb(server):
    """Issue 32: an ICO holding a 12000x12000 PNG raised the server's peak memory 474 -> 899 MB,
    six at once 899 -> 3,826 MB. Now: six hidden or declared bombs at once, then six that are
    just under the limits (decoded, within the decode budget), grow the peak by <= 300 MB."""
    refused = [bombs.ico(bombs.png(12000, 12000)), bombs.ico(bombs.png(12000, 12000), 16),
               bombs.tiff(12000, 12000), bombs.tiff(64, 64, tile=16384),
               bombs.gif((12000, 12000), [(12000, 12000)]),
               bombs.gif((64, 64), [(12000, 12000)])]
    decoded = [bombs.tiff(4000, 4000), bombs.gif((4000, 4000), [(4000, 4000)])] * 3
    with httpx.Client(base_url=server.url, timeout=60) as c:  # warm: first-request allocations
        assert c.post("/api/predict", content=loadtest.png_bytes(_small_one()),
                      headers={"content-type": "image/png"}).status_code == 200
    _reset_peak(server.pid)
    before = _vm_hwm_mb(server.pid)
    first = _post_all(server.url, refused)
    second = _post_all(server.url, decoded)
    growth = _vm_hwm_mb(server.pid) - before
    assert all(isinstance(r, httpx.Response) for r in first + second), first + second
    statuses = [[r.status_code for r in answers] for answers in (first, second)]
    assert sorted(statuses[0]) == [413, 413, 413, 413, 415, 415], statuses  # read no further
    assert set(statuses[1]) <= {422, 503}, statuses  # decoded: blank ("no ink"), or busy
    for r in first + second:
        assert r.json()["detail"] and r.headers["x-content-type-options"] == "nosniff"
    assert growth <= 300, (f"peak RSS grew by {growth:.0f} MB", statuses)


# --------------------------------------------------------------------------- h11's own 400s
def _raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` on a fresh connection; (status, headers, body) of the answer, read until
    the server closes the connection."""
    with socket.create_connection((loadtest.HOST, port), timeout=15) as sock:
        # The server may answer and close before reading it all.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 1024 * 1024 + b"\r\n\r\n",
    b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
    b"Content-Length: 7\r\n\r\nhello",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
], ids=["bad-request-line", "1mb-header", "conflicting-content-length", "bad-header-line"])
def test_h11_refusals_are_json_with_the_security_headers(server, request_bytes):
    status, headers, body = _raw_exchange(server.port, request_bytes)
    assert status == 400, (status, headers, body[:200])
    assert headers["content-type"] == "application/json", headers
    assert json.loads(body)["detail"].startswith("malformed HTTP request"), body
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["content-security-policy"].startswith("default-src 'self';")
    assert headers["connection"] == "close" and "server" not in headers


@pytest.mark.parametrize("range_header", ["garbage", "bytes=999999999-", "bytes=5-2",
                                          "items=0-1", "bytes=0-1", "bytes=" + ",".join(
                                              ["0-1"] * 200)])
def test_range_headers_are_ignored(server, range_header):
    """The server does not serve ranges (documented in lenet.inference.serve.security.Guard):
    any Range header, garbage or not, gets the whole file, 200, and says Accept-Ranges: none."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        whole = c.get("/static/app.js")
        r = c.get("/static/app.js", headers={"range": range_header, "if-range": "x"})
    assert r.status_code == 200 and r.content == whole.content, (r.status_code, r.text[:200])
    assert r.headers["accept-ranges"] == "none" and "content-range" not in r.headers


@pytest.mark.parametrize("missing", ["h11", "fastapi"])
def test_a_missing_serve_extra_names_the_extra_and_fastapi(missing, monkeypatch, capsys):
    """Issue 31: the hint named h11 (whichever module was missing), not the extra."""
    import sys

    import lenet.inference.serve as package
    from lenet import cli

    for name in [m for m in sys.modules if m.startswith("lenet.inference.serve.")]:
        # Imported afresh here, then the originals put back (in sys.modules and on the package).
        monkeypatch.setattr(package, name.rsplit(".", 1)[1], sys.modules[name], raising=False)
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # `import NAME` now fails
    assert cli.main(["serve", "--port", "0"]) == 2
    assert capsys.readouterr().err == (
        f"lenet: error: `lenet serve` needs the serve extra (FastAPI and uvicorn; {missing} is "
        'missing): pip install "lenet[serve]"\n')


def test_a_websocket_upgrade_is_answered_as_plain_http(server):
    """No WebSocket routes: an Upgrade request gets the app's own answer (and headers)."""
    status, headers, body = _raw_exchange(server.port, (
        b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, close\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
    assert status == 404 and json.loads(body)["detail"], (status, body[:200])
    assert headers["x-content-type-options"] == "nosniff"
