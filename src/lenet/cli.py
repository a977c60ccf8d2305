"""The `lenet` command line: one subcommand per module of :mod:`lenet.commands`.

Each command module imports what it needs only when it runs, so `lenet --help` is instant.
User mistakes (a bad flag value, a missing file, a corrupt download) print one clear message and
exit with status 2; they never print a traceback.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

from lenet.commands import build_parser
from lenet.errors import STDOUT, exit_status, os_error_message

__all__ = ["STDOUT", "main", "os_error_message", "script"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (a user's mistake is one line, status 2)."""
    return exit_status(lambda: _run(argv))


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    _flush_stdout()
    return code


def script() -> int:
    """The `lenet` command and ``python -m lenet``: :func:`main` on ``sys.argv``, for a process
    that ends right after it."""
    code = main()
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
