"""What a training run returns (:class:`RunResult`), and the error that ends one
(:class:`TrainingError`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from torch import nn

from lenet.analysis.evaluate import EvalResult
from lenet.config import TrainConfig
from lenet.errors import LenetError
from lenet.storage.history import EpochMetrics, select


class TrainingError(LenetError):
    """Training cannot go on (for example the loss became NaN)."""


class RunMetrics(TypedDict):
    """A finished run's figures: :attr:`RunResult.metrics`, ``lenet train --json`` and the run's
    ``result.json``."""

    model: str
    dataset: str
    epochs: int  # trained (fewer than asked when early stopping stopped the run)
    test_accuracy: float
    test_loss: float
    test_errors: int
    val_accuracy: float | None  # the final model's; None without a validation split
    val_loss: float | None
    best_val_accuracy: float | None
    best_epoch: int | None  # chosen on validation, never on test
    early_stopped: bool
    train_seconds: float
    seconds_per_epoch: float
    params: int
    run_dir: str


@dataclass
class RunResult:
    """What :func:`lenet.train` returns: the resolved config, the run directory, the test
    result, the per-epoch history and the trained model (final weights, eval mode)."""

    config: TrainConfig
    run_dir: Path
    params: int
    test: EvalResult
    train_seconds: float
    history: list[EpochMetrics]
    model: nn.Module  # the trained model (final weights, eval mode)

    @property
    def metrics(self) -> RunMetrics:
        """The run's figures, as `lenet train --json` prints them."""
        epochs = len(self.history)
        chosen = select(self.history)
        last = self.history[-1] if self.history else None
        return RunMetrics(
            model=self.config.model,
            dataset=self.config.dataset,
            epochs=epochs,
            test_accuracy=self.test.accuracy,
            test_loss=self.test.loss,
            test_errors=self.test.errors,
            # The final model's; the best epoch is chosen on validation (select), never on test.
            val_accuracy=last.val_accuracy if last else None,
            val_loss=last.val_loss if last else None,
            best_val_accuracy=chosen.best_val_accuracy,
            best_epoch=chosen.best_epoch,
            early_stopped=epochs < self.config.epochs,
            train_seconds=self.train_seconds,
            seconds_per_epoch=self.train_seconds / max(epochs, 1),
            params=self.params,
            run_dir=str(self.run_dir),
        )

    def summary(self) -> dict[str, Any]:
        """:attr:`metrics` as a plain dict."""
        return dict(self.metrics)
