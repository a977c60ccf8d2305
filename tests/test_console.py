"""lenet.console: messages through the ``lenet`` logger (stderr by default), results to stdout.

pytest puts its own handlers on the root logger, so the tests of the default output take them
away first (`bare`), as a program that configured no logging is.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from lenet import console

LENET = logging.getLogger("lenet")


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch):
    """No logging configured: no root handler, the lenet logger as `import lenet` leaves it;
    whatever lenet adds is taken away afterwards. pytest adds its root handlers when the test
    starts, after the fixtures: the test calls `bare()` first to take them away."""
    monkeypatch.setattr(LENET, "handlers", [logging.NullHandler()])
    monkeypatch.setattr(LENET, "level", logging.NOTSET)
    monkeypatch.setattr(LENET, "disabled", False)
    monkeypatch.setattr(LENET, "propagate", True)
    monkeypatch.setattr(console._Default, "set_level", False)
    LENET.manager._clear_cache()
    yield lambda: monkeypatch.setattr(logging.getLogger(), "handlers", [])
    LENET.manager._clear_cache()


def test_import_lenet_configures_no_output() -> None:
    code = ("import logging, lenet, lenet.console; lg = logging.getLogger('lenet'); "
            "print([type(h).__name__ for h in lg.handlers], lg.level, "
            "logging.getLogger().handlers)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.split("\n")[0] == "['NullHandler'] 0 []"


def test_without_logging_configured_messages_go_to_stderr(bare, capsys) -> None:
    bare()
    console.log("epoch 1/2")
    console.debug("not at the default level")
    console.silent("dropped")
    console.print_json({"test_accuracy": 0.99})
    out, err = capsys.readouterr()
    assert err == "epoch 1/2\n"
    assert json.loads(out) == {"test_accuracy": 0.99}


def test_a_disabled_or_quieter_logger_prints_nothing(bare, capsys) -> None:
    bare()
    LENET.disabled = True
    console.log("epoch 1/2")
    console.warn("a notice")
    assert capsys.readouterr().err == ""
    LENET.disabled = False
    LENET.setLevel(logging.WARNING)  # the user's level is kept
    console.log("epoch 1/2")
    console.warn("a notice")
    assert capsys.readouterr().err == "a notice\n"


def test_a_program_that_configures_logging_decides_alone(bare, capsys) -> None:
    bare()
    console.log("first")  # nothing configured: lenet's own line on stderr
    assert capsys.readouterr().err == "first\n"
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    root.addHandler(Keep())  # logging.basicConfig and frameworks configure the root logger
    root.setLevel(logging.INFO)
    try:
        console.log("second")
    finally:
        root.handlers.clear()
        root.setLevel(logging.WARNING)
    assert capsys.readouterr().err == ""  # lenet's own handler is gone: no line twice
    assert [r.getMessage() for r in records] == ["second"]
    assert [r.name for r in records] == ["lenet"]
    assert LENET.level == logging.NOTSET  # the level lenet had set is given back, too
    LENET.addHandler(Keep())  # a handler on the lenet logger itself: the same
    LENET.setLevel(logging.INFO)
    console.log("third")
    assert capsys.readouterr().err == "" and records[-1].getMessage() == "third"


def test_child_loggers_are_lenets(bare, capsys) -> None:
    bare()
    console.logger("training").warning("from a child")
    assert capsys.readouterr().err == "from a child\n"
    assert console.logger("training").name == "lenet.training"


@pytest.mark.parametrize(("level", "shown"), [
    (logging.ERROR, ["e"]), (logging.INFO, ["i", "w", "e"]), (logging.DEBUG, ["d", "i", "w", "e"])])
def test_command_output_shows_its_level_and_restores_the_logger(bare, capsys, level,
                                                                shown) -> None:
    bare()
    with console.command_output(level):
        console.debug("d")
        console.log("i")
        console.warn("w")
        console.logger().error("e")
    assert capsys.readouterr().err.split() == shown
    assert (LENET.level, LENET.propagate) == (logging.NOTSET, True)
    assert [type(h) for h in LENET.handlers] == [logging.NullHandler]


def test_plural() -> None:
    assert [console.plural(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert console.plural(1, "pass", "passes") == "1 pass"
    assert console.plural(3, "pass", "passes") == "3 passes"


# --------------------------------------------------------------------------- lenet.train
def _train(tmp_path, name: str, progress: bool) -> None:
    import lenet
    from tests.reliability.conftest import TINY

    lenet.train(**TINY, run_dir=str(tmp_path / name), progress=progress)


def test_lenet_train_in_a_notebook_shows_its_progress(bare, capfd, tmp_path,
                                                      mnist_ready) -> None:
    bare()
    _train(tmp_path, "run", progress=False)
    out, err = capfd.readouterr()
    assert out == ""
    assert "training lenet5" in err and "epoch 1/1  loss" in err and "test accuracy" in err


def test_lenet_train_with_the_logger_disabled_prints_nothing_but_bars(bare, capfd, tmp_path,
                                                                      mnist_ready) -> None:
    bare()
    LENET.disabled = True
    _train(tmp_path, "quiet", progress=False)
    assert capfd.readouterr() == ("", "")
    _train(tmp_path, "bars", progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    # Only tqdm's bar: its description and step counts, redrawn with carriage returns.
    assert "step/s" in err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith("epoch 1/1:") for line in lines), lines
