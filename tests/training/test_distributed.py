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


def test_ddp_last_batch_smaller_than_the_ranks_trains_on(tmp_path, mnist_ready) -> None:
    """1,985 digits at batch 64 leave a last global batch of one digit: one of two ranks would
    get an empty shard and a NaN loss. That digit sits the epoch out instead."""
    args = [("1985" if a == "2000" else a) for a in ARGS]  # --train-subset
    proc = subprocess.run([sys.executable, "-m", "lenet", *args, "--run-dir",
                           str(tmp_path / "odd"), "--nproc", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "odd" / "metrics.csv").open()))
    assert len(rows) == 2
    for row in rows:
        assert 0 < float(row["train_loss"]) < 3 and 0.1 < float(row["train_accuracy"]) <= 1


def test_ddp_failure_is_one_line_per_process_without_traceback(tmp_path, mnist_ready) -> None:
    proc = subprocess.run([sys.executable, "-m", "lenet", *ARGS, "--run-dir",
                           str(tmp_path / "nan"), "--nproc", "2", "--lr", "1e6"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lenet: error")]
    assert len(errors) == 2, proc.stderr
    assert all("try a lower learning rate" in line for line in errors)
    assert sorted("(process 1)" in line for line in errors) == [False, True]  # rank 0 untagged


def test_ddp_ctrl_c_stops_every_process_with_a_resume_hint(tmp_path, mnist_ready) -> None:
    """Ctrl-C reaches the whole process group: each rank stops and rank 0 keeps a checkpoint;
    the launcher exits 130 without a traceback of its own."""
    import os
    import signal

    # 20 epochs of 6,000 digits: long enough to interrupt (the signal follows the first epoch's
    # log line, 19 epochs before the end); without --json, epochs are logged.
    args = [{"2": "20", "2000": "6000"}.get(a, a) for a in ARGS if a != "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "lenet", *args, "--run-dir",
                             str(tmp_path / "int"), "--nproc", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        seen = []
        for line in proc.stderr:  # bounded by the test's timeout
            seen.append(line)
            if line.split()[:2] == ["epoch", "1/20"]:
                break
        os.killpg(proc.pid, signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = "".join(seen) + rest
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"lenet train --resume {tmp_path / 'int'}" in stderr
    assert list((tmp_path / "int" / "checkpoints").glob("*.safetensors"))
