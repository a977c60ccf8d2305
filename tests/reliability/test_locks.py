"""Run-dir locks that cannot be raced, removed or redirected (issue 32, item 1).

Was: of 150 simultaneous claims of one new --run-dir, 52 left the winner without its .lock or
folder; a .lock that was a symbolic link had its target truncated and overwritten; a FIFO .lock
hung the run; deleting .lock mid-run let a second trainer into the folder while the first went
on. And (issue 31) the .lock file stayed after every run.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from lenet.storage import rundir
from lenet.training.loop import fit as train
from tests.reliability.conftest import TINY_ARGS, one_line_error

CLAIMS = 150


def _claim_once(path: str, barrier: Any, results: Any, release: Any) -> None:
    """One process's claim, started together with the others; the winner holds the folder
    until told to let it go."""
    try:
        barrier.wait(timeout=120)
        with rundir.claim(path, created=False):
            results.put(("won", os.getpid()))
            release.wait(timeout=120)
    except rundir.RunDirError as e:
        results.put(("lost", str(e)))
    except BaseException as e:  # anything else is a failure the parent reports
        results.put(("error", f"{type(e).__name__}: {e}"))


def _enter(run: Path, **options: bool) -> None:
    """Claim `run` and let it go at once."""
    with rundir.claim(run, **options):
        pass


def _flock_free(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_150_simultaneous_claims_of_a_new_run_dir_have_exactly_one_intact_winner(
        tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")  # the claimers start in milliseconds
    run = tmp_path / "runs" / "same"
    barrier, results, release = ctx.Barrier(CLAIMS), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_claim_once, args=(str(run), barrier, results, release))
             for _ in range(CLAIMS)]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=120) for _ in range(CLAIMS)]
        winners = [who for kind, who in got if kind == "won"]
        others = [msg for kind, msg in got if kind != "won"]
        assert len(winners) == 1, got
        assert all("is in use by another `lenet train`" in msg for msg in others), others
        # While the winner holds it: its folder and lock intact, its pid inside, held.
        lock = run / rundir.LOCK
        assert run.is_dir() and lock.is_file()
        assert lock.read_text().strip() == str(winners[0])
        assert not _flock_free(lock)
    finally:
        release.set()
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    assert run.is_dir() and not (run / rundir.LOCK).exists()  # issue 31: removed at the end


def test_a_loser_that_made_the_folder_leaves_the_winners_folder_and_lock(tmp_path) -> None:
    # The race above, made deterministic: the claim that created the folder loses the lock
    # (here to a holder in this process) and, failing, must not remove what it made.
    run = tmp_path / "run"
    with rundir.claim(run):
        with pytest.raises(rundir.RunDirError, match="is in use"):
            _enter(run, created=True)
        assert (run / rundir.LOCK).is_file() and rundir.still_held(run)
    assert run.is_dir() and not (run / rundir.LOCK).exists()


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path) -> None:
    run, victim = tmp_path / "run", tmp_path / "precious.txt"
    run.mkdir()
    victim.write_text("keep me\n")
    (run / rundir.LOCK).symlink_to(victim)
    for resume in (False, True):
        with pytest.raises(rundir.RunDirError, match=r"\.lock is a symbolic link, not a regular"):
            _enter(run, resume=resume)
    assert victim.read_text() == "keep me\n"
    assert (run / rundir.LOCK).is_symlink()  # left as it was


def test_lenet_train_into_a_symlinked_lock_is_one_line_and_writes_nothing(tmp_path, lenet,
                                                                           tiny) -> None:
    # Was: `lenet train` and `--resume` truncated the link's target and wrote a pid into it.
    run, victim = tmp_path / "run", tmp_path / "precious.txt"
    run.mkdir()
    victim.write_text("keep me\n")
    (run / rundir.LOCK).symlink_to(victim)
    code, err = lenet("train", *TINY_ARGS, "--run-dir", str(run))
    assert code == 2 and "is a symbolic link, not a regular file" in one_line_error(err)
    rundir.write_config(run, tiny(run).to_dict())  # an earlier run's, to resume
    code, err = lenet("train", "--resume", str(run))
    assert code == 2 and "is a symbolic link, not a regular file" in one_line_error(err)
    assert victim.read_text() == "keep me\n"
    assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK, rundir.CONFIG]


def _bounded(call: Callable[[], object], seconds: float = 20) -> BaseException | None:
    """Run `call` in a thread; what it raised. Fails the test if it is still running."""
    raised: list[BaseException | None] = [None]

    def target() -> None:
        try:
            call()
        except BaseException as e:
            raised[0] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the claim is blocked"
    return raised[0]


@pytest.mark.parametrize("kind", ["fifo", "directory", "socket"])
def test_a_lock_that_is_no_regular_file_is_one_error_and_never_blocks(tmp_path, kind) -> None:
    run = tmp_path / "run"
    run.mkdir()
    lock = run / rundir.LOCK
    with ExitStack() as stack:
        if kind == "fifo":
            os.mkfifo(lock)
        elif kind == "directory":
            lock.mkdir()
        else:
            sock = stack.enter_context(socket.socket(socket.AF_UNIX))
            sock.bind(str(lock))
        error = _bounded(lambda: _enter(run))
    assert isinstance(error, rundir.RunDirError), error
    assert "not a regular file" in str(error) and str(lock) in str(error)


def test_the_lock_file_leaves_with_the_run_and_a_stale_one_is_taken(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.LOCK).write_text("31337\n")  # left by a process killed with -9
    with rundir.claim(run):
        assert (run / rundir.LOCK).read_text() == f"{os.getpid()}\n"
    assert not (run / rundir.LOCK).exists()
    assert rundir.still_held(run)  # not held any more: nothing to check


def test_check_lock_stops_a_holder_whose_lock_was_removed_or_replaced(tmp_path) -> None:
    for replace in (False, True):
        run = tmp_path / f"run-{replace}"
        with (pytest.raises(rundir.RunDirError, match=r"\.lock was removed or replaced"),
              rundir.claim(run)):
            rundir.check_lock(run)  # held: fine
            (run / rundir.LOCK).unlink()
            if replace:
                (run / rundir.LOCK).write_text("someone else\n")
            assert not rundir.still_held(run)
            rundir.check_lock(run)
        # Not ours any more: the failed holder leaves a replacing lock where it is.
        assert (run / rundir.LOCK).exists() == replace


_INTRUDER = """
import sys, time
from lenet.storage import rundir
with rundir.claim(sys.argv[1], resume=True):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
def test_a_lock_deleted_mid_run_stops_the_run_with_one_line(tiny, tmp_path) -> None:
    # Was: after `rm RUN/.lock`, a second trainer resumed into the folder and both trained.
    run = tmp_path / "run"
    second: list[subprocess.Popen[str]] = []

    def intruder(line: str) -> None:
        if line.startswith("epoch 1/"):  # the first epoch is trained: now strike
            (run / rundir.LOCK).unlink()
            proc = subprocess.Popen([sys.executable, "-c", _INTRUDER, str(run)],
                                    stdout=subprocess.PIPE, text=True)
            second.append(proc)
            assert proc.stdout is not None and proc.stdout.readline() == "held\n"

    try:
        with pytest.raises(rundir.RunDirError) as caught:
            train(tiny(run, epochs=4), log=intruder)
        message = str(caught.value)
        assert "\n" not in message and "was removed or replaced while this run trained" in message
        assert f"lenet train --resume {run}" in message
        # The second holder's lock intact, and nothing written once the lock was lost (the
        # epoch line is logged before its metrics row and checkpoint are written).
        assert (run / rundir.LOCK).read_text() == f"{second[0].pid}\n"
        assert rundir.read_metrics(run) == []
        assert not list(run.glob(f"{rundir.CHECKPOINTS}/*"))
    finally:
        for proc in second:
            proc.kill()
            proc.communicate(timeout=60)
