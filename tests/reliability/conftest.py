"""Shared by the reliability tests of training: tiny real runs, in process, and the CLI."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

# 256 training digits, 128 test digits: 4 steps an epoch, well under a second in process.
TINY = {"model": "lenet5", "epochs": 1, "train_subset": 256, "test_subset": 128,
        "batch_size": 64, "tensorboard": False, "device": "cpu", "seed": 5}
TINY_ARGS = ("--model", "lenet5", "--epochs", "1", "--train-subset", "256", "--test-subset",
             "128", "--batch-size", "64", "--no-tensorboard", "--device", "cpu", "--seed", "5")


@pytest.fixture
def tiny(mnist_ready: None) -> Callable:
    """`tiny(run_dir, **overrides)`: the TrainConfig of a tiny run into `run_dir`."""
    from lenet.config import resolve

    def make(run_dir: Path | None, **overrides: object):
        where = {} if run_dir is None else {"run_dir": str(run_dir)}
        return resolve(None, {**TINY, **where, **overrides})

    return make


@pytest.fixture
def lenet(capsys: pytest.CaptureFixture[str], mnist_ready: None) -> Callable:
    """`lenet(*argv)`: the CLI in this process; (exit status, stderr)."""
    from lenet import cli

    def call(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = cli.main(list(argv))
        return code, capsys.readouterr().err

    return call


def one_line_error(err: str) -> str:
    """The error line of a failed command, asserting that it is its only one."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("lenet: error")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.fixture(scope="session")
def two_epochs(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> Path:
    """A finished 2-epoch tiny run (checkpoints of epochs 1 and 2); copy it, do not edit it."""
    from lenet.config import resolve
    from lenet.training.loop import fit as train

    run = tmp_path_factory.mktemp("two-epochs") / "run"
    train(resolve(None, {**TINY, "epochs": 2, "run_dir": str(run)}), log=lambda _: None)
    return run


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    def copy(run: Path) -> Path:
        return Path(shutil.copytree(run, tmp_path / "copy"))

    return copy
