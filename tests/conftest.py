"""Shared fixtures: real MNIST (fetched once, verified) and one tiny real training run."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mnist_ready() -> None:
    """Make sure MNIST is in the data dir (fetched from a verified source on first use)."""
    from lenet import data

    data.fetch("mnist")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None):
    """One short real training run of `lenet5` on an MNIST subset, shared by several tests."""
    from lenet.config import resolve
    from lenet.train import train

    run_dir = tmp_path_factory.mktemp("tiny-run")
    cfg = resolve(None, {"model": "lenet5", "epochs": 2, "train_subset": 6000,
                         "test_subset": 2000, "batch_size": 64, "scheduler": "none",
                         "lr": 0.002, "seed": 1, "run_dir": str(run_dir)})
    return train(cfg, log=lambda s: None)
