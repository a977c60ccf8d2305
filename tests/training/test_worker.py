"""The worker process of a sweep: a TrainConfig in the run dir in, its result in the run dir out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lenet.config import resolve
from lenet.storage import rundir
from lenet.training import worker


def test_the_worker_is_a_module_that_takes_the_run_dir(tmp_path: Path) -> None:
    argv = worker.command(tmp_path)
    assert argv[1:] == ["-m", "lenet.training.worker", str(tmp_path)]


def test_a_bad_job_is_one_line_and_status_2(tmp_path: Path, capsys) -> None:
    rundir.write_job(tmp_path, {"model": "lenet5", "lr": "fast"})
    assert worker.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lenet: error: ") and "invalid value 'fast' for 'lr'" in err
    assert rundir.read_result(tmp_path) is None
    assert worker.main([]) == 2 and "usage:" in capsys.readouterr().err


def test_the_job_is_the_config_the_sweep_wrote(tmp_path: Path) -> None:
    cfg = resolve("lenet5-1998", {"epochs": 2, "seed": 7, "run_dir": str(tmp_path)})
    rundir.write_job(tmp_path, cfg.to_dict())
    assert worker.job_config(tmp_path) == cfg


@pytest.mark.slow
def test_a_worker_trains_the_job_and_leaves_its_result(tmp_path: Path, mnist_ready: None) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = resolve("lenet5", {"epochs": 1, "train_subset": 500, "test_subset": 200,
                             "device": "cpu", "tensorboard": False, "run_dir": str(run_dir)})
    rundir.write_job(run_dir, cfg.to_dict())
    proc = subprocess.run(worker.command(run_dir), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # the result goes to the run dir, not to stdout
    result = rundir.read_result(run_dir)
    assert result is not None and result["epochs"] == 1 and 0 < result["test_accuracy"] <= 1
    assert Path(result["run_dir"]) == run_dir
    assert json.loads((run_dir / rundir.CONFIG).read_text())["train_subset"] == 500
