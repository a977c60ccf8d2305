"""`lenet serve` under load: a real server process, 8 concurrent clients over real HTTP.

Correctness only (every answer right, nothing dropped, memory flat); speed is measured by
benchmarks/serve_load.py and never asserted here.
"""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks import loadtest

pytest.importorskip("httpx")

CLIENTS = 8


@pytest.fixture(scope="module")
def server(run_dir):
    """`python -m lenet serve RUN_DIR --host 127.0.0.1 --port <free>`, stopped at the end."""
    srv = loadtest.start_server(run_dir, startup_timeout=120)
    try:
        yield srv
    finally:
        code = loadtest.stop_server(srv, timeout=15, keep_log=True)
        log = srv.log_text()
        srv.log_path.unlink(missing_ok=True)
        assert code is not None, "lenet serve did not exit after SIGTERM and SIGKILL"
        assert "Traceback" not in log, log[-4000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_concurrent_valid_requests_all_answered_right(server, mnist_test):
    images, labels = mnist_test
    valid = loadtest.valid_requests(images[:400], labels[:400])
    assert {s.kind for s in valid} == {"pixels", "png", "png-dark-on-light", "raw-png"}
    results, _ = loadtest.run_clients(server.url, valid, clients=CLIENTS, max_requests=400,
                                      max_seconds=400, timeout=60)
    s = loadtest.summarize(results, 1.0)
    assert s.requests == 400, s.status_counts
    assert s.errors == 0 and s.transport_errors == 0, s.error_examples
    assert s.status_counts == {"200": 400}
    assert all(r.digit is not None and 0 <= r.digit <= 9 for r in results)
    # Each digit was sent exactly once; this run_dir's model (1 epoch on 5,000 digits) gets
    # 93% of these 400 right through the server (PNG uploads ~90%, pixels ~96%).
    assert s.with_label == 400 and s.correct >= 360, f"{s.correct}/400 right"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_soak_mixed_valid_and_invalid_requests(server, mnist_test):
    images, labels = mnist_test
    valid = loadtest.valid_requests(images[:200], labels[:200])
    invalid = loadtest.invalid_requests()
    report = loadtest.soak_test(server, valid, invalid, clients=CLIENTS, seconds=10,
                                max_requests=20_000)
    s = report.summary
    assert report.server_alive and report.server_tracebacks == 0, server.log_text()[-4000:]
    assert s.server_errors_5xx == 0, s.error_examples
    assert s.transport_errors == 0, s.transport_error_types
    # Every request got the status it must (the 4xx ones with a JSON {"detail": ...}).
    assert s.errors == 0, s.error_examples
    assert {spec.kind for spec in invalid} <= set(s.per_kind), "an invalid kind was never sent"
    for kind, k in s.per_kind.items():
        assert k["ok"] == k["count"] and k["status_counts"] == {str(k["expect"]): k["count"]}, \
            (kind, k)
    assert {"413", "415", "422", "200"} <= set(s.status_counts)
    assert report.rss_start_mb is not None and report.rss_end_mb is not None
    assert report.rss_growth_mb < 50, (report.rss_start_mb, report.rss_end_mb)


def _to(path: str, specs: list) -> list:
    """The same requests sent to another endpoint (kind names keep them apart)."""
    return [dataclasses.replace(s, path=path, kind=f"{s.kind}@activations") for s in specs]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_activations_under_load_valid_and_invalid(server, mnist_test):
    """/api/activations (every layer, bigger answers) beside /api/predict, 8 clients: every
    answer right, no 5xx, memory flat. Bounded: 10 s or 2,000 requests."""
    images, labels = mnist_test
    valid = _to("/api/activations", loadtest.valid_requests(images[:120], labels[:120]))
    valid += loadtest.valid_requests(images[120:160], labels[120:160])
    invalid = _to("/api/activations", loadtest.invalid_requests())
    report = loadtest.soak_test(server, valid, invalid, clients=CLIENTS, seconds=10,
                                max_requests=2_000)
    s = report.summary
    assert report.server_alive and report.server_tracebacks == 0, server.log_text()[-4000:]
    assert s.server_errors_5xx == 0 and s.transport_errors == 0, s.error_examples
    assert s.errors == 0, s.error_examples
    for kind, k in s.per_kind.items():
        assert k["ok"] == k["count"] and k["status_counts"] == {str(k["expect"]): k["count"]}, \
            (kind, k)
    assert {"pixels@activations", "png@activations", "oversized-upload@activations",
            "blank-image@activations"} <= set(s.per_kind)
    # These 120 digits are sent as they are: the tiny model reads most of them right.
    right = [r for r in loadtest.run_clients(server.url, valid[:120], clients=CLIENTS,
                                              max_requests=120, max_seconds=120, timeout=60)[0]]
    assert sum(r.digit == r.label for r in right) >= 100, "too few right through activations"
    assert report.rss_growth_mb is not None and report.rss_growth_mb < 50
