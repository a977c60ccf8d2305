"""A run's history, one :class:`EpochMetrics` row per epoch, and the one rule that picks its
best epoch.

The rows are metrics.csv's columns (:data:`METRICS_COLUMNS`) and what a checkpoint carries in
its metadata. :func:`select` is the best-epoch rule of every part of lenet: the trainer writes
``model_best.safetensors`` and counts ``early_stop`` by it, ``lenet compare`` shows its choice.
It reads the validation columns only: the test set never chooses anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    test_loss: float
    val_accuracy: float | None
    val_loss: float | None
    lr: float
    seconds: float
    images_per_s: float


METRICS_COLUMNS = tuple(f.name for f in fields(EpochMetrics))
_OPTIONAL = ("val_accuracy", "val_loss")  # None without a validation split


def from_record(row: Mapping[str, Any]) -> EpochMetrics:
    """A checkpoint's history row (one from before val_loss was recorded has none)."""
    return EpochMetrics(**{"val_loss": None, **row})


def from_csv(row: Mapping[str, str]) -> EpochMetrics:
    """A row of metrics.csv as :func:`lenet.storage.rundir.read_metrics` reads it (strings): an
    empty or missing validation cell is None, any other missing figure NaN (an older lenet
    wrote fewer columns)."""
    values: dict[str, Any] = {}
    for name in METRICS_COLUMNS:
        cell = row.get(name, "")
        if name == "epoch":
            values[name] = int(float(cell))
        elif cell:
            values[name] = float(cell)
        else:
            values[name] = None if name in _OPTIONAL else math.nan
    return EpochMetrics(**values)


@dataclass(frozen=True)
class Selection:
    """What the validation split has chosen after some epochs (all None without one)."""

    best_epoch: int | None  # the epoch whose weights model_best.safetensors holds
    best_val_accuracy: float | None
    best_val_loss: float | None
    stale_epochs: int  # epochs since the validation loss last reached a new low


def select(history: Sequence[EpochMetrics]) -> Selection:
    """The best epoch on validation: the highest validation accuracy, a tie going to the lower
    validation loss, then to the earlier epoch; and the epochs since the validation loss last
    fell (what ``early_stop`` counts). The test columns are never read."""
    best: EpochMetrics | None = None
    best_accuracy = -math.inf
    low, stale = math.inf, 0
    for m in history:
        if m.val_accuracy is None:
            continue
        if best is None or (m.val_accuracy, -_loss(m)) > (best_accuracy, -_loss(best)):
            best, best_accuracy = m, m.val_accuracy
        if _loss(m) < low:
            low, stale = _loss(m), 0
        else:
            stale += 1
    if best is None:
        return Selection(None, None, None, 0)
    return Selection(best.epoch, best.val_accuracy, best.val_loss, stale)


def _loss(m: EpochMetrics) -> float:
    """The validation loss, infinite when unknown (a row from an older lenet)."""
    return math.inf if m.val_loss is None else m.val_loss
