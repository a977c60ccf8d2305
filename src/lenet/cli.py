"""The `lenet` command line: one subcommand per module of :mod:`lenet.commands`.

Each command module imports what it needs only when it runs, so `lenet --help` is instant.
User mistakes (a bad flag value, a missing file, a corrupt download) print one clear message and
exit with status 2; they never print a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from lenet import __version__
from lenet.commands import NAMES
from lenet.errors import LenetError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lenet", description="LeNet-5, faithful and fast: train, evaluate, inspect.")
    parser.add_argument("--version", action="version", version=f"lenet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in NAMES:
        importlib.import_module(f"lenet.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LenetError as e:
        rank = os.environ.get("RANK", "0")  # set by torchrun (`--nproc`)
        where = "" if rank == "0" else f" (process {rank})"
        sys.stderr.write(f"lenet: error{where}: {e}\n")  # one write: ranks share stderr
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("lenet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lenet ... | head` closed the pipe: stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
