"""Signals while `lenet train` runs (issue 32): the first Ctrl-C or SIGTERM checkpoints and
stops (130/143); a second one, even 10 ms later while that checkpoint is written or the process
unwinds, exits at once with the same codes, no traceback, and the last complete checkpoint
resumes. Real `python -m lenet` processes, each wait bounded."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import TINY_ARGS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.name != "posix", reason="POSIX signals")]


def _start(run: Path, *extra: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """`python -m lenet train` (a tiny run of many epochs) and a queue of its stderr lines."""
    proc = subprocess.Popen([sys.executable, "-m", "lenet", "train", *TINY_ARGS, "--epochs",
                             "12", "--run-dir", str(run), *extra],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put("")  # end of output

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def _wait_for(lines: queue.Queue[str], text: str, seen: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        seen.append(line)
        assert line, f"ended before {text!r}: {''.join(seen)}"
        if text in line:
            return


def _rest(proc: subprocess.Popen[str], lines: queue.Queue[str], seen: list[str]) -> str:
    proc.wait(timeout=60)
    while (line := lines.get(timeout=10)):
        seen.append(line)
    return "".join(seen)


@pytest.mark.parametrize(("first", "second", "code"), [
    (signal.SIGINT, signal.SIGINT, 130),
    (signal.SIGTERM, signal.SIGTERM, 143),
    (signal.SIGINT, signal.SIGTERM, 143),  # the second decides: it is the one that ends it
], ids=["int-int", "term-term", "int-term"])
def test_a_second_signal_10ms_later_exits_at_once(tmp_path, mnist_ready, first, second, code):
    # Was: a KeyboardInterrupt traceback (rc -2) for Ctrl-C twice; 130 or -15 for SIGTERM twice.
    run = tmp_path / "run"
    proc, lines = _start(run)
    seen: list[str] = []
    try:
        _wait_for(lines, "epoch  2/12", seen)  # epoch 1 checkpointed
        proc.send_signal(first)
        time.sleep(0.01)
        proc.send_signal(second)
        err = _rest(proc, lines, seen)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    # The second decides while the process still works; one landing after its status is
    # decided (it is exiting) leaves the first's. Never a traceback, never death by a signal.
    assert proc.returncode in {code, 128 + first}, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert list((run / "checkpoints").iterdir()), "the last complete checkpoint is gone"


def test_a_second_signal_while_unwinding_exits_at_once(tmp_path, mnist_ready) -> None:
    # The window after training stopped: the loop's handler is gone, Python's default one would
    # raise KeyboardInterrupt in a `finally` or kill the process by SIGTERM (-15).
    run = tmp_path / "run"
    proc, lines = _start(run)
    seen: list[str] = []
    try:
        _wait_for(lines, "epoch  2/12", seen)  # epoch 1 checkpointed
        proc.send_signal(signal.SIGTERM)
        _wait_for(lines, "interrupted", seen)  # the checkpoint is written; unwinding now
        proc.send_signal(signal.SIGINT)
        err = _rest(proc, lines, seen)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    # Either the second signal met the process unwinding (exits at once, 130) or it had already
    # ended by the first (143); never a traceback or death by a signal.
    assert proc.returncode in (130, 143), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    _resumes(run)


def _resumes(run: Path) -> None:
    """The last complete checkpoint continues: `--resume` trains to the end."""
    assert list((run / "checkpoints").iterdir()), "no checkpoint was kept"
    proc = subprocess.run([sys.executable, "-m", "lenet", "train", "--resume", str(run)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (run / "model.safetensors").is_file()
