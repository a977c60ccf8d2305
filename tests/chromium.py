"""Headless Chromium for the browser tests (the report page, the draw-a-digit app).

Debian's /usr/bin/chromium driven by Playwright for Python (never `playwright install`). A test
that needs it is marked ``@requires_chromium``: skipped only when /usr/bin/chromium is absent.
The page's scripts are also run without a page: :func:`in_node` and :func:`in_page` call one
JavaScript function expression on JSON input, with the scripts loaded as the page loads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
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


def in_node(scripts: Sequence[Path], call: str) -> Callable[[Any], Any]:
    """`call` (a JS function expression) on JSON input, in Node, `scripts` required first with
    ``window`` as the global object (each call one process)."""
    script = ("globalThis.window = globalThis; for (const f of process.argv.slice(1)) "
              "require(f); let s = ''; process.stdin.on('data', d => s += d).on('end', () => "
              f"process.stdout.write(JSON.stringify(({call})(JSON.parse(s)))));")

    def run(inp: Any) -> Any:
        proc = subprocess.run([shutil.which("node") or "node", "-e", script,
                               *map(str, scripts)], input=json.dumps(inp),
                              capture_output=True, text=True, timeout=120, check=True)
        return json.loads(proc.stdout)

    return run


@contextlib.contextmanager
def in_page(scripts: Sequence[Path], call: str, title: str) -> Iterator[Callable[[Any], Any]]:
    """`call` on JSON input in an empty Chromium page holding `scripts`."""
    with chromium() as browser:
        page = browser.new_page()
        page.set_content(f"<!doctype html><title>{title}</title>")
        for script in scripts:
            page.add_script_tag(path=str(script))
        yield lambda inp: page.evaluate(call, inp)
        page.close()
