"""Ctrl-C and SIGTERM during training: a flag the loop reads between steps
(:func:`stop_on_signals`), so that it finishes its step, writes a checkpoint and stops with
:class:`TrainingInterrupted`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from lenet.errors import LenetError


class TrainingInterrupted(LenetError):
    """SIGINT or SIGTERM: a checkpoint was written and the run can be resumed.

    Its exit code is the shell's for the signal: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""

    exit_code = 130

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_code = 128 + int(signum)


class Stop(threading.Event):
    """Set by SIGINT or SIGTERM; `signum` says which (the exit code follows it)."""

    signum: int = signal.SIGINT


_Handler = Callable[[int, FrameType | None], object] | int | None


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """SIGINT/SIGTERM set a flag; the trainer finishes its step, checkpoints, and stops."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous: dict[int, _Handler] = {s: signal.getsignal(s) for s in (signal.SIGINT,
                                                                      signal.SIGTERM)}

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C means "now"
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        stop.signum = signum
        stop.set()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
