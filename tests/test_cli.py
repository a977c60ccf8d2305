"""The `lenet` command end to end, as a user runs it (subprocesses)."""

import errno
import json
import os
import subprocess
import sys

import pytest

from lenet.cli import main, os_error_message
from tests.commands.cli import lenet


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

    from lenet import cli

    monkeypatch.setattr(sys, "argv", ["lenet", "train", "--epochs", "0"])
    gc.unfreeze()
    assert main(["train", "--epochs", "0"]) == 2 and gc.get_freeze_count() == 0
    try:
        assert cli.script() == 2
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert "epochs must be at least 1" in capsys.readouterr().err
