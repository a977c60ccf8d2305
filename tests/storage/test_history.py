"""lenet.storage.history: metrics rows, and the one best-epoch rule that training and
`lenet compare` share."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pytest

from lenet.analysis.figures.compare import run_row
from lenet.storage import rundir
from lenet.storage.history import (
    METRICS_COLUMNS,
    EpochMetrics,
    from_csv,
    from_record,
    select,
)


def _row(epoch: int, val_accuracy: float | None, val_loss: float | None) -> EpochMetrics:
    return EpochMetrics(epoch, 0.5, 0.9, 0.95, 0.2, val_accuracy, val_loss, 0.01, 1.0, 100.0)


def _write(run: Path, history: list[EpochMetrics], columns: tuple[str, ...] = METRICS_COLUMNS
           ) -> None:
    run.mkdir()
    rundir.write_metrics(run, columns, [asdict(m) for m in history])


def test_a_row_without_val_loss_loses_a_tie_in_training_and_in_compare(tmp_path) -> None:
    """Equal validation accuracy: the row with a validation loss wins over the one without
    (unknown counts as infinite), in select and in `lenet compare` alike (compare once
    counted it as 0, and chose the other epoch)."""
    history = [_row(1, 0.9, None), _row(2, 0.9, 0.3), _row(3, 0.8, 0.2)]
    assert select(history).best_epoch == 2
    _write(tmp_path / "run", history)
    row = run_row(tmp_path / "run")
    assert (row["best_epoch"], row["best_val_accuracy"]) == (2, 0.9)


def test_a_history_without_a_val_loss_column_picks_the_same_epoch_in_both(tmp_path) -> None:
    # An older lenet's metrics.csv: no val_loss column at all; the tie goes to the earlier epoch.
    history = [_row(1, 0.8, None), _row(2, 0.9, None), _row(3, 0.9, None)]
    _write(tmp_path / "run", history, tuple(c for c in METRICS_COLUMNS if c != "val_loss"))
    read_back = [from_csv(r) for r in rundir.read_metrics(tmp_path / "run")]
    assert [m.val_loss for m in read_back] == [None, None, None]
    assert select(read_back).best_epoch == select(history).best_epoch == 2
    assert run_row(tmp_path / "run")["best_epoch"] == 2


def test_without_a_validation_split_nothing_is_chosen(tmp_path) -> None:
    history = [_row(1, None, None), _row(2, None, None)]
    _write(tmp_path / "run", history)
    row = run_row(tmp_path / "run")
    assert row["best_epoch"] is row["best_val_accuracy"] is None
    read_back = [from_csv(r) for r in rundir.read_metrics(tmp_path / "run")]
    assert [m.epoch for m in read_back] == [1, 2]
    assert select(read_back) == select(history) == select([])
    assert select([]).best_epoch is None and select([]).stale_epochs == 0


def test_rows_read_back_are_the_rows_written(tmp_path) -> None:
    history = [_row(1, 0.9, 0.25), _row(2, None, None)]
    _write(tmp_path / "run", history)
    assert [from_csv(r) for r in rundir.read_metrics(tmp_path / "run")] == history
    # A checkpoint's row from before val_loss was recorded.
    old = {k: v for k, v in asdict(history[0]).items() if k != "val_loss"}
    assert from_record(old) == EpochMetrics(**{**asdict(history[0]), "val_loss": None})
    # A column an older metrics.csv lacks reads as NaN, not as a number it never had.
    partial = from_csv({"epoch": "3", "test_accuracy": "0.5"})
    assert partial.epoch == 3 and partial.test_accuracy == 0.5
    assert math.isnan(partial.train_loss) and partial.val_accuracy is None


def test_stale_epochs_count_from_the_last_new_low_of_the_validation_loss() -> None:
    history = [_row(1, 0.90, 0.30), _row(2, 0.91, 0.25), _row(3, 0.92, 0.26),
               _row(4, 0.89, 0.27)]
    chosen = select(history)
    assert (chosen.best_epoch, chosen.best_val_loss, chosen.stale_epochs) == (3, 0.26, 2)
    assert chosen.best_val_accuracy == pytest.approx(0.92)
