"""`lenet serve` as a user runs it: a real process, a real port on 127.0.0.1, a clean stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lenet import cli
from lenet.models import get_weights
from lenet.models.hub import DEFAULT_WEIGHTS
from lenet.models.weights import read

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("weights", ["run", None])
def test_serve_process_answers_and_stops(weights, run_dir, tmp_path):
    """With a run, and with none: the bundled default weights (a lenet5 model)."""
    port = _free_port()
    log = (tmp_path / "serve.log").open("w+")
    chosen = [str(run_dir)] if weights == "run" else []
    proc = subprocess.Popen([sys.executable, "-m", "lenet", "serve", *chosen, "--port",
                             str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"server exited: {(tmp_path / 'serve.log').read_text()}"
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not answer within 60 s"
                time.sleep(0.2)
        assert r.json() == {"status": "ok"}
        info = httpx.get(f"http://127.0.0.1:{port}/api/model", timeout=10).json()
        assert info["name"] == "lenet5"
        recorded = get_weights(DEFAULT_WEIGHTS).test_accuracy if weights is None else \
            read(run_dir)[1].test_accuracy
        assert info["test_accuracy"] == recorded
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise AssertionError("lenet serve did not stop within 15 s of SIGINT") from None
        log.close()
    assert "serving on http://127.0.0.1:" in (tmp_path / "serve.log").read_text()


def test_serve_bad_weights_is_a_clean_error(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "lenet: error:" in err and "no such weights file" in err
    assert cli.main(["serve", str(tmp_path), "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err
    # A reader named is loaded at start: a wrong one is this line, not a 503 later.
    assert cli.main(["serve", "--reader", str(tmp_path / "nosuch"), "--port", "0"]) == 2
    assert "nosuch: no such weights file" in capsys.readouterr().err
