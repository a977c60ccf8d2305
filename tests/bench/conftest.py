"""`lenet bench --quick --seeds 1`, run once through the command for every test of the package."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math

import pytest


def positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="package")
def quick(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> tuple[dict, str, str]:
    """The JSON printed on stdout, the JSON file and the Markdown file that `--out` wrote."""
    from lenet.commands import bench

    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers())
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    args = parser.parse_args(["bench", "--quick", "--seeds", "1", "--json", "--out", str(out)])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert args.handler(args) == 0
    return json.loads(buf.getvalue()), out.read_text(), out.with_suffix(".md").read_text()
