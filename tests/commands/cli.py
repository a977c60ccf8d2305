"""`lenet ARGS` as a user runs it: a subprocess, bounded in time."""

from __future__ import annotations

import subprocess
import sys

TIMEOUT = 240


def lenet(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "lenet", *args], capture_output=True, text=True,
                          timeout=TIMEOUT)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc
