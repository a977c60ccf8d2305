"""Training: the trainer, its steps and optimizers, sweeps of runs.

``lenet.train(...)`` is :func:`train`.
"""

from lenet.training.trainer import RunResult
from lenet.training.trainer import run as train

__all__ = ["RunResult", "train"]
