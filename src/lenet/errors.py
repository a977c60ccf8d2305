"""User-facing errors.

Everything a user can cause (a bad file, a wrong flag, missing data) raises a subclass of
:class:`LenetError`. The CLI prints its message, never a traceback, and exits with status 2.
Messages name the file or field, say what was expected, and suggest the fix.
:func:`exit_status` is that rule for a whole process (the `lenet` command, a sweep's worker).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

# Errors that can only come from writing; others (EACCES, EISDIR, ...) can come from either.
_WRITE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
STDOUT = "<standard output>"


class LenetError(Exception):
    """Base class for errors caused by user input or the environment, not by a bug."""


class DatasetError(LenetError):
    """A data file is missing, corrupt, or cannot be fetched."""


class ConfigError(LenetError):
    """A config file or command-line value is invalid."""


class WeightsError(LenetError):
    """A weights file is missing, corrupt, or not a lenet safetensors file."""


class OutputError(LenetError):
    """A file the command is asked to write cannot be written there (--out, -o, a run dir)."""


def exit_status(run: Callable[[], int]) -> int:
    """`run()`'s exit status, where whatever a user or the environment causes is one
    ``lenet: error: ...`` line on stderr, never a traceback: a :class:`LenetError` its
    ``exit_code`` (2 unless it says), Ctrl-C 130, a closed stdout pipe 141, an OSError 2."""
    try:
        return run()
    except LenetError as e:
        return _error(str(e), getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        print("lenet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lenet ... | head` closed the pipe: stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        # The safety net: a full disk, a read-only place or a vanished file deep inside any
        # command is the environment, not a bug, so it gets one line, not a traceback.
        _mute_stdout_if_unwritable()
        return _error(os_error_message(e), 2)


# Whether this process ends when its command does (the `lenet` command; see
# :func:`ends_with_command`). Tests and notebooks call the same code in a process that goes on.
_ending = False


def ends_with_command() -> bool:
    """Whether :func:`end_with_command` was called: a repeated stop signal may then end the
    process at once (:func:`exit_now`), where a process that goes on gets KeyboardInterrupt."""
    return _ending


def end_with_command() -> None:
    """Mark this process as one that ends when its command does (the `lenet` command): once
    training stops on a signal, a second one exits at once (:mod:`lenet.training.signals`).
    Other handlers are left as they are: the child processes' own rules
    (:mod:`lenet.runtime.jobs`) decide what a second Ctrl-C does while children stop."""
    global _ending
    _ending = True


def exit_now(signum: int, _frame: FrameType | None = None) -> NoReturn:
    """A signal handler for a process already stopping: the shell's status for `signum`
    (130 for SIGINT, 143 for SIGTERM) at once, with one line and no cleanup. Every file lenet
    writes is written atomically, so what is on disk stays whole: the last complete checkpoint
    is kept, and ``--resume`` continues from it."""
    name = signal.Signals(signum).name
    os.write(2, f"lenet: {name} again: stopped at once\n".encode())
    os._exit(128 + signum)


def _mute_stdout_if_unwritable() -> None:
    # Output that cannot be written is lost anyway; without this, the interpreter's own flush
    # at exit fails once more and prints "Exception ignored ..." after our one line.
    try:
        sys.stdout.flush()
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _error(message: str, code: int) -> int:
    rank = os.environ.get("RANK", "0").strip()  # set by torchrun (`--nproc`)
    where = f" (process {rank})" if rank.isdigit() and int(rank) else ""
    sys.stderr.write(f"lenet: error{where}: {message}\n")  # one write: ranks share stderr
    return code


def os_error_message(e: OSError) -> str:
    """One line for an OSError: "cannot write PATH: reason" when only a write can fail that
    way, else "PATH: reason" (or "A -> B: reason" for a rename)."""
    reason = e.strerror or str(e) or type(e).__name__
    if e.filename is None:
        return f"cannot write: {reason}" if e.errno in _WRITE_ERRNOS else reason
    path = os.fsdecode(e.filename) if isinstance(e.filename, (str, bytes)) else str(e.filename)
    if e.filename2 is not None:
        path = f"{path} -> {os.fsdecode(e.filename2)}"
    if e.errno in _WRITE_ERRNOS:
        return f"cannot write {path}: {reason}"
    return f"{path}: {reason}"
