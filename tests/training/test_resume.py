"""Interrupted training loses nothing: Ctrl-C, SIGTERM, kill -9 at random moments, and damaged
checkpoints (edited, truncated, replaced by a pickle) that resume skips for the one before."""

import csv
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lenet.models import weights
from lenet.storage import checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EPOCHS = 6  # short epochs, several of them: kills land in different epochs
TRAIN = ["--model", "lenet5", "--epochs", str(EPOCHS), "--train-subset", "1000",
         "--test-subset", "300", "--batch-size", "20", "--lr", "0.003", "--no-tensorboard",
         "--seed", "3", "--threads", "2"]  # the thread count orders the float sums
_CKPT_NAME = re.compile(r"^epoch-(\d+)(?:-step-(\d+))?\.safetensors$")


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lenet", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lenet", "train", *args], capture_output=True,
                          text=True, timeout=300)


def with_epochs(args: list[str], epochs: int) -> list[str]:
    i = args.index("--epochs")
    return [*args[:i + 1], str(epochs), *args[i + 2:]]


def same_weights(a: Path, b: Path) -> bool:
    wa, _ = weights.read(a)
    wb, _ = weights.read(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def metrics(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "metrics.csv").open()))


def epochs_checkpointed(run: Path) -> int:
    """Completed epochs according to the newest checkpoint's file name (0 when none)."""
    done = [int(m.group(1)) for p in (run / checkpoint.CHECKPOINT_DIR).glob("epoch-*")
            if (m := _CKPT_NAME.match(p.name))]
    return max(done, default=0)


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


def wait_for_first_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not list((run / checkpoint.CHECKPOINT_DIR).glob("epoch-*.safetensors")):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def interrupt(sig: signal.Signals, run: Path) -> tuple[list[str], subprocess.Popen, str]:
    """Start a run, send `sig` once its first checkpoint exists, return (args, process, stderr).

    The signal arrives with epochs still to go, so the run cannot normally finish first; should
    it ever, the run is made four times longer and tried again (never silently skipped).
    """
    for epochs in (EPOCHS, 4 * EPOCHS):
        args = with_epochs(TRAIN, epochs)
        shutil.rmtree(run, ignore_errors=True)
        proc = start(*args, "--run-dir", str(run))
        wait_for_first_checkpoint(run, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=180)
        if proc.returncode != 0:
            return args, proc, err
    pytest.fail(f"a {4 * EPOCHS}-epoch run finished before {sig.name} landed")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_checkpoints_and_resume_is_bit_identical(tmp_path, reference, sig) -> None:
    run = tmp_path / "run"
    args, proc, err = interrupt(sig, run)
    epochs = int(args[args.index("--epochs") + 1])
    # It stopped itself (exit status 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM; not
    # killed by it), cleanly, saying how to go on.
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert f"resume with: lenet train --resume {run}" in err and "Traceback" not in err
    assert not (run / weights.WEIGHTS_NAME).exists()
    # What it left is intact: a checkpoint where it stopped (usually mid-epoch).
    warnings: list[str] = []
    stopped = checkpoint.latest(run, warn=warnings.append)
    assert stopped is not None and not warnings
    assert 1 <= stopped.epoch < epochs
    resumed = finish("--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from epoch {stopped.epoch}" in resumed.stderr
    assert [int(r["epoch"]) for r in metrics(run)] == list(range(1, epochs + 1))
    if args == TRAIN:  # the same run as the reference, interrupted: the same weights, bit for bit
        assert same_weights(run, reference)
    else:
        weights.read(run)


def assert_intact_after_kill(run: Path, reference: Path, completed_before: int) -> int:
    """The run dir after a kill -9: everything on disk verifies, and of the progress made only
    the epoch in progress is lost. Returns the completed epochs a resume will start from."""
    if (run / "config.json").exists():
        json.loads((run / "config.json").read_text())  # atomic: never half-written
    if (run / "initial.safetensors").exists():
        weights.read(run / "initial.safetensors")
    warnings: list[str] = []
    ckpt = checkpoint.latest(run, warn=warnings.append)
    assert not warnings, warnings  # no damaged checkpoint, not even an older one
    for path in (run / checkpoint.CHECKPOINT_DIR).glob("epoch-*.safetensors"):
        checkpoint.load(path)
    done = 0 if ckpt is None else ckpt.epoch
    # Every epoch completed before the kill survived it (checkpoints are written at epoch ends).
    assert done >= completed_before, (done, completed_before)
    if ckpt is None:
        return 0
    assert ckpt.step_in_epoch == 0
    # ... and is exactly the uninterrupted run's progress: same epochs, same metrics.
    ref = metrics(reference)
    got = ckpt.state["history"]
    assert [m["epoch"] for m in got] == list(range(1, done + 1))
    for mine, theirs in zip(got, ref, strict=False):
        for key in ("train_loss", "train_accuracy", "test_accuracy"):
            assert mine[key] == float(theirs[key]), (mine["epoch"], key)
    # metrics.csv is written just before the epoch's checkpoint: the same epochs, or one more.
    if (run / "metrics.csv").exists():
        assert done <= len(metrics(run)) <= done + 1
    return done


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _offset(rng: random.Random, phases: list[str], target: int,
            phase_s: dict[str, float]) -> float:
    """A moment in phase `target`, in seconds from its start."""
    # The last epoch ends in the final save: stay well inside it, or the run may finish.
    share = 0.5 if target == len(phases) - 1 else 0.9
    return rng.uniform(0, share * phase_s[phases[target].split()[0]])


def test_kill_9_at_random_moments_never_corrupts_the_run(tmp_path, reference_timed) -> None:
    min_kills, max_kills = 4, 6
    reference, whole = reference_timed
    # A process's remaining time is its start-up (until it rewrites config.json, just before
    # training), then one phase per epoch left (until that epoch's checkpoint appears). Each
    # kill picks a moment uniformly in the expected remaining time: a phase, weighted by its
    # expected length, then a point in it, timed from the moment that phase was seen to begin,
    # so that a machine that got faster or slower since the estimate still gets killed mid-run.
    # The lengths start from the reference run and follow what each process showed.
    ref = metrics(reference)
    phase_s = {"epoch": min(float(r["seconds"]) for r in ref),
               "startup": max(0.5, whole - sum(float(r["seconds"]) for r in ref))}
    rng = random.Random(41)  # at typical speeds its draws spread the kills over five epochs
    run = tmp_path / "run"
    kills, done, log = 0, 0, []
    while kills < max_kills:
        # Killed before it even wrote its config, a run is simply started again.
        resumable = (run / "config.json").exists()
        phases = ["startup"] + [f"epoch {k}" for k in range(done + 1, EPOCHS + 1)]
        target = rng.choices(range(len(phases)),
                             weights=[phase_s[p.split()[0]] for p in phases])[0]
        offset = _offset(rng, phases, target, phase_s)
        config_before = _stamp(run / "config.json")
        proc = start(*(["--resume", str(run)] if resumable else [*TRAIN, "--run-dir", str(run)]))
        began = [time.monotonic()]  # when each phase began, as seen
        while proc.poll() is None:
            now = time.monotonic()
            if len(began) > target + 1 and target + 1 < len(phases):
                # The phase ended sooner than expected: aim into the next one instead, with
                # the lengths just measured.
                target += 1
                offset = _offset(rng, phases, target, phase_s)
            if len(began) > len(phases) or (len(began) > target and now >= began[target] + offset):
                break  # (the first: all epochs done, it is in its final evaluation and save)
            started = len(began) > 1
            if not started and _stamp(run / "config.json") != config_before:
                began.append(now)
                phase_s["startup"] = now - began[0]
            elif started and epochs_checkpointed(run) >= done + len(began) - 1:
                began.append(now)
                phase_s["epoch"] = now - began[-2]
            time.sleep(0.002)
        completed_before = epochs_checkpointed(run)
        if proc.poll() is not None:  # finished on its own before the kill landed
            _, err = proc.communicate()
            assert proc.returncode == 0, err
            log.append(f"finished on its own, aiming at {phases[target]} + {offset:.2f}s")
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        log.append(f"kill {kills} in {phases[target]} + {offset:.2f}s, "
                   f"{time.monotonic() - began[0]:.2f}s after start: epochs done {done} -> "
                   f"{completed_before}")
        done = assert_intact_after_kill(run, reference, completed_before)
    assert kills >= min_kills, "\n".join(log)
    # The last kill may have landed before the config was written: started again, as above.
    final = finish(*(["--resume", str(run)] if (run / "config.json").exists()
                     else [*TRAIN, "--run-dir", str(run)]))
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in final.stderr
    assert [int(r["epoch"]) for r in metrics(run)] == list(range(1, EPOCHS + 1))
    assert same_weights(run, reference), "\n".join(log)
    print("\n".join(log))


def _flip_tensor_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # the file still parses; its checksum does not match
    path.write_bytes(bytes(data))


def _edit_metadata(path: Path) -> None:
    """Claim one more completed step, rewriting the metadata by hand (tensors untouched)."""
    from safetensors.torch import load, save

    data = path.read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    meta = json.loads(header["__metadata__"][checkpoint.METADATA_KEY])
    meta["global_step"] += 1
    meta["optimizer"]["param_groups"][0]["lr"] = 0.5
    path.write_bytes(save(load(data), metadata={checkpoint.METADATA_KEY: json.dumps(meta)}))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1000])


