"""`lenet train`'s command line: the config flags, --resume and --nproc."""

from __future__ import annotations

import argparse

from lenet.commands import train


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lenet")
    train.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_flags_reach_the_config_and_the_handler_is_run() -> None:
    from lenet.config import resolve, train_overrides

    args = _parse("--config", "lenet5-fast", "--epochs", "2", "--channels-last", "--json")
    assert args.handler is train.run and args.json and args.resume is None
    cfg = resolve(args.config, train_overrides(args))
    assert (cfg.epochs, cfg.channels_last, cfg.optimizer) == (2, True, "sgd")


def test_resume_and_nproc_are_command_flags() -> None:
    args = _parse("--resume", "runs/a", "--nproc", "2", "--epochs", "5")
    assert (args.resume, args.nproc, args.epochs) == ("runs/a", 2, 5)
