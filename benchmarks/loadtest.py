"""Load and soak testing of a real `lenet serve` process, over real HTTP on 127.0.0.1.

A harness, not part of the lenet package: used by ``benchmarks/serve_load.py`` (the CLI) and
``tests/inference/serve/test_load.py`` (``from benchmarks import loadtest``):

- :func:`start_server` / :func:`stop_server` (or :func:`running_server`): ``python -m lenet serve
  RUN_DIR --host 127.0.0.1 --port P`` as a subprocess, waited for on ``/healthz`` with a deadline,
  stopped with SIGTERM and then killed after a timeout;
- :func:`valid_requests` / :func:`invalid_requests`: prebuilt ``POST /api/predict`` requests
  (JSON pixels, PNG uploads of real digits, dark-on-light scans; and every kind of bad input,
  each with the status it must get);
- :func:`run_clients`: N client threads, each with its own keep-alive connection, bounded by a
  request count and a deadline, recording status, latency and transport errors per request;
- :func:`summarize`: throughput, latency percentiles, status histogram, errors.

httpx (a dev dependency) is imported only when clients run; importing this module starts
nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MAX_BODY = 2 * 1024 * 1024  # the server's limit (lenet.inference.serve.app.MAX_BODY)
BOUNDARY = "lenet-load-boundary"


# --------------------------------------------------------------------------- the server
@dataclass
class Server:
    """A running `lenet serve` subprocess."""

    proc: subprocess.Popen
    port: int
    log_path: Path
    own_log: bool = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float | None:
        return rss_mb(self.pid)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def free_port() -> int:
    """A port on 127.0.0.1 that the OS says is free right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` in MB (VmRSS from /proc), or None where unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0  # kB -> MB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _healthy(url: str, timeout: float) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as r:
            return r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_server(run_dir: str | os.PathLike[str], *, port: int | None = None,
                 startup_timeout: float = 120.0, log_path: str | os.PathLike[str] | None = None,
                 extra_args: Sequence[str] = (), attempts: int = 3) -> Server:
    """Start `python -m lenet serve RUN_DIR` on 127.0.0.1 and wait until /healthz answers.

    The port is picked free by the OS unless given; a server that exits before answering (say,
    the port was taken in between) is retried on a fresh port, `attempts` times in all.
    Raises RuntimeError with the server's log when it never becomes healthy."""
    last_log = ""
    for attempt in range(max(1, attempts)):
        p = port if port is not None else free_port()
        own = log_path is None
        if own:
            fd, name = tempfile.mkstemp(prefix="lenet-serve-", suffix=".log")
            os.close(fd)
            path = Path(name)
        else:
            path = Path(log_path)  # type: ignore[arg-type]
        with path.open("w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lenet", "serve", str(run_dir), "--host", HOST,
                 "--port", str(p), *extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = Server(proc, p, path, own)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if _healthy(server.url, timeout=2.0):
                return server
            time.sleep(0.2)
        exited = proc.poll() is not None
        stop_server(server, keep_log=True)
        last_log = server.log_text()
        if own:
            path.unlink(missing_ok=True)
        if not exited or port is not None or attempt == attempts - 1:
            what = (f"exited with code {proc.returncode}" if exited
                    else f"did not answer /healthz within {startup_timeout:.0f} s")
            raise RuntimeError(f"lenet serve {what}; its log:\n{last_log[-4000:]}")
    raise RuntimeError(f"lenet serve did not start; its log:\n{last_log[-4000:]}")


def stop_server(server: Server, timeout: float = 15.0, *, keep_log: bool = False) -> int | None:
    """SIGTERM, wait up to `timeout` s, then SIGKILL. Returns the exit code (None if it never
    exited even after the kill, which should not happen)."""
    proc = server.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    if server.own_log and not keep_log:
        server.log_path.unlink(missing_ok=True)
    return proc.returncode


@contextlib.contextmanager
def running_server(run_dir: str | os.PathLike[str], **kw: Any) -> Iterator[Server]:
    server = start_server(run_dir, **kw)
    try:
        yield server
    finally:
        stop_server(server)


# --------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class RequestSpec:
    """One prebuilt `POST /api/predict`: its body, headers, and the status it must get."""

    kind: str
    content: bytes
    headers: dict[str, str]
    expect: int = 200
    label: int | None = None  # the true digit, for valid requests of real MNIST digits
    path: str = "/api/predict"


def png_bytes(arr: Any, mode: str = "L", size: int | None = None) -> bytes:
    """A digit (uint8, H x W) as a PNG: :func:`lenet.inference.files.png_bytes`, or, given another
    `mode` or a `size`, that image resized (bilinear) and converted, as a scan or a phone photo
    arrives."""
    from PIL import Image

    from lenet.inference.files import png_bytes as digit_png

    png = digit_png(arr)
    if mode == "L" and not size:
        return png
    img = Image.open(io.BytesIO(png))
    if size:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def multipart(data: bytes, *, filename: str = "digit.png", content_type: str = "image/png",
              field_name: str = "file", boundary: str = BOUNDARY) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with one file part, and its headers."""
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n").encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def _json(doc: Any) -> tuple[bytes, dict[str, str]]:
    return json.dumps(doc).encode(), {"content-type": "application/json"}


def valid_requests(images: Any, labels: Any, *, count: int | None = None) -> list[RequestSpec]:
    """Valid requests for real MNIST digits (uint8 N x 28 x 28, white ink on black), cycling
    through four kinds: JSON pixels, a PNG upload, a dark-on-light RGB scan upscaled to 84 px,
    and a raw image/png body."""
    n = len(images) if count is None else min(count, len(images))
    out = []
    for i in range(n):
        img, label = images[i], int(labels[i])
        kind = ("pixels", "png", "png-dark-on-light", "raw-png")[i % 4]
        if kind == "pixels":
            body, headers = _json({"pixels": img.reshape(-1).tolist()})
        elif kind == "png":
            body, headers = multipart(png_bytes(img))
        elif kind == "png-dark-on-light":
            body, headers = multipart(png_bytes(255 - img, "RGB", 84), filename="scan.png")
        else:
            body, headers = png_bytes(img), {"content-type": "image/png"}
        out.append(RequestSpec(kind, body, headers, 200, label))
    return out


def invalid_requests() -> list[RequestSpec]:
    """One request of each kind of bad input, with the 4xx it must get."""
    import numpy as np

    zeros = [0] * 784
    blank = png_bytes(np.full((40, 40), 255, np.uint8))
    specs = [
        RequestSpec("oversized-upload", *multipart(b"\x00" * (MAX_BODY + 1)), expect=413),
        RequestSpec("oversized-raw", b"\x00" * (MAX_BODY + 1024), {"content-type": "image/png"},
                    expect=413),
        RequestSpec("non-image-upload", *multipart(b"just some text, not an image"),
                    expect=415),
        RequestSpec("non-image-raw", b"GIF89a but not really", {"content-type": "image/gif"},
                    expect=415),
        RequestSpec("bad-json", b'{"pixels": [1, 2,', {"content-type": "application/json"},
                    expect=422),
        RequestSpec("wrong-pixel-count", *_json({"pixels": zeros[:783]}), expect=422),
        RequestSpec("nan-pixels", b'{"pixels": [NaN' + b", 0" * 783 + b"]}",
                    {"content-type": "application/json"}, expect=422),
        RequestSpec("out-of-range-pixels", *_json({"pixels": [10**400, *zeros[1:]]}),
                    expect=422),
        RequestSpec("wrong-content-type", b"hello", {"content-type": "text/plain"}, expect=415),
        RequestSpec("no-content-type", b"hello", {}, expect=415),
        RequestSpec("malformed-multipart", b"--nope\r\ngarbage",
                    {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}, expect=422),
        RequestSpec("multipart-no-boundary", b"garbage",
                    {"content-type": "multipart/form-data"}, expect=422),
        RequestSpec("blank-image", *multipart(blank), expect=422),
        RequestSpec("over-pixel-cap", *multipart(_over_pixel_cap_png()), expect=413),
        # DNS rebinding: a Host header the server does not answer for.
        RequestSpec("foreign-host", json.dumps({"pixels": zeros}).encode(),
                    {"content-type": "application/json", "host": "evil.example"}, expect=400),
    ]
    return specs


def _over_pixel_cap_png() -> bytes:
    """A 1-bit 8000x6300 PNG: 50.4 megapixels (over the server's 50 MP cap) in 7 KB, refused
    from its header before anything is decoded."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (8000, 6300), 1).save(buf, format="PNG")
    return buf.getvalue()


def mixed_plan(valid: Sequence[RequestSpec], invalid: Sequence[RequestSpec], *,
               invalid_share: float = 0.5, length: int = 1000, seed: int = 0
               ) -> list[RequestSpec]:
    """A shuffled cycle of requests, `invalid_share` of them invalid (every invalid kind equally
    often), the rest valid; the clients walk it round and round."""
    rng = random.Random(seed)
    n_bad = round(length * invalid_share) if invalid else 0
    plan = [invalid[i % len(invalid)] for i in range(n_bad)]
    plan += [valid[i % len(valid)] for i in range(length - n_bad)] if valid else []
    rng.shuffle(plan)
    return plan


# --------------------------------------------------------------------------- the clients
@dataclass
class Result:
    """What one request got (responses are checked in the client and not kept)."""

    kind: str
    expect: int
    status: int | None  # None: transport error (refused, reset, timed out...)
    latency_s: float
    error: str | None = None  # the transport error's class, or why the response is wrong
    digit: int | None = None
    label: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == self.expect


def check_response(spec: RequestSpec, status: int, headers: Any, body: bytes
                   ) -> tuple[str | None, int | None]:
    """(what is wrong with this response or None, the predicted digit for a 200)."""
    ctype = headers.get("content-type", "")
    if not ctype.startswith("application/json"):
        return f"non-JSON body ({ctype or 'no content type'})", None
    try:
        doc = json.loads(body)
    except ValueError:
        return "unparseable JSON body", None
    if status == 200:
        digit = doc.get("digit") if isinstance(doc, dict) else None
        if not isinstance(digit, int) or not 0 <= digit <= 9:
            return f"200 without a digit 0-9: {str(doc)[:200]}", None
        return None, digit
    if not isinstance(doc, dict) or not doc.get("detail"):
        return f"{status} without an error message: {str(doc)[:200]}", None
    return None, None


def _client_loop(url: str, plan: Sequence[RequestSpec], take: Callable[[], int | None],
                 results: list[Result], timeout: float) -> None:
    import httpx

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=url, timeout=timeout, limits=limits) as client:
        while (i := take()) is not None:
            spec = plan[i % len(plan)]
            t0 = time.perf_counter()
            try:
                r = client.post(spec.path, content=spec.content, headers=spec.headers)
                body = r.content
            except httpx.HTTPError as e:  # transport errors and the like: a dropped request
                results.append(Result(spec.kind, spec.expect, None, time.perf_counter() - t0,
                                      type(e).__name__, label=spec.label))
                continue
            latency = time.perf_counter() - t0
            problem, digit = check_response(spec, r.status_code, r.headers, body)
            results.append(Result(spec.kind, spec.expect, r.status_code, latency, problem,
                                  digit, spec.label))


def run_clients(url: str, plan: Sequence[RequestSpec], *, clients: int = 8,
                max_requests: int = 2000, max_seconds: float = 600.0, timeout: float = 30.0
                ) -> tuple[list[Result], float]:
    """Send requests from `plan` (cycling) with `clients` concurrent threads until
    `max_requests` have been sent or `max_seconds` have passed, whichever comes first (a request
    under way then finishes, bounded by `timeout`). Returns (results, wall seconds)."""
    if not plan:
        raise ValueError("empty request plan")
    lock = threading.Lock()
    issued = 0
    deadline = time.monotonic() + max_seconds

    def take() -> int | None:
        nonlocal issued
        with lock:
            if issued >= max_requests or time.monotonic() >= deadline:
                return None
            issued += 1
            return issued - 1

    per_thread: list[list[Result]] = [[] for _ in range(clients)]
    threads = [threading.Thread(target=_client_loop, args=(url, plan, take, per_thread[k],
                                                           timeout),
                                name=f"load-client-{k}", daemon=True)
               for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max_seconds + timeout + 30)
    wall = time.perf_counter() - t0
    return [r for rs in per_thread for r in rs], wall


class RssSampler:
    """Samples a process's RSS every `interval` s in a thread, until stopped (or `max_seconds`)."""

    def __init__(self, pid: int, interval: float = 1.0, max_seconds: float = 3600.0) -> None:
        self.pid, self.interval, self.max_seconds = pid, interval, max_seconds
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < end:
            mb = rss_mb(self.pid)
            if mb is not None:
                self.samples.append(mb)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak(self) -> float | None:
        return max(self.samples) if self.samples else None


# --------------------------------------------------------------------------- figures
def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of `values`, None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Summary:
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    errors: int  # transport errors + wrong status + malformed answers
    transport_errors: int
    server_errors_5xx: int
    unexpected_status: int
    bad_bodies: int
    status_counts: dict[str, int]
    transport_error_types: dict[str, int]
    correct: int
    with_label: int
    per_kind: dict[str, dict[str, Any]] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.with_label if self.with_label else None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "accuracy": self.accuracy}


def summarize(results: Sequence[Result], seconds: float) -> Summary:
    answered = [r for r in results if r.status is not None]
    lat_ms = [1000.0 * r.latency_s for r in answered]
    statuses = Counter("transport-error" if r.status is None else str(r.status)
                       for r in results)
    transport = Counter(r.error for r in results if r.status is None)
    bad_bodies = sum(1 for r in answered if r.error is not None)
    unexpected = sum(1 for r in answered if r.status != r.expect)
    labelled = [r for r in answered if r.label is not None and r.status == 200]
    per_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({r.kind for r in results}):
        rs = [r for r in results if r.kind == kind]
        ms = [1000.0 * r.latency_s for r in rs if r.status is not None]
        per_kind[kind] = {
            "count": len(rs), "expect": rs[0].expect,
            "status_counts": dict(sorted(Counter(
                "transport-error" if r.status is None else str(r.status) for r in rs).items())),
            "ok": sum(r.ok for r in rs), "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99)}
    examples = [f"{r.kind}: expected {r.expect}, got {r.status}: {r.error}"
                for r in results if not r.ok][:10]
    return Summary(
        requests=len(results), seconds=seconds,
        requests_per_s=len(results) / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(lat_ms, 50), p90_ms=percentile(lat_ms, 90),
        p99_ms=percentile(lat_ms, 99), max_ms=max(lat_ms) if lat_ms else None,
        errors=sum(1 for r in results if not r.ok), transport_errors=sum(transport.values()),
        server_errors_5xx=sum(1 for r in answered if r.status >= 500),
        unexpected_status=unexpected, bad_bodies=bad_bodies,
        status_counts=dict(sorted(statuses.items())),
        transport_error_types=dict(sorted(transport.items())),
        correct=sum(1 for r in labelled if r.digit == r.label), with_label=len(labelled),
        per_kind=per_kind, error_examples=examples)


# --------------------------------------------------------------------------- the two modes
def load_digits(count: int, seed: int = 0) -> tuple[Any, Any]:
    """`count` random real MNIST test digits (uint8 N x 28 x 28) and their labels."""
    import numpy as np

    from lenet import data

    data.fetch("mnist")
    images, labels = data.load("mnist", "test")
    images, labels = images.numpy(), labels.numpy()
    idx = np.random.default_rng(seed).choice(len(images), size=min(count, len(images)),
                                             replace=False)
    return images[idx], labels[idx]


def warm_up(url: str, valid: Sequence[RequestSpec], invalid: Sequence[RequestSpec], *,
            clients: int = 8, rounds: int = 3) -> None:
    """A few rounds of every request kind, so caches, allocator pools and threads are in place
    before memory is first measured."""
    kinds = list({s.kind: s for s in valid}.values()) + list(invalid)
    run_clients(url, kinds, clients=clients, max_requests=rounds * len(kinds) + 8 * clients,
                max_seconds=120)


def load_test(server: Server, valid: Sequence[RequestSpec], *, clients: int = 8,
              requests: int = 2000, max_seconds: float = 600.0) -> Summary:
    """`requests` valid requests (the list cycled) from `clients` threads."""
    results, wall = run_clients(server.url, valid, clients=clients, max_requests=requests,
                                max_seconds=max_seconds)
    return summarize(results, wall)


@dataclass
class SoakReport:
    summary: Summary
    rss_start_mb: float | None
    rss_end_mb: float | None
    rss_peak_mb: float | None
    server_alive: bool
    server_tracebacks: int

    @property
    def rss_growth_mb(self) -> float | None:
        if self.rss_start_mb is None or self.rss_end_mb is None:
            return None
        return self.rss_end_mb - self.rss_start_mb

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary.to_dict(), "rss_start_mb": self.rss_start_mb,
                "rss_end_mb": self.rss_end_mb, "rss_growth_mb": self.rss_growth_mb,
                "rss_peak_mb": self.rss_peak_mb, "server_alive": self.server_alive,
                "server_tracebacks": self.server_tracebacks}


def soak_test(server: Server, valid: Sequence[RequestSpec], invalid: Sequence[RequestSpec], *,
              clients: int = 8, seconds: float = 60.0, max_requests: int = 1_000_000,
              invalid_share: float = 0.5, seed: int = 0) -> SoakReport:
    """Mixed valid and invalid requests for `seconds` (at most `max_requests`), with the
    server's RSS read after a warm-up, sampled throughout, and read again at the end."""
    warm_up(server.url, valid, invalid, clients=clients)
    tracebacks_before = server.log_text().count("Traceback")
    rss_start = server.rss_mb()
    plan = mixed_plan(valid, invalid, invalid_share=invalid_share,
                      length=max(1000, 4 * (len(valid) + len(invalid))), seed=seed)
    with RssSampler(server.pid, interval=1.0, max_seconds=seconds + 120) as sampler:
        results, wall = run_clients(server.url, plan, clients=clients,
                                    max_requests=max_requests, max_seconds=seconds)
    rss_end = server.rss_mb()
    peak = max([x for x in (sampler.peak, rss_end) if x is not None], default=None)
    return SoakReport(summarize(results, wall), rss_start, rss_end, peak,
                      server.proc.poll() is None,
                      server.log_text().count("Traceback") - tracebacks_before)


# --------------------------------------------------------------------------- reporting
def _fmt(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _hist(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"


def markdown(load: Summary | None, soak: SoakReport | None, *, clients: int) -> str:
    """The results as a short Markdown table."""
    names = [n for n, s in (("load", load), ("soak", soak)) if s is not None]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    cols = [c for c in (load, soak.summary if soak else None) if c is not None]

    def row(name: str, values: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(values) + " |")

    row("clients", [str(clients)] * len(cols))
    row("requests", [str(s.requests) for s in cols])
    row("seconds", [_fmt(s.seconds) for s in cols])
    row("requests/s", [_fmt(s.requests_per_s) for s in cols])
    row("p50 ms", [_fmt(s.p50_ms) for s in cols])
    row("p90 ms", [_fmt(s.p90_ms) for s in cols])
    row("p99 ms", [_fmt(s.p99_ms) for s in cols])
    row("errors", [str(s.errors) for s in cols])
    row("5xx", [str(s.server_errors_5xx) for s in cols])
    row("transport errors", [str(s.transport_errors) for s in cols])
    row("status codes", [_hist(s.status_counts) for s in cols])
    row("accuracy (real digits)", [
        "n/a" if s.accuracy is None else f"{100 * s.accuracy:.1f}% of {s.with_label}"
        for s in cols])
    if soak:
        blank = [""] * (len(cols) - 1)
        row("server RSS start MB", [*blank, _fmt(soak.rss_start_mb)])
        row("server RSS end MB", [*blank, _fmt(soak.rss_end_mb)])
        row("server RSS growth MB", [*blank, _fmt(soak.rss_growth_mb)])
        row("server RSS peak MB", [*blank, _fmt(soak.rss_peak_mb)])
        row("server tracebacks logged", [*blank, str(soak.server_tracebacks)])
    return "\n".join(lines)
