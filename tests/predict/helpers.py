"""Shared by tests/predict and tests/serve: one real trained run per session, and the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lenet import cli

_CLI_BUILD_PARSER = cli.build_parser  # the original, before run_cli patches it
_RUN: dict[str, Path] = {}


def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real lenet5 run (1 epoch on 5,000 MNIST digits), trained once per test session."""
    if "run" not in _RUN:
        from lenet import data
        from lenet.config import resolve
        from lenet.train import train

        data.fetch("mnist")
        run_dir = tmp_path_factory.mktemp("predict-run")
        train(resolve(None, {"model": "lenet5", "epochs": 1, "train_subset": 5000,
                             "test_subset": 1000, "run_dir": str(run_dir),
                             "tensorboard": False}), log=lambda s: None)
        assert (run_dir / "model.safetensors").is_file()
        _RUN["run"] = run_dir
    return _RUN["run"]


def build_parser() -> argparse.ArgumentParser:
    """lenet's parser with predict, export and serve registered (whether or not cli.py has
    wired them in yet)."""
    from lenet import export, predict, serve

    parser = _CLI_BUILD_PARSER()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for module in (predict, export, serve):
        if module.__name__.rsplit(".", 1)[-1] not in sub.choices:
            module.add_parsers(sub)
    return parser


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run `lenet ARGV` through lenet.cli.main, with its real error handling."""
    monkeypatch.setattr(cli, "build_parser", build_parser)
    return cli.main(argv)
