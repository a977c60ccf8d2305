"""The run-dir contract: file names, folder naming, config and metrics round trips."""

from __future__ import annotations

import re

import pytest

from lenet import rundir
from lenet.errors import LenetError


def test_default_folder_is_timestamped_under_runs() -> None:
    path = rundir.default("lenet5")
    assert path.parent.name == "runs"
    assert re.fullmatch(r"\d{8}-\d{6}-lenet5", path.name)
    assert rundir.default("paper", root="elsewhere").parent.name == "elsewhere"


def test_config_round_trip_and_missing_config(tmp_path) -> None:
    assert rundir.read_config(tmp_path) == {}
    with pytest.raises(rundir.RunDirError, match=r"no config\.json there"):
        rundir.read_config(tmp_path, required=True)
    rundir.write_config(tmp_path, {"model": "lenet5", "milestones": [2, 5]})
    assert rundir.read_config(tmp_path, required=True) == {"model": "lenet5",
                                                            "milestones": [2, 5]}
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temp file left


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_unreadable_config_is_a_one_line_error_naming_the_file(tmp_path, text) -> None:
    (tmp_path / rundir.CONFIG).write_text(text)
    with pytest.raises(LenetError, match=r"config\.json"):
        rundir.read_config(tmp_path)


def test_metrics_round_trip_writes_none_as_empty(tmp_path) -> None:
    assert rundir.read_metrics(tmp_path) == []
    rows = [{"epoch": 1, "val_accuracy": None, "lr": 0.01},
            {"epoch": 2, "val_accuracy": 0.5, "lr": 0.001}]
    rundir.write_metrics(tmp_path, ["epoch", "val_accuracy", "lr"], rows)
    assert (tmp_path / rundir.METRICS).read_text().splitlines() == [
        "epoch,val_accuracy,lr", "1,,0.01", "2,0.5,0.001"]
    assert rundir.read_metrics(tmp_path) == [
        {"epoch": "1", "val_accuracy": "", "lr": "0.01"},
        {"epoch": "2", "val_accuracy": "0.5", "lr": "0.001"}]


def test_require_names_what_is_missing(tmp_path) -> None:
    assert rundir.require(tmp_path) == tmp_path
    with pytest.raises(rundir.RunDirError, match="not a run directory"):
        rundir.require(tmp_path / "missing")
