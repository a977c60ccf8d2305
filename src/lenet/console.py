"""Where lenet's words go: messages through the ``lenet`` logger, results to stdout.

Every progress line, note and warning is a record of the standard :mod:`logging` logger
``lenet`` (or a child such as ``lenet.training``); tqdm draws the progress bars. A command's
result (a table, ``--json``) is printed on stdout, so that stdout holds nothing else.

The output rule, as in Lightning and transformers:

- ``import lenet`` configures nothing: the ``lenet`` logger gets a :class:`logging.NullHandler`
  only.
- A program that configured no logging (a notebook, a script) still sees lenet's progress: at
  its first message lenet adds one handler of its own to the ``lenet`` logger, which writes
  each message as one line on stderr, and sets the logger's level to INFO if none was set.
  It does so only while the ``lenet`` logger has no other handler and the root logger has none
  (:func:`logging.basicConfig`, a framework's setup): once either has one, lenet's own handler
  is taken away again at the next message, and the program's configuration decides alone.
- ``logging.getLogger("lenet").disabled = True`` (or a level of WARNING) silences lenet's
  progress (tqdm's bars stay: ``progress=False`` turns them off); the `lenet` command sets the
  level from ``-q`` (errors only, and no bars) and ``-v`` (debug), see :func:`command_output`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

Log = Callable[[str], None]

LOGGER = "lenet"
_root = logging.getLogger(LOGGER)
if not any(isinstance(h, logging.NullHandler) for h in _root.handlers):  # lenet/__init__ adds it
    _root.addHandler(logging.NullHandler())


class StderrHandler(logging.StreamHandler):
    """One line per record on whatever ``sys.stderr`` is when it is written (pytest's capture, a
    notebook's), flushed at once: a sweep's children share one pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        """StreamHandler sets its stream once; this one always writes to the current stderr."""


class _Default:
    """lenet's own handler for a program that configured no logging, and the level it set."""

    handler = StderrHandler()
    set_level = False


def _apply_default() -> None:
    """The output rule of this module's docstring, checked at each message (cheap)."""
    own = [h for h in _root.handlers
           if h is not _Default.handler and not isinstance(h, logging.NullHandler)]
    wanted = not own and not logging.getLogger().handlers
    present = _Default.handler in _root.handlers
    if wanted and not present:
        _root.addHandler(_Default.handler)
        if _root.level == logging.NOTSET:
            _root.setLevel(logging.INFO)
            _Default.set_level = True
    elif not wanted and present:
        _drop_default()


def _drop_default() -> None:
    """Take lenet's own handler away, and the level it set (unless changed since)."""
    _root.removeHandler(_Default.handler)
    if _Default.set_level and _root.level == logging.INFO:
        _root.setLevel(logging.NOTSET)
    _Default.set_level = False


def logger(name: str = "") -> logging.Logger:
    """The ``lenet`` logger, or its child ``lenet.NAME``, ready for a message now (call it
    where the message is written, not at import: the output rule is applied here)."""
    _apply_default()
    return logging.getLogger(f"{LOGGER}.{name}" if name else LOGGER)


def log(message: str) -> None:
    """One line of progress: an INFO record of the ``lenet`` logger (stderr by default)."""
    logger().info(message)


def warn(message: str) -> None:
    """A note the user should act on: a WARNING record of the ``lenet`` logger."""
    logger().warning(message)


def debug(message: str) -> None:
    """Detail for ``-v``: a DEBUG record of the ``lenet`` logger."""
    logger().debug(message)


def silent(message: str) -> None:
    """A :data:`Log` that drops everything (DDP ranks other than 0, quiet benchmarks)."""


@contextmanager
def command_output(level: int = logging.INFO) -> Iterator[None]:
    """The `lenet` command's output while it runs: each message of `level` or above as one
    line on stderr, through a handler of the command's own (not the program's root handlers),
    as the command always printed them; the logger is restored afterwards (tests and notebooks
    call :func:`lenet.cli.main` in a process that goes on)."""
    handler = StderrHandler()
    _drop_default()
    saved = _root.level, _root.propagate, _root.disabled, _Command.quiet
    _root.addHandler(handler)
    _root.setLevel(level)
    _root.propagate = False
    _root.disabled = False
    _Command.quiet = level > logging.INFO
    try:
        yield
    finally:
        _root.removeHandler(handler)
        _root.setLevel(saved[0])
        _root.propagate, _root.disabled, _Command.quiet = saved[1], saved[2], saved[3]


class _Command:
    quiet = False  # a `lenet -q` command is running


def quiet() -> bool:
    """Whether a `lenet -q` command runs: it shows no progress bars either (tqdm's bars are
    not log records), only errors."""
    return _Command.quiet


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 epoch``, ``2 epochs``: `count` and `word`, in the plural unless count is 1.

    >>> plural(1, "epoch"), plural(3, "epoch"), plural(2, "pass", "passes")
    ('1 epoch', '3 epochs', '2 passes')
    """
    return f"{count} {word if count == 1 else many or word + 's'}"


def print_json(obj: Any) -> None:
    """A command's ``--json`` result on stdout."""
    print(json.dumps(obj, indent=2))
