"""Atomic file writes: a temp file in the same directory, fsync, then rename.

A reader (or a process killed mid-write) sees either the old file or the new one, never half.
Every file lenet writes goes through :func:`write_bytes`, so every command gets the same rule:
only a regular file is ever replaced. A device (``/dev/null`` as root), a FIFO, a socket or a
symbolic link at the path is refused with an :class:`OutputError`, never turned into a file
(replacing a link would not write where it points either, so there is no right thing to do).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from lenet.errors import OutputError
from lenet.storage.regular import special_kind

# The process's umask, read once at import (setting it is the only way to read it portably):
# temp files are made 0600, and the file they become gets the mode a plain open() would give.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


# The temp files of write_bytes: ".NAME.XXXXXXXX.tmp" (mkstemp draws the random part).
_TEMP = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")


def temp_target(name: str) -> str | None:
    """The name of the file a temp file of :func:`write_bytes` named `name` was to become
    (``.config.json.ab12cd34.tmp`` -> ``config.json``); None for any other name."""
    m = _TEMP.match(name)
    return m.group("target") if m else None


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically (parents made); only a regular file is replaced:
    anything else there (a device, FIFO, socket, symbolic link or folder) is an
    :class:`OutputError`, and the path is left as it was."""
    path = Path(path)
    kind = special_kind(path)
    if kind is not None:
        raise OutputError(f"cannot write {path}: it is {kind}, which lenet never replaces; "
                          "move it away or choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # not on Windows, where the mode means little anyway
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


OUT_FIX = "choose another path with --out"


def ensure_writable(path: str | os.PathLike[str], *, fix: str = OUT_FIX) -> Path:
    """Check, before the work, that `path` can be written atomically; the path as a Path.

    Creates neither `path` nor its missing parents: a temp file is made and removed in the
    nearest existing folder, which is what :func:`write_bytes` needs (temp file + rename).
    Raises :class:`OutputError` ("cannot write PATH: reason; FIX"), `fix` defaulting to
    "choose another path with --out".
    """
    path = Path(path)

    def fail(reason: str) -> OutputError:
        return OutputError(f"cannot write {path}: {reason}; {fix}")

    kind = special_kind(path)
    if kind == "a directory":
        raise fail("it is a directory (give a file name)")
    if kind is not None:
        # Replacing a device or a pipe (/dev/null, /dev/stdout) by a file is never what was
        # meant; nor is replacing a link instead of writing where it points.
        raise fail(f"it exists and is not a regular file ({kind})")
    _check_nearest_folder(path.parent, fail)
    return path


def ensure_writable_dir(path: str | os.PathLike[str], *, fix: str = OUT_FIX) -> Path:
    """As :func:`ensure_writable`, for a folder that files will be written into (made later,
    with its parents, if missing). Raises :class:`OutputError` ("cannot write into PATH: ...")."""
    path = Path(path)

    def fail(reason: str) -> OutputError:
        return OutputError(f"cannot write into {path}: {reason}; {fix}")

    if path.exists() and not path.is_dir():
        raise fail("it exists and is not a directory")
    _check_nearest_folder(path, fail)
    return path


def _check_nearest_folder(folder: Path, fail: Callable[[str], OutputError]) -> None:
    """The nearest existing folder at or above `folder` must be a directory we can write in:
    a temp file is made there and removed, nothing else is created."""
    while not folder.exists():
        if folder.is_symlink():
            raise fail(f"{folder} is a broken symbolic link")
        folder = folder.parent
    if not folder.is_dir():
        raise fail(f"{folder} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lenet-check.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise fail(f"{folder} is not writable ({e.strerror or e})") from None
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
