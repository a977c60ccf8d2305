"""What a training run returns (:class:`RunResult`), and the error that ends one
(:class:`TrainingError`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from lenet.analysis.evaluate import EvalResult
from lenet.config import TrainConfig
from lenet.errors import LenetError
from lenet.storage.history import EpochMetrics, select


class TrainingError(LenetError):
    """Training cannot go on (for example the loss became NaN)."""


@dataclass
class RunResult:
    config: TrainConfig
    run_dir: Path
    params: int
    test: EvalResult
    train_seconds: float
    history: list[EpochMetrics]
    model: nn.Module  # the trained model (final weights, eval mode)

    @property
    def metrics(self) -> dict[str, Any]:
        """:meth:`summary`: the run's figures, as `lenet train --json` prints them."""
        return self.summary()

    def summary(self) -> dict[str, Any]:
        epochs = len(self.history)
        chosen = select(self.history)
        return {
            "model": self.config.model,
            "dataset": self.config.dataset,
            "epochs": epochs,
            "test_accuracy": self.test.accuracy,
            "test_loss": self.test.loss,
            "test_errors": self.test.errors,
            # The final model's; the best epoch is chosen on validation (select), never on test.
            "val_accuracy": self.history[-1].val_accuracy if self.history else None,
            "val_loss": self.history[-1].val_loss if self.history else None,
            "best_val_accuracy": chosen.best_val_accuracy,
            "best_epoch": chosen.best_epoch,
            "early_stopped": epochs < self.config.epochs,
            "train_seconds": self.train_seconds,
            "seconds_per_epoch": self.train_seconds / max(epochs, 1),
            "params": self.params,
            "run_dir": str(self.run_dir),
        }
