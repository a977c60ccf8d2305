from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.predict.helpers import trained_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="session")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    from lenet import data

    data.fetch("mnist")
    images, labels = data.load("mnist", "test")
    return images.numpy(), labels.numpy()
