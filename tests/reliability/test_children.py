"""A stopped parent takes its children with it: SIGTERM or SIGHUP sent to `lenet sweep`, `lenet
paper -j 2` or `lenet train --nproc 2` alone (`kill PID`, as a scheduler or a closed terminal
does) leaves no training process running, and the parent ends with the shell's status for the
signal (143, 129). Ctrl-C reaches the whole foreground group and is covered elsewhere.

Real commands on a tiny MNIST subset, with enough epochs that the runs are still training when
the signal comes. The children are found by their command lines, which all name the test's
temp folder (their run dirs), so other processes on the machine are never looked at twice.
Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc"),
]

# Long enough (tens of seconds) that every run still trains when the signal comes.
RUN = ("--epochs", "50", "--train-subset", "2000", "--test-subset", "100", "--device", "cpu")
SETS = ("--set", "epochs=50", "--set", "train_subset=2000", "--set", "test_subset=100",
        "--set", "tensorboard=false", "--set", "device=cpu")


def processes_naming(text: str, but: int) -> set[int]:
    """The pids of the live processes (zombies excluded) whose command line holds `text`."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == but:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:  # ended meanwhile
            continue
        if text in cmdline and state != "Z":
            found.add(int(entry))
    return found


def stop_and_check(argv: list[str], tmp_path: Path, children: int, sig: int) -> None:
    """Start `lenet ARGV`, wait for `children` processes of it to run, send `sig` to the parent
    alone; it must end with 128 + sig, and leave none of them (nor any new one) running."""
    parent = subprocess.Popen([sys.executable, "-m", "lenet", *argv], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while len(seen := processes_naming(str(tmp_path), parent.pid)) < children:
            assert parent.poll() is None, parent.communicate()[1]
            assert time.monotonic() < deadline, f"only {len(seen)} children started"
            time.sleep(0.1)
        time.sleep(0.5)  # past their start: importing torch, training
        parent.send_signal(sig)
        _, err = parent.communicate(timeout=90)
        assert parent.returncode == 128 + sig, err
        assert "Traceback" not in err, err
        deadline = time.monotonic() + 10  # SIGKILLed, or stopped by torchrun: only reaping left
        while left := processes_naming(str(tmp_path), parent.pid):
            assert time.monotonic() < deadline, f"still running after the parent: {left}"
            time.sleep(0.1)
    finally:
        parent.kill()
        parent.communicate()
        for pid in processes_naming(str(tmp_path), parent.pid):  # never leave one behind
            os.kill(pid, signal.SIGKILL)


def test_sigterm_to_a_sweep_stops_its_runs(mnist_ready: None, tmp_path: Path) -> None:
    stop_and_check(["sweep", "--seeds", "2", "-j", "2", *SETS, "--run-dir", str(tmp_path / "s")],
                   tmp_path, children=2, sig=signal.SIGTERM)


def test_sighup_to_a_sweep_stops_its_runs(mnist_ready: None, tmp_path: Path) -> None:
    stop_and_check(["sweep", "--seeds", "1", "-j", "1", *SETS, "--run-dir", str(tmp_path / "s")],
                   tmp_path, children=1, sig=signal.SIGHUP)


def test_sigterm_to_paper_j2_stops_every_training_run(mnist_ready: None, tmp_path: Path) -> None:
    stop_and_check(["paper", "--only", "lenet5", "--seeds", "2", "-j", "2", *RUN,
                    "--run-dir", str(tmp_path / "p")], tmp_path, children=2, sig=signal.SIGTERM)


def test_sigterm_to_train_nproc_stops_torchrun_and_its_workers(mnist_ready: None,
                                                                tmp_path: Path) -> None:
    """The launcher and two workers (three processes naming the run dir): torchrun gets the
    signal from lenet, stops its workers, and lenet ends with 143."""
    stop_and_check(["train", "--nproc", "2", "--model", "lenet5", *RUN, "--no-tensorboard",
                    "--run-dir", str(tmp_path / "t")], tmp_path, children=3, sig=signal.SIGTERM)
