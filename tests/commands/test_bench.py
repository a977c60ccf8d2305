"""`lenet bench`'s flags: the shared vocabulary, and nothing heavy imported to parse them."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest


def _parse(*argv: str) -> argparse.Namespace:
    from lenet.commands import bench

    parser = argparse.ArgumentParser()
    bench.add_parser(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_defaults_and_flags() -> None:
    from lenet.commands import bench

    a = _parse()
    assert (a.json, a.out, a.quick, a.seeds, a.device) == (False, None, False, None, "auto")
    assert a.handler is bench.run
    a = _parse("--json", "--out", "b.json", "--quick", "--seeds", "3", "--device", "cpu")
    assert (a.json, a.out, a.quick, a.seeds, a.device) == (True, "b.json", True, 3, "cpu")
    with pytest.raises(SystemExit):
        _parse("--device", "tpu")


def test_the_command_module_imports_nothing_heavy() -> None:
    code = ("import sys, lenet.commands.bench; "
            "print(sorted(m for m in ('torch', 'lenet.bench', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
