"""An exclusive lock file in a folder, taken by the book (what :func:`lenet.storage.rundir.claim`
holds a run directory with); the run dir turns its exceptions into one-line errors.

- The file is opened with ``O_NOFOLLOW | O_NONBLOCK`` and must be a regular file: a symbolic
  link, FIFO, socket, device or folder at its path raises :class:`NotAFile`, and nothing is
  written through it or waited on (a FIFO would block a plain ``open``).
- ``flock(LOCK_EX | LOCK_NB)``: a holder raises :class:`Busy` (with the pid it wrote).
- After the flock, the descriptor must still be the file at the path (same device and inode):
  a file removed between our open and our flock (a holder releasing it) is no lock, so the
  open is tried again. Hence of any number of simultaneous takers exactly one holds it.
- :meth:`Lock.held` tells the holder whether the file is still its own (not removed, not
  replaced); :meth:`Lock.release` removes the file only then, so a lock never deletes another's.

The kernel drops a flock when its process ends however it ends (kill -9 included). POSIX only:
on Windows :func:`acquire` gives None (no locking; the run dir's other rules still hold).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from lenet.storage import regular

if sys.platform != "win32":
    import fcntl

_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
          | getattr(os, "O_CLOEXEC", 0))
_TRIES = 100  # a file removed under us this often: someone is at work there on purpose


class Busy(Exception):
    """Another process holds the lock; `holder` is the pid it wrote ("unknown" if none)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class NotAFile(Exception):
    """Something that is not a regular file is at the lock's path; `kind` says what."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Unstable(Exception):
    """The lock file kept being removed or replaced while it was being taken."""


def _same_file(fd: int, path: Path) -> bool:
    """Whether `path` is (still) the file open as `fd`; never follows a link."""
    mine = os.fstat(fd)
    try:
        now = os.lstat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)


@dataclass(frozen=True)
class Lock:
    """A held lock: the lock file's path and the descriptor that holds its flock."""

    path: Path
    fd: int

    def held(self) -> bool:
        """Whether the file at :attr:`path` is still the one this lock holds."""
        return _same_file(self.fd, self.path)

    def stamp(self) -> None:
        """Write this process's id into the file (what :class:`Busy` names to another)."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> bool:
        """Remove the file if it is still this lock's, then drop the lock; whether removed.
        Unlinked while still held, so that no other taker ever holds a removed file."""
        try:
            if self.held():
                self.path.unlink()
                return True
            return False
        except OSError:
            return False
        finally:
            os.close(self.fd)


def _open(path: Path) -> int:
    """`path` opened read-write, created if missing, a regular file (else NotAFile)."""
    kind = regular.special_kind(path)
    if kind is not None:  # checked first: opening a device can have effects of its own
        raise NotAFile(kind)
    try:
        fd = os.open(path, _FLAGS, 0o644)
    except OSError as e:  # replaced meanwhile: ELOOP/EMLINK (a link), EISDIR, ENXIO (a socket)
        if e.errno in (errno.ELOOP, errno.EMLINK, errno.EISDIR, errno.ENXIO):
            raise NotAFile(regular.special_kind(path) or "not a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotAFile("not a regular file")
    return fd


def acquire(path: Path) -> Lock | None:
    """Hold the lock file `path` (created if missing); None where there is no flock (Windows).

    Raises :class:`Busy`, :class:`NotAFile`, :class:`Unstable`, or the OSError of the open."""
    if sys.platform == "win32":
        return None
    for _ in range(_TRIES):
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Busy(holder) from None
        if _same_file(fd, path):
            return Lock(path, fd)
        os.close(fd)  # removed or replaced after our open: take the file there now
    raise Unstable(str(path))
