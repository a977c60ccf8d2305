"""What several reliability tests share."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest


def bounded(fn: Callable[[], Any], seconds: float = 60.0) -> Any:
    """fn()'s result (or its exception) from a daemon thread, failing the test, not hanging
    it, if fn has not returned within `seconds` (what used to block: FIFOs, trickles)."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the test's thread
            box["error"] = e

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still blocked after {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")
