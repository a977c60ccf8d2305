"""Interrupted training loses nothing: Ctrl-C, kill -9 at random moments, damaged checkpoints."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lenet import checkpoint, weights

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TRAIN = ["--model", "lenet5", "--epochs", "3", "--train-subset", "2000", "--test-subset", "500",
         "--batch-size", "32", "--lr", "0.003", "--no-tensorboard", "--seed", "3"]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lenet", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lenet", "train", *args], capture_output=True,
                          text=True, timeout=240)


def same_weights(a: Path, b: Path) -> bool:
    wa, _ = weights.read(a)
    wb, _ = weights.read(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference_timed(tmp_path_factory, mnist_ready) -> tuple[Path, float]:
    """The uninterrupted run, and how long its whole process took on this machine."""
    run = tmp_path_factory.mktemp("ref") / "run"
    began = time.monotonic()
    proc = finish(*TRAIN, "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr
    return run, time.monotonic() - began


@pytest.fixture(scope="module")
def reference(reference_timed) -> Path:
    return reference_timed[0]


def wait_for_first_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list((run / checkpoint.CHECKPOINT_DIR).glob("epoch-*.safetensors")):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def test_sigint_checkpoints_and_resume_is_bit_identical(tmp_path, reference) -> None:
    run = tmp_path / "run"
    proc = start(*TRAIN, "--run-dir", str(run))
    wait_for_first_checkpoint(run, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal landed; nothing to resume")
    assert proc.returncode == 130, err
    assert f"lenet train --resume {run}" in err and "Traceback" not in err
    assert not (run / "model.safetensors").exists()
    resumed = finish("--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert same_weights(run, reference)


def test_kill_9_at_random_moments_never_corrupts_the_run(tmp_path, reference_timed) -> None:
    reference, whole = reference_timed
    run = tmp_path / "run"
    rng = random.Random(1234)
    kills = 0
    for _ in range(6):  # bounded: at most six kills, then run to the end
        # Killed before it even wrote its config, a run is simply started again.
        resumable = (run / "config.json").exists()
        proc = start(*(["--resume", str(run)] if resumable else [*TRAIN, "--run-dir", str(run)]))
        # Moments drawn across the start-up and training of an uninterrupted run on this very
        # machine, so that a faster trainer or machine still gets killed mid-run.
        time.sleep(rng.uniform(0.15, 0.85) * whole)
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        # Whatever was on disk when it died must still verify.
        for path in (run / checkpoint.CHECKPOINT_DIR).glob("epoch-*.safetensors"):
            checkpoint.load(path)
    final = finish("--resume", str(run))
    assert final.returncode == 0, final.stderr
    assert kills >= 1
    assert same_weights(run, reference)


def test_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, reference) -> None:
    run = tmp_path / "run"
    args = [a if a != "3" else "2" for a in TRAIN[:4]] + TRAIN[4:]  # 2 epochs, same seed 3
    proc = finish(*args, "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr
    newest = run / checkpoint.CHECKPOINT_DIR / "epoch-0002.safetensors"
    data = bytearray(newest.read_bytes())
    data[-10] ^= 0xFF  # flip bits in a tensor: the file still parses, the hash does not match
    newest.write_bytes(bytes(data))
    resumed = finish("--resume", str(run), "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr
    assert "skipping damaged checkpoint" in resumed.stderr and "checksum" in resumed.stderr
    assert "resuming" in resumed.stderr and "from epoch 1" in resumed.stderr
    assert same_weights(run, reference)


def test_resume_refuses_changes_to_what_is_trained(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    proc = finish("--resume", str(tmp_path), "--lr", "0.5")
    assert proc.returncode == 2 and "drop lr" in proc.stderr
    proc = finish("--resume", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "no config.json" in proc.stderr
