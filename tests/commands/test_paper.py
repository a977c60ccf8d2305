"""`lenet paper`'s command line."""

from __future__ import annotations

import argparse

from lenet.commands import paper as commands_paper


def test_add_parser_registers_the_subcommand() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    commands_paper.add_parser(sub)
    args = parser.parse_args(["paper", "--only", "linear", "lenet1", "--seeds", "2",
                              "--epochs", "1", "--train-subset", "500"])
    assert args.only == ["linear", "lenet1"] and args.seeds == 2 and args.epochs == 1
    assert args.train_subset == 500 and args.handler is commands_paper.run
