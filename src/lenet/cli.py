"""The `lenet` command line: one subcommand per module of :mod:`lenet.commands`.

Each command module imports what it needs only when it runs, so `lenet --help` is instant.
User mistakes (a bad flag value, a missing file, a corrupt download) print one clear message and
exit with status 2; they never print a traceback. Progress and notes are records of the ``lenet``
logger, which the command writes to stderr one line each (:func:`lenet.console.command_output`)
at the level ``-q`` (errors only) or ``-v`` (debug) asks for; results go to stdout.
"""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Sequence

from lenet.commands import build_parser
from lenet.console import command_output
from lenet.errors import STDOUT, end_with_command, exit_status, os_error_message
from lenet.runtime.environment import check_environment

__all__ = ["STDOUT", "main", "os_error_message", "script"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (a user's mistake is one line, status 2)."""
    return exit_status(lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    check_environment()  # a bad OMP_NUM_THREADS, LENET_DATA_DIR...: one line, up front
    args = build_parser().parse_args(argv)
    with command_output(args.log_level):
        code: int = args.handler(args)
    _flush_stdout()
    return code


def script() -> int:
    """The `lenet` command and ``python -m lenet``: :func:`main` on ``sys.argv``, for a process
    that ends right after it."""
    end_with_command()  # a second Ctrl-C or SIGTERM while stopping exits at once (130/143)
    code = main()
    # The command is done and its status decided. Python's finalization puts the default
    # action back for signals that have a Python handler, so a Ctrl-C or SIGTERM landing in
    # its last milliseconds would kill the process by the signal (-2, -15) instead. Ignored
    # (a disposition of the whole process, whichever thread the kernel picks), they cannot.
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    # At exit, Python's collector walks every object torch and numba created, about half a
    # second of a ten-second `lenet train`. The process is ending, so freeze them instead.
    # Not in main(), which tests and notebooks call in a process that goes on.
    gc.freeze()
    return code


def _flush_stdout() -> None:
    """Flush here, not at exit, so a full disk under `lenet ... > file` is reported."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OSError(e.errno, e.strerror, STDOUT) from None
