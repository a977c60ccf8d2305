"""The `lenet` command line: one subcommand per module of :mod:`lenet.commands`.

Each command module imports what it needs only when it runs, so `lenet --help` is instant.
User mistakes (a bad flag value, a missing file, a corrupt download) print one clear message and
exit with status 2; they never print a traceback.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from collections.abc import Sequence

from lenet.commands import build_parser
from lenet.errors import LenetError

# Errors that can only come from writing; others (EACCES, EISDIR, ...) can come from either.
_WRITE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
STDOUT = "<standard output>"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = args.handler(args)
        _flush_stdout()
        return code
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


def _mute_stdout_if_unwritable() -> None:
    # Output that cannot be written is lost anyway; without this, the interpreter's own flush
    # at exit fails once more and prints "Exception ignored ..." after our one line.
    try:
        sys.stdout.flush()
    except OSError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _error(message: str, code: int) -> int:
    rank = os.environ.get("RANK", "0")  # set by torchrun (`--nproc`)
    where = "" if rank == "0" else f" (process {rank})"
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
