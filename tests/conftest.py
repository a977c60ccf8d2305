"""Shared fixtures: real MNIST (fetched once, verified) and one tiny real training run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from lenet.runtime.threads import available_cores

# lenet picks its threads from the cores free when a run starts (lenet.runtime.threads.free_cores),
# and the thread count orders float sums. The tests compare runs bit for bit, so they fix it to
# the machine's cores, as torch's own default does; tests/runtime/test_threads.py tests the
# free-core choice.
os.environ.setdefault("OMP_NUM_THREADS", str(available_cores()))

# Hypothesis: `make test` runs a bounded, derandomized number of examples (same cases every run,
# no example database in the checkout); `make fuzz` loads the "fuzz" profile and loops over
# fresh seeds for FUZZ_SECONDS. Fuzz tests (marked `fuzz`) leave max_examples to the profile.
settings.register_profile("ci", max_examples=40, derandomize=True, database=None,
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def mnist_ready() -> None:
    """Make sure MNIST is in the data dir (fetched from a verified source on first use)."""
    from lenet import data

    data.fetch("mnist")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None):
    """One short real training run of `lenet5` on an MNIST subset, shared by several tests."""
    from lenet.config import resolve
    from lenet.training.loop import fit as train

    run_dir = tmp_path_factory.mktemp("tiny-run")
    cfg = resolve(None, {"model": "lenet5", "epochs": 2, "train_subset": 6000,
                         "test_subset": 2000, "batch_size": 64, "scheduler": "none",
                         "lr": 0.002, "seed": 1, "run_dir": str(run_dir)})
    return train(cfg, log=lambda s: None)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> Path:
    """A real lenet5 run dir (1 epoch on 5,000 digits) for the predict and serve tests."""
    from lenet.config import resolve
    from lenet.training.loop import fit as train

    run_dir = tmp_path_factory.mktemp("predict-run")
    train(resolve(None, {"model": "lenet5", "epochs": 1, "train_subset": 5000,
                         "test_subset": 1000, "run_dir": str(run_dir),
                         "tensorboard": False}), log=lambda s: None)
    assert (run_dir / "model.safetensors").is_file()
    return run_dir


@pytest.fixture(scope="session")
def mnist_test(mnist_ready: None) -> tuple[np.ndarray, np.ndarray]:
    from lenet import data

    images, labels = data.load("mnist", "test")
    return images.numpy(), labels.numpy()


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory, mnist_ready: None) -> dict:
    """Tiny real lenet5 and MLP runs that evaluate, report and compare draw on."""
    from tests.analysis.helpers import train_run

    root = tmp_path_factory.mktemp("viz-runs")
    return {"lenet5": train_run(root, "lenet5", model="lenet5", val_size=200),
            "mlp": train_run(root, "mlp", model="mlp", epochs=2)}
