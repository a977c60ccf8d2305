"""The `lenet` command end to end, as a user runs it (subprocesses)."""

import errno
import json
import logging
import os
import signal
import subprocess
import sys

import pytest

from lenet.cli import main, os_error_message
from tests.commands.cli import lenet, subparsers


@pytest.mark.slow
def test_train_then_evaluate_end_to_end(tmp_path, mnist_ready) -> None:
    run_dir = tmp_path / "run"
    out = lenet("train", "--model", "lenet5", "--epochs", "1", "--train-subset", "5000",
                "--test-subset", "1000", "--batch-size", "32", "--lr", "0.003",
                "--run-dir", str(run_dir), "--json")
    result = json.loads(out.stdout)  # stdout holds only the JSON; logs went to stderr
    assert result["model"] == "lenet5" and result["epochs"] == 1
    assert result["test_accuracy"] > 0.85
    assert "epoch 1/1" in out.stderr and "img/s" in out.stderr
    ev = json.loads(lenet("evaluate", str(run_dir), "--json", "--no-plots").stdout)
    # The saved run evaluated on the full test set; training saw the first 1,000 only.
    assert ev["total"] == 10_000 and ev["accuracy"] > 0.85


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "lenet6"], "unknown model 'lenet6'"),
        (["train", "--epochs", "0"], "epochs must be at least 1"),
        (["train", "--config", "nope.yaml"], "does not exist"),
        (["train", "--set", "lr"], "expected KEY=VALUE"),
        (["evaluate", "/nonexistent/run"], "no such weights file or run directory"),
        (["data", "fetch", "cifar"], "cifar"),
    ],
)
def test_user_mistakes_get_one_clear_line_and_status_2(args: list[str], message: str) -> None:
    proc = lenet(*args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_is_light_and_ships_no_test_harness() -> None:
    # `lenet --help` imports no torch, and nothing of lenet imports httpx (a dev dependency).
    code = ("import sys; from lenet.cli import build_parser; build_parser(); "
            "import lenet.bench, lenet.inference.serve, lenet.inference.predict; "
            "import lenet.analysis.figures.run_report; "
            "print('torch' in sys.modules, 'httpx' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", "from lenet.cli import build_parser; "
                           "import sys; build_parser(); print('torch' in sys.modules)"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.split() == ["False"]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.split()[1] == "False"


def test_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "lenet", "models"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader went away before lenet wrote anything
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err


# --------------------------------------------------------------------------- OSError safety net
@pytest.mark.parametrize(("error", "line"), [
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/model.onnx"),
     "cannot write /mnt/ro/model.onnx: Read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/x.csv"),
     "cannot write /data/x.csv: No space left on device"),
    (OSError(errno.ENOSPC, "No space left on device"), "cannot write: No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied", "/etc/shadow"),
     "/etc/shadow: Permission denied"),
    (OSError(errno.ELOOP, "Too many levels of symbolic links", b"/tmp/loop"),
     "/tmp/loop: Too many levels of symbolic links"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "/a/f.tmp", None, "/b/f"),
     "/a/f.tmp -> /b/f: Invalid cross-device link"),
    (OSError("something odd"), "something odd"),
])
def test_os_errors_become_one_line(error: OSError, line: str) -> None:
    assert os_error_message(error) == line


def test_an_os_error_deep_inside_a_command_is_one_line_and_status_2(monkeypatch, capsys) -> None:
    from lenet import data

    def deep(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/mnt/ro/mnist/x.sha256")

    monkeypatch.setattr(data, "info", deep)
    assert main(["data", "info", "mnist"]) == 2
    err = capsys.readouterr().err
    assert err == f"lenet: error: cannot write /mnt/ro/mnist/x.sha256: {os.strerror(errno.EROFS)}\n"


def test_the_script_returns_mains_status_and_freezes_the_heap_for_exit(monkeypatch, capsys
                                                                        ) -> None:
    """`lenet` and `python -m lenet` run cli.script: main's status, then gc.freeze(), so the
    interpreter's exit skips collecting torch's objects; main() itself, which tests and
    notebooks call, leaves the collector alone."""
    import gc

    from lenet import cli, errors

    monkeypatch.setattr(sys, "argv", ["lenet", "train", "--epochs", "0"])
    # script() marks the process as the `lenet` command's (a second signal then exits at
    # once); the test process goes on, so the mark is undone after.
    monkeypatch.setattr(errors, "_ending", False)
    gc.unfreeze()
    assert main(["train", "--epochs", "0"]) == 2 and gc.get_freeze_count() == 0
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert cli.script() == 2
        assert gc.get_freeze_count() > 0
        # Its status decided, a process about to end ignores a late Ctrl-C or SIGTERM (Python's
        # finalization would otherwise let one kill it by the signal).
        assert all(signal.getsignal(s) == signal.SIG_IGN for s in handlers)
    finally:
        gc.unfreeze()
        for s, h in handlers.items():
            signal.signal(s, h)
    assert "epochs must be at least 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- -q and -v
def test_every_command_takes_quiet_and_verbose() -> None:
    from lenet.commands import NAMES, build_parser

    parser = build_parser()
    commands = dict(subparsers(parser))
    assert set(NAMES) <= set(commands)
    for name, p in [("lenet", parser), *commands.items()]:
        flags = p._option_string_actions
        assert {"-q", "--quiet", "-v", "--verbose"} <= set(flags), name
    # Before or after the command's name; -q and -v together are a usage error.
    assert parser.parse_args(["-q", "models"]).log_level == logging.ERROR
    assert parser.parse_args(["models", "-q"]).log_level == logging.ERROR
    assert parser.parse_args(["-v", "data", "info"]).log_level == logging.DEBUG
    assert parser.parse_args(["data", "info", "--verbose"]).log_level == logging.DEBUG
    assert parser.parse_args(["models"]).log_level == logging.INFO
    with pytest.raises(SystemExit):
        parser.parse_args(["models", "-q", "-v"])


def test_quiet_train_prints_only_errors(tmp_path, capfd, mnist_ready) -> None:
    from tests.reliability.conftest import TINY_ARGS

    run = tmp_path / "run"
    for argv in (["-q", "train", *TINY_ARGS, "--run-dir", str(run)],
                 ["train", *TINY_ARGS, "--run-dir", str(run), "--overwrite", "--quiet"]):
        capfd.readouterr()
        assert main(argv) == 0
        out, err = capfd.readouterr()
        assert err == ""  # no header, epoch line or result line on stderr
        assert out == f"run saved in {run}\n"  # the command's result stays on stdout
    assert main(["-q", "train", *TINY_ARGS, "--epochs", "0"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("lenet: error: epochs must be at least 1") and err.count("\n") == 1


def test_progress_keeps_its_one_line_format_and_verbose_adds_debug(tmp_path, capsys,
                                                                    mnist_ready) -> None:
    from tests.reliability.conftest import TINY_ARGS

    assert main(["train", *TINY_ARGS, "--run-dir", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("training lenet5 (61,706 parameters) on mnist: 256 "
                                          "digits, 1 epoch, batch 64")  # not "1 epochs"
    assert any(line.startswith("epoch 1/1  loss ") for line in err.splitlines())
    assert "resolved config" not in err and "INFO" not in err
    assert main(["-v", "train", *TINY_ARGS, "--print-config"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("resolved config: {'model': 'lenet5'") and "epochs: 1" in out
