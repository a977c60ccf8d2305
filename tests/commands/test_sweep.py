"""`lenet sweep` on the command line: exit status, the table, timeouts and Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lenet.cli import main as lenet_main


def main(argv: list[str]) -> int:
    """`lenet sweep ARGV` in this process."""
    return lenet_main(["sweep", *argv])


def test_cli_typo_exits_2_with_one_line_and_starts_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "sweep"
    assert main(["--set", "lr=0.1", "--set", "optimiser=sgd", "--run-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'optimiser'" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow
def test_cli_exit_status_table_and_timeout(tmp_path: Path, mnist_ready: None, capsys) -> None:
    ok_out = tmp_path / "ok"
    argv = ["--seeds", "1", "--run-dir", str(ok_out), *[f"--set={a}" for a in (
        "epochs=1", "train_subset=500", "test_subset=500", "device=cpu", "tensorboard=false")]]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "| point | test accuracy % (mean ± std)" in stdout
    assert "| base |" in stdout  # no key has two values: one point
    assert (ok_out / "summary.md").is_file()

    # A full-MNIST epoch cannot finish in 1 s: the run is killed and the sweep exits 1.
    slow_out = tmp_path / "slow"
    assert main(["--seeds", "1", "--set", "epochs=1", "--timeout", "1", "--json",
                 "--out", str(slow_out)]) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    run = summary["points"][0]["runs"][0]
    assert not run["ok"] and run["returncode"] is None
    assert run["error"].startswith("timed out after 1s")
    assert "timed out after 1s" in captured.err


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:  # the process ended while we looked
            continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_interrupt_stops_every_run_and_starts_no_more(tmp_path: Path, mnist_ready: None) -> None:
    out = tmp_path / "sweep"
    # Started as from a terminal: SIGINT not ignored (a background shell job would ignore it).
    proc = subprocess.Popen(
        [sys.executable, "-m", "lenet", "sweep", "--seeds", "3", "--jobs", "2", "--set", "epochs=5",
         "--set", "tensorboard=false", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while len(_processes_mentioning(f"{out}/base-seed")) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "runs never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "lenet: interrupted" in err
    assert _processes_mentioning(f"{out}/base-seed") == []  # both runs were killed
    assert sorted(p.name for p in out.iterdir()) == ["base-seed0", "base-seed1"]  # no seed 2
