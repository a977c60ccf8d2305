"""`lenet ARGS` as a user runs it: a subprocess, bounded in time."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

TIMEOUT = 240


def lenet(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "lenet", *args], capture_output=True, text=True,
                          timeout=TIMEOUT)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand's parser under `parser` (``data fetch`` too), by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield name, child
                yield from subparsers(child)
