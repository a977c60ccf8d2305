"""Only regular files: what is at a path, and reading one without ever blocking.

A FIFO where lenet expects a file makes a plain ``open()`` wait forever for a writer, a device
can be endless, and a symbolic link can point anywhere. Every file lenet reads or replaces is
therefore checked here: :func:`special_kind` names what is at a path (never following a link),
:func:`open_regular` opens a file without blocking and checks it on the open descriptor (no race
with a rename), and :func:`read_regular` reads one whole, refused from its size before reading.
Writers use :func:`special_kind` through :mod:`lenet.storage.atomic`.
"""

from __future__ import annotations

import errno
import io
import os
import stat

_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


class NotRegularFile(OSError):
    """The path is a FIFO, socket, device or directory, not a file one can read to its end."""


class FileTooLarge(OSError):
    """The file is larger than its reader allows; `size` says how large."""

    def __init__(self, path: str | os.PathLike[str], size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"{size:,} bytes, more than the {limit:,} allowed",
                         os.fspath(path))
        self.size, self.limit = size, limit


def _kind(mode: int) -> str | None:
    return next((kind for test, kind in _KINDS if test(mode)), None if stat.S_ISREG(mode)
                else "not a regular file")


def special_kind(path: str | os.PathLike[str]) -> str | None:
    """What is at `path` if it is anything but a regular file or nothing ("a FIFO", "a
    symbolic link", ...); None for a regular file or a missing path. Never follows a link."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # missing, or a folder above it is (a loop, a file): nothing to replace
        return None
    return _kind(mode)


def open_regular(path: str | os.PathLike[str], *,
                 follow_symlinks: bool = True) -> io.BufferedReader:
    """``path`` opened for binary reading if it is a regular file, else :class:`NotRegularFile`
    (its message names what is there); any other OSError of the open as it is.

    Opened without blocking and checked on the open descriptor. With ``follow_symlinks=False`` a
    symbolic link is refused too (OSError ELOOP): for the files lenet keeps beside others' (the
    data dir's checksum markers), which a link must never redirect."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFile(errno.EINVAL, f"not a regular file but {kind}", os.fspath(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of regular file `path`: :class:`NotRegularFile` for anything else, and
    :class:`FileTooLarge` past `limit` bytes, from its size before anything is read (a sparse
    file of gigabytes is never read into memory)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise FileTooLarge(path, size, limit)
        data = f.read(limit + 1)
    if len(data) > limit:  # grew since the fstat
        raise FileTooLarge(path, len(data), limit)
    return data
