"""One owner per run dir (issue 20): a finished run is never overwritten or resumed by another
run, two processes never train into one folder, two default folders are never one."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lenet.models import weights
from lenet.storage import checkpoint, rundir
from lenet.training.loop import fit as train
from tests.reliability.conftest import TINY_ARGS, one_line_error


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != rundir.LOCK}


def test_a_finished_run_dir_is_not_reused(two_epochs, copy_of, lenet) -> None:
    # Was: exit 0 without a word, config, weights and metrics overwritten, old checkpoints kept.
    run = copy_of(two_epochs)
    before = _snapshot(run)
    code, err = lenet("train", *TINY_ARGS, "--seed", "9", "--run-dir", str(run))
    assert code == 2
    line = one_line_error(err)
    assert f"{run} is not empty" in line and f"lenet train --resume {run}" in line
    assert "--overwrite" in line
    assert _snapshot(run) == before  # not a byte changed


def test_overwrite_replaces_the_earlier_run_entirely(two_epochs, copy_of, lenet) -> None:
    run = copy_of(two_epochs)
    old_id = rundir.read_config(run)[rundir.RUN_ID]
    (run / "report.html").write_text("<p>the old run's report</p>")
    code, err = lenet("train", *TINY_ARGS, "--seed", "9", "--overwrite", "--run-dir", str(run))
    assert code == 0, err
    config = rundir.read_config(run)
    assert config["seed"] == 9 and config[rundir.RUN_ID] != old_id
    # Only the new run's files: its one checkpoint (the old epoch-0002 is gone), no old report.
    assert sorted(p.name for p in (run / checkpoint.CHECKPOINT_DIR).iterdir()) == [
        "epoch-0001.safetensors"]
    assert not (run / "report.html").exists()
    assert [r["epoch"] for r in rundir.read_metrics(run)] == ["1"]
    assert weights.read(run)[1].extra["config"]["seed"] == 9


def test_overwrite_refuses_a_folder_with_files_lenet_did_not_write(two_epochs, copy_of, lenet,
                                                                    tmp_path) -> None:
    run = copy_of(two_epochs)
    (run / "notes.txt").write_text("mine")
    code, err = lenet("train", *TINY_ARGS, "--overwrite", "--run-dir", str(run))
    assert code == 2 and "notes.txt" in one_line_error(err) and "will not clear" in err
    assert (run / "notes.txt").read_text() == "mine" and (run / rundir.WEIGHTS).is_file()
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    code, err = lenet("train", *TINY_ARGS, "--overwrite", "--run-dir", str(home))
    assert code == 2 and "thesis.tex" in one_line_error(err)
    assert (home / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]  # not even a lock file


def test_overwrite_and_resume_exclude_each_other(two_epochs, copy_of, lenet) -> None:
    run = copy_of(two_epochs)
    code, err = lenet("train", "--resume", str(run), "--overwrite")
    assert code == 2 and "pass one of them" in one_line_error(err)


def test_a_run_dir_in_use_is_refused_naming_the_holder(tmp_path, lenet) -> None:
    run = tmp_path / "run"
    run.mkdir()
    # Another process's lock, as `lenet train` takes it (flock on .lock, its pid inside).
    fd = os.open(run / rundir.LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242\n")
        code, err = lenet("train", *TINY_ARGS, "--run-dir", str(run))
        assert code == 2
        assert f"{run} is in use by another `lenet train` (process 4242)" in one_line_error(err)
        assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK]  # nothing written
    finally:
        os.close(fd)
    code, err = lenet("train", *TINY_ARGS, "--run-dir", str(run))  # free again: it trains
    assert code == 0, err
    assert not (run / rundir.LOCK).exists()  # the lock file leaves with the run


def _wait_for(ready, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, (what, proc.communicate())
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_second_trainer_is_refused_while_the_first_runs_and_sigterm_stops_it_with_143(
        tmp_path, lenet, tiny) -> None:
    # Was: two runs into one --run-dir both exited 0 (one was lost), and SIGTERM gave 130.
    run = tmp_path / "run"
    args = [*TINY_ARGS, "--epochs", "500", "--run-dir", str(run)]  # far longer than the test
    proc = subprocess.Popen([sys.executable, "-m", "lenet", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: list((run / checkpoint.CHECKPOINT_DIR).glob("epoch-*")), proc,
                  "the first checkpoint")
        code, err = lenet("train", *args)
        assert code == 2
        assert f"is in use by another `lenet train` (process {proc.pid})" in one_line_error(err)
        code, err = lenet("train", "--resume", str(run))  # resuming it meanwhile: refused too
        assert code == 2 and f"(process {proc.pid})" in one_line_error(err)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, (proc.returncode, err)
    assert f"resume with: lenet train --resume {run}" in err
    assert one_line_error(err).startswith("lenet: error: training stopped by SIGTERM")
    # The lock died with the process: the run resumes (to one epoch past its checkpoint).
    done = checkpoint.latest(run).epoch
    code, err = lenet("train", "--resume", str(run), "--epochs", str(done + 1))
    assert code == 0, err
    assert [int(r["epoch"]) for r in rundir.read_metrics(run)] == list(range(1, done + 2))


def test_two_default_run_dirs_in_the_same_second_differ(tiny, tmp_path, monkeypatch) -> None:
    # Was: two runs started in the same second shared runs/<time>-<model>.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rundir.time, "strftime", lambda _fmt: "20240101-000000")
    a = train(tiny(None), log=lambda _: None)
    b = train(tiny(None), log=lambda _: None)
    assert a.run_dir != b.run_dir and a.run_dir.parent == b.run_dir.parent == Path("runs")
    for r in (a, b):
        assert r.run_dir.name.startswith("20240101-000000-lenet5-")
        assert [m["epoch"] for m in rundir.read_metrics(r.run_dir)] == ["1"]


def test_a_failed_start_leaves_no_empty_default_folder(tiny, tmp_path, monkeypatch) -> None:
    from lenet.errors import DatasetError

    monkeypatch.chdir(tmp_path)

    def missing(*_args, **_kwargs):
        raise DatasetError("no data here")

    monkeypatch.setattr("lenet.data.load", missing)
    with pytest.raises(DatasetError):
        train(tiny(None), log=lambda _: None)
    assert list((tmp_path / "runs").iterdir()) == []


def test_orphan_temp_files_are_removed_on_start(two_epochs, copy_of, tiny) -> None:
    run = copy_of(two_epochs)
    orphans = [run / ".config.json.x1y2z3.tmp",
               run / checkpoint.CHECKPOINT_DIR / ".epoch-0003.safetensors.abcdef.tmp"]
    for p in orphans:
        p.write_bytes(b"half a file")
    lines: list[str] = []
    train(tiny(run, epochs=3), log=lines.append, resume=True)
    assert lines[0] == f"resuming {run} from epoch 2"
    assert not any(p.exists() for p in orphans)
    assert not list(run.rglob("*.tmp"))


def test_a_run_fits_in_the_space_of_two_checkpoints(tiny, tmp_path, monkeypatch) -> None:
    # Was: a new checkpoint was written before old ones were deleted (three at once), so a
    # run on a nearly full disk could never finish.
    from lenet.storage import atomic

    present: list[int] = []
    real = atomic.write_bytes

    def counting(path, data):
        path = Path(path)
        if path.parent.name == checkpoint.CHECKPOINT_DIR:
            present.append(len(list(path.parent.glob("epoch-*.safetensors"))))
        return real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", counting)
    run = tmp_path / "run"
    train(tiny(run, epochs=4), log=lambda _: None)
    assert present == [0, 1, 1, 1]  # at most the one before, while the next is written
    assert sorted(p.name for p in (run / checkpoint.CHECKPOINT_DIR).iterdir()) == [
        "epoch-0003.safetensors", "epoch-0004.safetensors"]


def test_the_lock_is_released_when_training_fails(tiny, tmp_path, monkeypatch) -> None:
    # A holder that dies (kill -9 included) drops its flock with it; a failure in process too.
    run = tmp_path / "run"
    from lenet.training.result import TrainingError

    with pytest.raises(TrainingError):
        train(tiny(run, optimizer="sgd", lr=1e30), log=lambda _: None)
    assert not (run / rundir.LOCK).exists()  # released, and its file removed with it
    train(tiny(run), log=lambda _: None, resume=True)
    assert (run / rundir.WEIGHTS).is_file()
    assert not (run / rundir.LOCK).exists()  # issue 31: the .lock file stayed after a run


@pytest.mark.parametrize("intruder", ["checkpoints/epoch-0009.safetensors", ".notes.tmp",
                                      "model.safetensors-as-folder", "link-named-metrics"])
def test_overwrite_never_removes_what_looks_like_lenets_but_is_not(two_epochs, copy_of, lenet,
                                                                  intruder) -> None:
    # Was (issue 32): --overwrite deleted a user's hidden .notes.tmp, and a user folder named
    # like a checkpoint (with everything in it).
    run = copy_of(two_epochs)
    if intruder == "checkpoints/epoch-0009.safetensors":
        (run / intruder).mkdir()
        (run / intruder / "data.bin").write_text("mine")
        keep, named = run / intruder / "data.bin", "epoch-0009.safetensors"
    elif intruder == ".notes.tmp":
        keep = named_path = run / ".notes.tmp"
        named_path.write_text("mine")
        named = ".notes.tmp"
    elif intruder == "model.safetensors-as-folder":
        (run / rundir.WEIGHTS).unlink()
        (run / rundir.WEIGHTS).mkdir()
        keep = run / rundir.WEIGHTS / "mine.txt"
        keep.write_text("mine")
        named = rundir.WEIGHTS
    else:
        elsewhere = run.parent / "elsewhere.csv"
        elsewhere.write_text("mine")
        (run / rundir.METRICS).unlink()
        (run / rundir.METRICS).symlink_to(elsewhere)
        keep, named = elsewhere, rundir.METRICS
    before = _snapshot(run)
    code, err = lenet("train", *TINY_ARGS, "--overwrite", "--run-dir", str(run))
    line = one_line_error(err)
    assert code == 2 and named in line and "will not clear" in line
    assert keep.read_text() == "mine" and _snapshot(run) == before


def test_a_killed_writers_temp_files_are_still_lenets_to_clear(two_epochs, copy_of,
                                                              lenet) -> None:
    run = copy_of(two_epochs)
    orphan = run / ".config.json.k2j4h5g6.tmp"  # atomic.write_bytes's name, left by kill -9
    orphan.write_text("{")
    code, err = lenet("train", *TINY_ARGS, "--overwrite", "--run-dir", str(run))
    assert code == 0, err
    assert not orphan.exists()


def test_a_5000_digit_integer_in_the_saved_config_is_one_line(two_epochs, copy_of,
                                                              lenet) -> None:
    # Was: "ValueError: Exceeds the limit (4300 digits) for integer string conversion".
    run = copy_of(two_epochs)
    text = (run / rundir.CONFIG).read_text()
    (run / rundir.CONFIG).write_text(text.replace('"epochs": 2', '"epochs": ' + "7" * 5000))
    code, err = lenet("train", "--resume", str(run))
    line = one_line_error(err)
    assert code == 2 and str(run / rundir.CONFIG) in line and "4300 digits" in line


def test_a_sparse_huge_config_is_refused_by_its_size(tmp_path) -> None:
    with (tmp_path / rundir.CONFIG).open("wb") as f:
        f.truncate(6 * 2**30)  # sparse: no disk space; read whole it would be 6 GB
    with pytest.raises(rundir.RunDirError, match="more than the saved config can be"):
        rundir.read_config(tmp_path)