def _replace_with_pickle(path: Path) -> None:
    class Evil:  # unpickling it would create the file `pwned` next to the checkpoint
        def __reduce__(self):
            return (open, (str(path.parent / "pwned"), "w"))

    path.write_bytes(pickle.dumps({"epoch": EPOCHS, "model": Evil()}))


@pytest.mark.parametrize(("damage", "reason"), [
    (_flip_tensor_bit, "SHA-256 mismatch"),
    (_edit_metadata, "SHA-256 mismatch"),
    (_truncate, "truncated or corrupt"),
    (_replace_with_pickle, "never unpickles"),
], ids=["tensor-bit", "metadata-edit", "truncated", "pickle"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, reference, damage,
                                                                  reason) -> None:
    # The reference run's directory keeps its last two checkpoints (epochs EPOCHS-1 and EPOCHS).
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / weights.WEIGHTS_NAME).unlink()
    newest = run / checkpoint.CHECKPOINT_DIR / f"epoch-{EPOCHS:04d}.safetensors"
    assert newest.is_file()
    damage(newest)
    resumed = finish("--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert f"skipping damaged checkpoint: {newest}" in resumed.stderr
    assert reason in resumed.stderr
    assert f"resuming {run} from epoch {EPOCHS - 1}" in resumed.stderr
    assert not (newest.parent / "pwned").exists()
    # The last epoch was trained again, to exactly the same weights.
    assert same_weights(run, reference)


def test_resume_refuses_changes_to_what_is_trained(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    proc = finish("--resume", str(tmp_path), "--lr", "0.5")
    assert proc.returncode == 2 and "drop lr" in proc.stderr
    proc = finish("--resume", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "no config.json" in proc.stderr
