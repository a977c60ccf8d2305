"""lenet.training.progress: the epoch's bar, text or a Jupyter widget, and the epoch's line."""

from __future__ import annotations

import importlib.machinery
import io

import pytest


def _ipywidgets(monkeypatch: pytest.MonkeyPatch, installed: bool) -> None:
    from lenet.training import progress

    real = progress.find_spec

    def find_spec(name: str, *args: object):
        if name == "ipywidgets":
            return importlib.machinery.ModuleSpec(name, None) if installed else None
        return real(name, *args)

    monkeypatch.setattr(progress, "find_spec", find_spec)


def test_without_ipywidgets_the_bar_is_plain_text(monkeypatch) -> None:
    """tqdm.auto without ipywidgets warns (TqdmWarning) in a notebook: lenet does not use it
    there."""
    import tqdm
    import tqdm.auto

    from lenet.training import progress

    _ipywidgets(monkeypatch, installed=False)
    assert progress.bar_class() is tqdm.tqdm
    _ipywidgets(monkeypatch, installed=True)
    assert progress.bar_class() is tqdm.auto.tqdm


def test_the_bar_draws_on_stderr_only_when_enabled(monkeypatch) -> None:
    from lenet.training import progress

    _ipywidgets(monkeypatch, installed=False)
    assert progress.epoch_bar(4, "epoch 1/1", enabled=False) is None
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    bar = progress.epoch_bar(4, "epoch 1/1", enabled=True)
    assert bar is not None
    bar.update(4)
    bar.close()
    assert "epoch 1/1" in err.getvalue() and "step/s" in err.getvalue()


def test_a_quiet_command_draws_no_bars(monkeypatch) -> None:
    """`lenet -q` shows errors only: no bar either, even on a terminal."""
    import logging
    import sys

    from lenet import console
    from lenet.training import progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress.interactive() is True
    with console.command_output(logging.ERROR):
        assert console.quiet() and progress.interactive() is False
    with console.command_output(logging.DEBUG):
        assert progress.interactive() is True
    assert not console.quiet()
