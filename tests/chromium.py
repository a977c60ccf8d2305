"""Headless Chromium for the browser tests (the report page, the draw-a-digit app).

Debian's /usr/bin/chromium driven by Playwright for Python (never `playwright install`). A test
that needs it is marked ``@requires_chromium``: skipped only when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

requires_chromium = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched Playwright ``Browser`` on /usr/bin/chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, timeout=60_000,
                                     args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
