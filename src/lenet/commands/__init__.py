"""The `lenet` subcommands: one module per command, each of the same shape.

A command module ``lenet/commands/NAME.py`` has

- ``add_parser(subparsers) -> argparse.ArgumentParser``: registers ``lenet NAME`` with its
  flags, and ``set_defaults(handler=run)``;
- ``run(args: argparse.Namespace) -> int``: does the work through the feature modules and
  returns the exit status.

It imports only the standard library and :mod:`lenet.commands.options` at module level, so that
``lenet --help`` stays instant; ``run`` imports what it needs. The flags share one vocabulary
(:mod:`lenet.commands.options`): ``--run-dir`` names a run folder, ``--out`` a file, ``--device``
defaults to ``auto``, ``--json`` prints one JSON result on stdout, ``-q``/``-v`` (before or
after the command's name) set how much the ``lenet`` logger shows on stderr. A user's mistake
is a :class:`lenet.errors.LenetError`, which :func:`lenet.cli.main` prints as one line.

A new command is a new module here and its name in :data:`NAMES`. :func:`build_parser` is the
whole `lenet` parser, for :mod:`lenet.cli` and for ``lenet completion`` (which hands it to
shtab).
"""

from __future__ import annotations

import argparse
import importlib

from lenet.commands import options

NAMES = ("train", "evaluate", "report", "compare", "robustness", "predict", "read", "export",
         "serve", "sweep", "paper", "bench", "models", "weights", "summary", "data", "completion")


def build_parser() -> argparse.ArgumentParser:
    """`lenet`'s parser: ``--version`` and one subcommand per name in :data:`NAMES`."""
    from lenet._version import __version__

    parser = argparse.ArgumentParser(
        prog="lenet", description="LeNet-5, faithful and fast: train, evaluate, inspect.")
    parser.add_argument("--version", action="version", version=f"lenet {__version__}")
    options.add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in NAMES:
        _add_verbosity_below(importlib.import_module(f"lenet.commands.{name}").add_parser(sub))
    return parser


def _add_verbosity_below(p: argparse.ArgumentParser) -> None:
    """``-q``/``-v`` on `p` and on its own subcommands (``lenet data fetch -q``)."""
    options.add_verbosity(p)
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbosity_below(child)
