"""Where lenet's words go: progress to stderr, results to stdout.

Logs go to stderr so that a command's stdout can hold nothing but its result (``--json``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

Log = Callable[[str], None]


def log(message: str) -> None:
    """One line of progress on stderr, flushed at once (a sweep's children share the pipe)."""
    print(message, file=sys.stderr, flush=True)


def silent(message: str) -> None:
    """A :data:`Log` that drops everything (DDP ranks other than 0, quiet benchmarks)."""


def print_json(obj: Any) -> None:
    """A command's ``--json`` result on stdout."""
    print(json.dumps(obj, indent=2))
