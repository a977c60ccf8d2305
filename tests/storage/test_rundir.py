"""The run-dir contract: file names, folder naming, config and metrics round trips."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lenet.errors import LenetError
from lenet.storage import rundir


def test_default_folder_is_timestamped_new_and_never_shared(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = rundir.default("lenet5")
    assert path.parent == Path("runs") and path.is_dir() and not list(path.iterdir())
    assert re.fullmatch(r"\d{8}-\d{6}-lenet5-[0-9a-f]{4}", path.name)
    assert rundir.default("paper", root=tmp_path / "elsewhere").parent.name == "elsewhere"
    # The same second, even the same random suffix: the taken name is drawn again.
    drawn = iter(["abcd", "abcd", "ef01"])
    monkeypatch.setattr(rundir.secrets, "token_hex", lambda _n: next(drawn))
    first, second = rundir.default("x", root=tmp_path), rundir.default("x", root=tmp_path)
    assert first.name.endswith("-x-abcd") and second.name.endswith("-x-ef01")


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


def test_claim_takes_a_new_or_empty_folder_and_refuses_a_taken_one(tmp_path) -> None:
    run = tmp_path / "new"
    with rundir.claim(run) as got:
        assert got == run and run.is_dir()
        with pytest.raises(rundir.RunDirError, match=rf"in use .*process {os.getpid()}"), \
                rundir.claim(run):
            pass
        rundir.write_config(run, {"model": "lenet5"})
    with pytest.raises(rundir.RunDirError, match=r"is not empty \(config\.json\)"), \
            rundir.claim(run):
        pass
    with rundir.claim(run, resume=True):
        assert (run / rundir.CONFIG).is_file()
    (run / ".metrics.csv.abc123.tmp").write_text("half")
    with rundir.claim(run, overwrite=True):
        assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK]
    (tmp_path / "sweep-run").mkdir()
    (tmp_path / "sweep-run" / rundir.LOG).write_text("a sweep's log, written first")
    with rundir.claim(tmp_path / "sweep-run"):
        assert (tmp_path / "sweep-run" / rundir.LOG).is_file()


def test_a_claim_that_fails_removes_the_folder_it_made(tmp_path) -> None:
    run = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt), rundir.claim(run):
        raise KeyboardInterrupt
    assert not run.exists()


@pytest.mark.parametrize(("text", "line"), [
    ("epoch,lr\n1,0.1\n2,0.1,9\n", 3),
    ("epoch,lr\n1,fast\n", 2),
    ("lr\n0.1\n", 1),
])
def test_malformed_metrics_name_the_file_and_line(tmp_path, text, line) -> None:
    (tmp_path / rundir.METRICS).write_text(text)
    with pytest.raises(rundir.RunDirError, match=rf"metrics\.csv, line {line}: "):
        rundir.read_metrics(tmp_path)


def test_overwrite_clears_model_best_as_a_file_of_the_run(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in (rundir.CONFIG, rundir.WEIGHTS, rundir.BEST):
        (run / name).write_text("x")
    with rundir.claim(run, overwrite=True):
        assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK]
    (run / "model_best.safetensors.bak").write_text("someone else's")  # not lenet's: kept away
    with pytest.raises(rundir.RunDirError), rundir.claim(run, overwrite=True):
        pass
