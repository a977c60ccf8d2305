"""Ctrl-C and SIGTERM during training: a flag the loop reads between steps
(:func:`stop_on_signals`), so that it finishes its step, writes a checkpoint and stops with
:class:`TrainingInterrupted`.

A second signal means "now". In the `lenet` command (:func:`lenet.errors.ends_with_command`)
it exits at once with the shell's status for it (130 for SIGINT, 143 for SIGTERM), also while
the first one's checkpoint is written and the process unwinds: the handler stays in force
until the process ends. Elsewhere (a notebook, tests) it raises KeyboardInterrupt."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from lenet.errors import LenetError, ends_with_command, exit_now


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
            if ends_with_command():
                exit_now(signum)
            signal.signal(signum, previous[signum])
            raise KeyboardInterrupt
        stop.signum = signum
        stop.set()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        # Stopping, the process unwinds (lock, pools, the error line, exit): a second signal
        # in that window must not meet Python's own handlers (a KeyboardInterrupt traceback,
        # or death by SIGTERM).
        stopping = stop.is_set() and ends_with_command()
        for s, h in previous.items():
            signal.signal(s, exit_now if stopping else h)
