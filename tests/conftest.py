"""Shared fixtures: real MNIST (fetched once, verified) and one tiny real training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real lenet5 run dir (1 epoch on 5,000 digits) for the predict and serve tests."""
    from tests.predict.helpers import trained_run

    return trained_run(tmp_path_factory)


@pytest.fixture(scope="session")
def mnist_test(mnist_ready: None) -> tuple[np.ndarray, np.ndarray]:
    from lenet import data

    images, labels = data.load("mnist", "test")
    return images.numpy(), labels.numpy()
