"""The stop flag and what a second signal does (lenet.training.signals, lenet.errors)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lenet import errors
from lenet.training.signals import stop_on_signals

posix = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


@pytest.fixture
def handlers():
    """Restore this process's SIGINT/SIGTERM handlers, whatever a test leaves."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


@posix
def test_the_first_signal_sets_the_flag(handlers) -> None:
    with stop_on_signals() as stop:
        signal.raise_signal(signal.SIGTERM)
        assert stop.is_set() and stop.signum == signal.SIGTERM


@posix
def test_in_a_process_that_goes_on_the_second_is_keyboard_interrupt(handlers) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before  # restored: a notebook goes on as it was


@posix
def test_in_the_lenet_command_the_handler_stays_for_the_unwinding(handlers, monkeypatch):
    monkeypatch.setattr(errors, "_ending", True)
    with stop_on_signals():
        pass  # no signal: the handlers from before come back
    assert signal.getsignal(signal.SIGTERM) is not errors.exit_now
    with stop_on_signals():
        signal.raise_signal(signal.SIGTERM)
    # Stopping: from now until the process ends, a second signal exits at once.
    assert signal.getsignal(signal.SIGTERM) is errors.exit_now
    assert signal.getsignal(signal.SIGINT) is errors.exit_now


@posix
@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_exit_now_is_one_line_and_the_shells_code(name, code) -> None:
    # The `lenet` command's process: the second signal while training stops exits at once.
    program = (
        "import signal\n"
        "from lenet import errors\n"
        "from lenet.training.signals import stop_on_signals\n"
        "errors.end_with_command()\n"
        "with stop_on_signals():\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        f"    signal.raise_signal(signal.{name})\n"
        "print('not reached')\n")
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr == f"lenet: {name} again: stopped at once\n" and proc.stdout == ""
