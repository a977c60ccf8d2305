"""`lenet paper`'s command line."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lenet.commands import paper as commands_paper


def test_add_parser_registers_the_subcommand() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    commands_paper.add_parser(sub)
    args = parser.parse_args(["paper", "--only", "linear", "lenet1", "--seeds", "2",
                              "--epochs", "1", "--train-subset", "500"])
    assert args.only == ["linear", "lenet1"] and args.seeds == 2 and args.epochs == 1
    assert args.train_subset == 500 and args.handler is commands_paper.run
    assert args.jobs == 1 and args.reject == 0.5 and not args.list
    assert parser.parse_args(["paper", "-j", "3", "--reject", "1"]).jobs == 3


def test_the_help_names_the_rows_and_list_shows_the_classical_ones_too(capsys) -> None:
    import pytest

    from lenet.cli import main
    from lenet.paper.runner import ROWS

    with pytest.raises(SystemExit):
        main(["paper", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(r.name in text for r in ROWS) and "--list" in text and "-j JOBS" in text
    assert "0.5 % error" in text and "%%" not in text  # argparse's escape never shows
    assert main(["paper", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "lenet5-distort" in listed and "neural" in listed and "paper %" in listed


def test_no_help_shows_an_escaped_percent(capsys) -> None:
    """argparse %-formats help strings, not descriptions: "%%" there would show as is."""
    from lenet.commands import build_parser
    from tests.commands.cli import subparsers

    for name, p in subparsers(build_parser()):
        assert "%%" not in p.format_help(), name


def test_a_failed_row_exits_1_and_says_why(tmp_path, monkeypatch, capsys) -> None:
    import json

    from lenet.cli import main
    from tests.paper.test_runner import QUARTER, _outcome, _register

    def fails(ctx):
        raise ValueError("no digits")

    _register(monkeypatch, "fake-ok", lambda ctx: _outcome(QUARTER))
    _register(monkeypatch, "fake-fails", fails)
    out = tmp_path / "p"
    assert main(["paper", "--only", "fake-ok", "fake-fails", "--device", "cpu",
                 "--reject", "30", "--run-dir", str(out)]) == 1
    text = capsys.readouterr().out
    assert "| rejection for 30 % error |" in text and "| 0.00 % |" in text  # 25 % <= 30 %
    assert "fake fake-fails, seed 0 failed (log " in text and "ValueError: no digits" in text
    assert f"written to {out}/paper.md" in text
    assert main(["paper", "--only", "fake-ok", "--device", "cpu", "--json",
                 "--run-dir", str(tmp_path / "q")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"][0]["rejection"] == 25.0 and report["reject_target"] == 0.5


def test_an_unknown_row_is_one_line_and_exit_2(capsys) -> None:
    from lenet.cli import main

    assert main(["paper", "--only", "lenet9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lenet: error: unknown paper row(s) lenet9") and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_sigterm_to_a_parallel_paper_run_leaves_no_training_run_behind(
        tmp_path: Path, mnist_ready: None) -> None:
    """Issue 32: SIGTERM to `lenet paper -j 2` killed the parent and left a training run going."""
    from tests.commands.test_sweep import _processes_mentioning

    out = tmp_path / "paper"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lenet", "paper", "--only", "linear", "mlp-300", "-j", "2",
         "--epochs", "5", "--device", "cpu", "--run-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_processes_mentioning(f"{out}/")) < 2:  # both rows' runs are training
            assert time.monotonic() < deadline and proc.poll() is None, "runs never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "Traceback" not in err
    assert _processes_mentioning(f"{out}/") == []  # every training run went with it
