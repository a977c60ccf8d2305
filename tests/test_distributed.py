"""DDP through torchrun: 2 gloo processes on CPU train like one process with the same batch."""

import csv
import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ARGS = ["train", "--model", "lenet5", "--epochs", "2", "--train-subset", "2000",
        "--test-subset", "500", "--batch-size", "64", "--lr", "0.003", "--seed", "5",
        "--no-tensorboard", "--json"]


def run(run_dir, *extra: str) -> tuple[dict, list[dict]]:
    proc = subprocess.run([sys.executable, "-m", "lenet", *ARGS, "--run-dir", str(run_dir),
                           *extra], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return json.loads(proc.stdout), rows


def test_two_process_ddp_matches_one_process(tmp_path, mnist_ready) -> None:
    single, single_rows = run(tmp_path / "single")
    ddp, ddp_rows = run(tmp_path / "ddp", "--nproc", "2")
    # Only rank 0 reports: stdout holds exactly one JSON object.
    assert ddp["run_dir"] == str(tmp_path / "ddp")
    assert abs(ddp["test_accuracy"] - single["test_accuracy"]) <= 0.002
    # Gradients averaged over two equal shards equal the whole batch's mean gradient up to
    # float rounding, so the first epoch's loss agrees far inside 1e-4.
    assert abs(float(ddp_rows[0]["train_loss"]) - float(single_rows[0]["train_loss"])) < 1e-4
