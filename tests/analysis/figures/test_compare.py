"""lenet.analysis.figures.compare and `lenet compare` on two real tiny runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analysis.helpers import png_ok


def test_compare_two_runs(runs, tmp_path) -> None:
    import csv

    from lenet.analysis.figures.compare import compare, format_table

    r = compare([str(runs["lenet5"].run_dir), str(runs["mlp"].run_dir)], tmp_path / "c.png")
    a, b = r["runs"]
    assert (a["model"], b["model"]) == ("lenet5", "mlp")
    assert (a["epochs"], b["epochs"]) == (1, 2)
    assert a["params"] == runs["lenet5"].params and b["params"] == runs["mlp"].params
    assert a["final_accuracy"] == runs["lenet5"].test.accuracy
    rows = list(csv.DictReader((runs["lenet5"].run_dir / "metrics.csv").open()))
    assert a["best_val_accuracy"] == max(float(x["val_accuracy"]) for x in rows)
    assert b["best_val_accuracy"] is None and b["best_epoch"] is None  # no validation split
    assert b["seconds_per_epoch"] > 0
    table = format_table(r["runs"])
    assert "lenet5" in table and "mlp" in table and f"{b['params']:,}" in table
    png_ok(Path(r["plot"]), (900, 550))


def test_the_best_epoch_is_chosen_on_validation_never_on_test(tmp_path) -> None:
    from lenet.analysis.figures.compare import run_row
    from lenet.storage import rundir

    rundir.write_config(tmp_path, {"model": "lenet5", "dataset": "mnist"})
    (tmp_path / rundir.METRICS).write_text(
        "epoch,test_accuracy,val_accuracy,val_loss\n"
        "1,0.95,0.94,0.20\n2,0.96,0.97,0.10\n3,0.99,0.95,0.15\n")  # best test: 3; best val: 2
    row = run_row(tmp_path)
    assert (row["best_epoch"], row["best_val_accuracy"]) == (2, 0.97)


def test_compare_refuses_what_is_not_a_run(tmp_path) -> None:
    from lenet.analysis.figures.compare import run_row
    from lenet.storage.rundir import RunDirError

    with pytest.raises(RunDirError, match="not a run directory"):
        run_row(tmp_path / "nowhere")
    with pytest.raises(RunDirError, match=r"neither metrics\.csv nor model\.safetensors"):
        run_row(tmp_path)


def test_compare_draws_nothing_unasked_and_takes_nan_metrics(tmp_path) -> None:
    import math

    from lenet.analysis.figures.compare import compare, format_table
    from lenet.storage import rundir

    run = tmp_path / "run"
    run.mkdir()
    rundir.write_config(run, {"model": "lenet5", "dataset": "mnist"})
    (run / rundir.METRICS).write_text(
        "epoch,test_accuracy,val_accuracy,val_loss\n"
        "1,nan,0.94,0.20\nnan,0.96,0.97,0.10\n3,0.99,nan,nan\n")
    r = compare([str(run)])
    assert r["plot"] is None and sorted(p.name for p in run.iterdir()) == ["config.json",
                                                                           "metrics.csv"]
    row = r["runs"][0]
    assert row["epochs_list"] == [1, 3]  # the row whose epoch is NaN is left out
    assert math.isnan(row["accuracy_list"][0]) and row["accuracy_list"][1] == 0.99
    assert "lenet5" in format_table(r["runs"])
    compare([str(run)], tmp_path / "c.png")
    png_ok(tmp_path / "c.png", (900, 550))
